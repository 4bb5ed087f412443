"""Ship a checkpoint as one file: ONNX or TorchScript, plus a JSON of classes and preprocessing.

`export_model` writes `model.onnx` (or `model.pt`) and a sidecar `model.onnx.json` (or
`model.pt.json`) next to it, and `MODEL_CARD.md`: the run's card (`<run>/report/MODEL_CARD.md`,
hwr.evaluation.model_card) with a section on the exported file. The exported graph takes
float32 [N, 1, H, W] = pixel/255 with white ink on black (`Preprocessing.pixels(image) / 255`),
applies the training normalisation, the ensemble and the test-time shifts inside, and returns
class probabilities [N, C]. Before the files get their final names, the export is checked
against `TrainedModel.probabilities`.

`hwr.inference.exported.ExportedModel` (also importable from here) loads such a file and predicts PIL
images. This module imports neither Lightning nor the Classifier at import time: those
imports live inside `export_model`, so loading an export needs neither.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import hwr
from hwr import bundled
from hwr.errors import HwrError
from hwr.files import write_text
from hwr.inference.exported import FORMATS, INPUT_NAME, OUTPUT_NAME, ExportedModel, sidecar_path
from hwr.preprocess import Preprocessing

__all__ = ["TOLERANCE", "ExportedModel", "export_model", "parity_inputs", "sidecar_path"]

if TYPE_CHECKING:
    from torch import nn

    from hwr.inference.model import TrainedModel

# exported and PyTorch probabilities must agree within this on every entry
TOLERANCE = 1e-4
CARD = "MODEL_CARD.md"  # the name hwr.evaluation.model_card gives it (that floor is above this one)


def _wrapper(trained: TrainedModel) -> nn.Module:
    """The exported module: pixel/255 -> normalise -> ensemble/TTA -> softmax probabilities."""
    import torch
    from torch import nn

    from hwr.models.ensemble import tta_logits

    class Exportable(nn.Module):
        # Holds the plain network, not the Classifier: torch.jit.trace walks every submodule's
        # attributes, and a LightningModule's `trainer` property raises outside a Trainer.
        # `tta_logits` is the very function TrainedModel.log_probs calls, and the parity
        # check compares against TrainedModel.probabilities, so any drift would be caught.
        def __init__(self, net: nn.Module, shift: int, mean: float, std: float):
            super().__init__()
            self.net, self.shift, self.mean, self.std = net, shift, mean, std

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return tta_logits(self.net, (x - self.mean) / self.std, self.shift).float().softmax(dim=-1)

    prep = trained.preprocessing
    return Exportable(trained.net, trained.tta_shift, float(prep.mean), float(prep.std)).eval()


def parity_inputs(
    preprocessing: Preprocessing, classes: Sequence[str], n: int = 64, seed: int = 0
) -> np.ndarray:
    """float32 [n, 1, H, W] in [0, 1]: half uniform noise, half the class names drawn in ink
    and run through `preprocessing` (inputs like the real ones, with blank background)."""
    rng = np.random.default_rng(seed)
    size = preprocessing.image_size
    noise = rng.random((n - n // 2, 1, size, size), dtype=np.float32)
    font = ImageFont.load_default(size=48)
    drawn = []
    for i in range(n // 2):
        image = Image.new("L", (96, 96), 255)
        ImageDraw.Draw(image).text(
            (20 + i % 5, 10 + i % 7), str(classes[i % len(classes)]), fill=0, font=font
        )
        drawn.append(preprocessing.pixels(image))
    glyphs = np.stack(drawn).astype(np.float32)[:, None] / 255 if drawn else noise[:0]
    return np.concatenate([noise, glyphs])


def _write_onnx(module: nn.Module, example: Any, path: Path, opset: int | None) -> None:
    import torch

    # The dynamo exporter (torch.onnx's default since 2.9), checked here with a dynamic batch,
    # TTA (replicate padding -> ONNX Pad mode=edge) and ensembles: < 1e-6 from PyTorch. The
    # TorchScript-based one (dynamo=False) also worked but warns it "will be removed".
    program = torch.onnx.export(
        module,
        (example,),
        dynamo=True,
        verbose=False,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
    )
    program.save(path, external_data=False)  # one self-contained file, whatever its size


def _write_torchscript(module: nn.Module, example: Any, path: Path) -> None:
    import torch

    # torch.jit is deprecated in favour of torch.export, but a traced .pt is still what
    # torch.jit.load / libtorch (C++, mobile) read without the Python code, and users deploy there.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        traced = torch.jit.trace(module, (example,), check_trace=False)  # parity is checked below
        torch.jit.save(traced, str(path))


def default_output(sources: Sequence[str], fmt: str) -> Path:
    """`<run dir>/export/model.<ext>` for a checkpoint at `<run dir>/checkpoints/best.ckpt`
    (the bundled model, which lives inside the package: `outputs/bundled/export/`)."""
    if len(sources) > 1:
        raise HwrError("an ensemble has no run folder of its own; pass output=<folder>/model" + FORMATS[fmt])
    if bundled.is_bundled(sources[0]):
        return (Path("outputs") / "bundled" / "export" / f"model{FORMATS[fmt]}").absolute()
    return Path(sources[0]).resolve().parent.parent / "export" / f"model{FORMATS[fmt]}"


def export_model(
    ckpt_path: str | Sequence[str],
    fmt: str = "onnx",
    output: str | Path | None = None,
    overwrite: bool = False,
    *,
    tta_shift: int | None = None,
    opset: int | None = None,
    parity_batch: int = 64,
) -> dict[str, Any]:
    """Export a checkpoint (or a list/glob: an ensemble) and check it; return the sidecar's content
    plus `path` and `sidecar`. `tta_shift` overrides the checkpoint's test-time shifts (0: off).

    Files are written under temporary names and renamed only once the parity check passed, so a
    failed export leaves nothing behind, and existing files are kept unless `overwrite`.
    """
    if fmt not in FORMATS:
        raise HwrError(f"format={fmt!r} is not supported; use format={' or format='.join(FORMATS)}")
    from hwr.inference.checkpoint import expand_paths
    from hwr.inference.model import TrainedModel

    sources = expand_paths(ckpt_path)
    path, sidecar = _output_paths(sources, fmt, output, overwrite)
    trained = TrainedModel.load(sources, device="cpu", tta_shift=tta_shift)

    tmp_model = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp_sidecar = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
    try:  # before exporting: a folder that cannot be written is the user's to fix, not torch's
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_model.touch()
    except OSError as e:
        raise HwrError(
            f"cannot write into {path.parent} ({e.strerror or e}); pass output=<a writable folder>"
        ) from e
    try:
        seconds = _write(trained, fmt, tmp_model, opset)
        parity = _parity(trained, tmp_model, fmt, parity_batch)
        meta = _description(trained, fmt, path.name, tmp_model, parity, seconds)
        tmp_sidecar.write_text(json.dumps(meta, indent=1) + "\n")
        os.replace(tmp_model, path)
        os.replace(tmp_sidecar, sidecar)
    finally:
        for tmp in (tmp_model, tmp_sidecar):
            tmp.unlink(missing_ok=True)
    write_text(path.with_name(CARD), export_card(trained, meta), "the model card")  # beside the model
    return {**meta, "path": str(path), "sidecar": str(sidecar)}


def export_card(trained: TrainedModel, meta: dict[str, Any]) -> str:
    """MODEL_CARD.md beside an export: the run's own card (what its test report wrote) when
    there is one, else what the checkpoint says; then how to use the exported file."""
    source = Path(trained.sources[0])
    run_card = source.resolve().parent.parent / "report" / CARD
    if bundled.is_bundled(source):
        run_card = bundled.CARD
    if len(trained.sources) == 1 and run_card.is_file():
        text = run_card.read_text().rstrip() + "\n"
    else:
        info, sources = trained.info(), ", ".join(f"`{s}`" for s in trained.sources)
        text = (
            f"# Model card: {info['model']} on {info['dataset']}\n\n"
            f"No run card was found beside {sources} (an ensemble, or a checkpoint outside its run "
            f"folder): see those runs' `report/{CARD}`.\n\n"
            f"- Classes ({info['num_classes']}): {' '.join(info['classes'])}\n"
            f"- Test accuracy its run recorded: {info['test_acc'] or 'unknown'}\n"
        )
    size = meta["preprocessing"]["image_size"]
    return text + (
        f"\n## Exported as\n\n- `{meta['file']}` ({meta['format']}): float32 [N, 1, {size}, {size}] = "
        f"pixel/255, white ink on black, to class probabilities [N, {len(meta['classes'])}]; classes and "
        f"preprocessing in `{meta['file']}.json`.\n- Checked against PyTorch: largest difference "
        f"{meta['parity']['max_abs_diff']:.1e} on {meta['parity']['inputs']} inputs.\n"
        "- Load it with `hwr.inference.exported.ExportedModel`, or any ONNX / TorchScript runtime.\n"
    )


def _output_paths(
    sources: Sequence[str], fmt: str, output: str | Path | None, overwrite: bool
) -> tuple[Path, Path]:
    """(model file, sidecar) to write; refuses a wrong suffix and, without `overwrite`, existing files."""
    path = Path(output) if output else default_output(sources, fmt)
    allowed = (".pt", ".pth") if fmt == "torchscript" else (".onnx",)
    if path.suffix not in allowed:
        raise HwrError(f"output={path} does not end in {' or '.join(allowed)} as a {fmt} model should")
    sidecar = sidecar_path(path)
    existing = [str(p) for p in (path, sidecar) if p.exists()]
    if existing and not overwrite:
        verb = "exists" if len(existing) == 1 else "exist"
        raise HwrError(f"{' and '.join(existing)} {verb}; pass overwrite=true or another output=")
    return path, sidecar


def _write(trained: TrainedModel, fmt: str, path: Path, opset: int | None) -> float:
    """Export the model's module to `path`; the seconds it took."""
    import torch

    size = trained.preprocessing.image_size
    example = torch.rand(2, 1, size, size)  # batch 2, not 1: a batch of 1 could be specialised
    module = _wrapper(trained)
    started = time.perf_counter()
    try:
        if fmt == "onnx":
            _write_onnx(module, example, path, opset)
        else:
            _write_torchscript(module, example, path)
    except Exception as e:  # noqa: BLE001 - an op the exporter lacks: one line, not pages of trace
        reason = (str(e).strip().splitlines() or [""])[0][:300]
        raise HwrError(
            f"torch cannot export this model to {fmt} ({type(e).__name__}: {reason}); "
            "try the other format, or tta_shift=0"
        ) from e
    return time.perf_counter() - started


def _parity(trained: TrainedModel, path: Path, fmt: str, n: int) -> dict[str, Any]:
    """The exported file's probabilities against `TrainedModel.probabilities` on `n` inputs; an
    HwrError when they differ by more than TOLERANCE."""
    import torch

    prep, classes = trained.preprocessing, trained.class_names
    x = parity_inputs(prep, classes, n)
    exported = ExportedModel(path, fmt, {"classes": classes, "preprocessing": prep.to_dict()})
    reference = trained.probabilities(torch.from_numpy((x - prep.mean) / prep.std)).numpy()
    diff = float(np.abs(exported.probabilities(x) - reference).max())
    if not diff <= TOLERANCE:  # `not <=` also catches NaN
        raise HwrError(
            f"the {fmt} export differs from PyTorch by {diff:.2e} (> {TOLERANCE:g}); nothing was written"
        )
    reference_name = "hwr.inference.model.TrainedModel.probabilities"
    return {"max_abs_diff": diff, "tolerance": TOLERANCE, "inputs": len(x), "reference": reference_name}


def _description(
    trained: TrainedModel,
    fmt: str,
    name: str,
    written: Path,
    parity: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    """The sidecar JSON: how to feed the model, what it returns, where it came from."""
    import torch

    prep, classes, info = trained.preprocessing, trained.class_names, trained.info()
    size = prep.image_size
    return {
        "format": fmt,
        "file": name,
        "size_bytes": written.stat().st_size,
        "input": {
            "name": INPUT_NAME,
            "shape": ["N", 1, size, size],
            "dtype": "float32",
            "values": "pixel/255, white ink on black: Preprocessing.pixels(image) / 255",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["N", len(classes)],
            "dtype": "float32",
            "values": "class probabilities, in the order of classes",
        },
        "classes": classes,
        "preprocessing": prep.to_dict(),
        "dataset": info["dataset"],
        "model": info["model"],
        "checkpoints": [str(Path(s).resolve()) for s in trained.sources],
        "test_acc": info["test_acc"],
        "tta_shift": info["tta_shift"],
        "opset": _opset(written) if fmt == "onnx" else None,
        "parity": parity,
        "export_seconds": round(seconds, 2),
        "hwr_version": hwr.__version__,
        "torch_version": torch.__version__,
    }


def _opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
