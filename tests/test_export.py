"""export.py and hwr.inference.export: ONNX / TorchScript files that predict like the checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ENGLISH_CLASSES, ROOT, ink_png, make_config
from PIL import Image

from hwr.commands.export import export as run
from hwr.data.english import EnglishDataModule
from hwr.errors import HwrError
from hwr.inference.export import TOLERANCE, ExportedModel, export_model, sidecar_path
from hwr.inference.model import TrainedModel


@pytest.fixture(scope="module")
def exports(english_run, tmp_path_factory) -> dict[str, dict]:
    """Both formats of the english_run checkpoint, exported once for the module."""
    out, _ = english_run
    folder = tmp_path_factory.mktemp("export")
    ckpt = out / "checkpoints" / "best.ckpt"
    return {
        "onnx": export_model(ckpt, "onnx", folder / "model.onnx"),
        "torchscript": export_model(ckpt, "torchscript", folder / "model.pt"),
    }


def scans(folder: Path) -> list[Image.Image]:
    """A few black-on-white scans like the fixture's (other writers), as files are read."""
    paths = []
    for i, cls in enumerate([0, 1, 2, 3, 4, 2]):
        paths.append(folder / f"scan{i}.png")
        ink_png(paths[-1], cls, writer=10 + i)
    return [Image.open(p) for p in paths]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_predictor(fmt, exports, english_run, tmp_path):
    """Same top-1 labels and probabilities (within 1e-4) as predict.py, through the sidecar's
    preprocessing; small file; JSON says what the model expects."""
    out, metrics = english_run
    result = exports[fmt]
    path = Path(result["path"])
    assert path.suffix == {"onnx": ".onnx", "torchscript": ".pt"}[fmt]
    meta = json.loads(sidecar_path(path).read_text())
    assert meta == {k: v for k, v in result.items() if k not in ("path", "sidecar")}
    assert meta["format"] == fmt and meta["classes"] == ENGLISH_CLASSES and meta["dataset"] == "english"
    assert meta["input"]["shape"] == ["N", 1, 28, 28] and "white ink on black" in meta["input"]["values"]
    prep = meta["preprocessing"]
    assert prep["mean"] == pytest.approx(EnglishDataModule.MEAN) and prep["margin"] == 2
    assert meta["test_acc"] == pytest.approx(metrics["test/acc"])
    assert meta["checkpoints"] == [str((out / "checkpoints" / "best.ckpt").resolve())]
    assert 0 <= meta["parity"]["max_abs_diff"] <= TOLERANCE and meta["parity"]["inputs"] == 64
    assert meta["size_bytes"] == path.stat().st_size < 10e6
    assert meta["torch_version"] and meta["hwr_version"] and (meta["opset"] is not None) == (fmt == "onnx")

    images = scans(tmp_path)
    expected = TrainedModel.load(out / "checkpoints" / "best.ckpt", "cpu").predict(images, top_k=3)
    got = ExportedModel.load(path).predict(images, top_k=3)
    for mine, theirs in zip(got, expected, strict=True):
        assert [name for name, _ in mine] == [name for name, _ in theirs.top]
        assert np.allclose([p for _, p in mine], [p for _, p in theirs.top], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_dynamic_batch(fmt, exports):
    model = ExportedModel.load(exports[fmt]["sidecar"])  # the .json path works too
    x = np.random.default_rng(1).random((7, 1, 28, 28), dtype=np.float32)
    seven = model.probabilities(x)
    one = model.probabilities(x[3:4])
    assert seven.shape == (7, 5) and one.shape == (1, 5)
    assert np.allclose(seven.sum(axis=1), 1, atol=1e-5) and np.allclose(one[0], seven[3], atol=1e-6)
    assert model.probabilities(x[:0]).shape == (0, 5) and model.predict([]) == []


@pytest.mark.slow  # a 14 s export of two networks times nine shifts: the full suite's
def test_ensemble_with_tta_exports(english_run, tmp_path):
    """Test-time shifts (replicate padding) and an ensemble are part of the exported graph."""
    ckpt = english_run[0] / "checkpoints" / "best.ckpt"
    with pytest.raises(HwrError, match="an ensemble has no run folder of its own; pass output="):
        export_model([ckpt, ckpt], "onnx")
    result = export_model([ckpt, ckpt], "onnx", tmp_path / "ens.onnx", tta_shift=1, parity_batch=16)
    assert result["tta_shift"] == 1 and len(result["checkpoints"]) == 2
    assert result["parity"]["max_abs_diff"] <= TOLERANCE and result["test_acc"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "MODEL_CARD.md",
        "ens.onnx",
        "ens.onnx.json",
    ]  # no temp files left


def test_refuses_bad_requests(english_run, tmp_path):
    ckpt = english_run[0] / "checkpoints" / "best.ckpt"
    target = tmp_path / "model.onnx"
    target.write_text("precious\n")
    with pytest.raises(HwrError, match=r"model.onnx exists; pass overwrite=true"):
        export_model(ckpt, "onnx", target)
    assert target.read_text() == "precious\n"
    with pytest.raises(HwrError) as error:
        export_model(ckpt, "tflite", tmp_path / "m.tflite")
    assert str(error.value) == "format='tflite' is not supported; use format=onnx or format=torchscript"
    with pytest.raises(HwrError, match="does not end in .pt or .pth"):
        export_model(ckpt, "torchscript", tmp_path / "m.onnx")
    with pytest.raises(HwrError, match="ckpt_path=.*nope.ckpt does not exist"):
        export_model(tmp_path / "nope.ckpt", "onnx", tmp_path / "m.onnx")
    with pytest.raises(HwrError, match="is missing; export one"):
        ExportedModel.load(tmp_path / "nothing.onnx")
    with pytest.raises(HwrError, match="ckpt_path=.*nope.ckpt does not exist"):
        run(make_config("export", [f"ckpt_path={tmp_path / 'nope.ckpt'}"], tmp_path, tmp_path / "out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # nothing written


def test_failed_parity_leaves_nothing(english_run, tmp_path, monkeypatch):
    monkeypatch.setattr("hwr.inference.export.TOLERANCE", -1.0)  # no export can pass: the failure path
    with pytest.raises(HwrError, match=r"differs from PyTorch by .*nothing was written"):
        export_model(english_run[0] / "checkpoints" / "best.ckpt", "torchscript", tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces(english_run, tmp_path):
    ckpt = english_run[0] / "checkpoints" / "best.ckpt"
    target = tmp_path / "model.pt"
    target.write_text("old\n")
    overrides = [f"ckpt_path={ckpt}", "format=torchscript", f"output={target}", "overwrite=true"]
    run(make_config("export", overrides, tmp_path, tmp_path / "out"))
    assert ExportedModel.load(target).format == "torchscript"


@pytest.mark.slow  # starts processes
def test_cli_default_output_and_light_loading(english_run, tmp_path):
    """export.py writes <run>/export/model.onnx; loading it imports neither Lightning nor the Classifier."""
    out, _ = english_run
    ckpt = out / "checkpoints" / "best.ckpt"
    # A copy of the run folder: the session fixture's run stays as the other tests expect it.
    copy = tmp_path / "run" / "checkpoints" / "best.ckpt"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(ckpt.read_bytes())
    done = subprocess.run(
        [sys.executable, str(ROOT / "export.py"), f"ckpt_path={copy}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    model = tmp_path / "run" / "export" / "model.onnx"
    assert f"wrote {model}" in done.stdout and "parity: max |onnxruntime - PyTorch|" in done.stdout
    assert sorted(p.name for p in model.parent.iterdir()) == [
        "MODEL_CARD.md",
        "model.onnx",
        "model.onnx.json",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no Hydra run folder
    ink_png(tmp_path / "a.png", 3, writer=2)
    code = (
        "import sys; from PIL import Image; from hwr.inference.exported import ExportedModel; "
        f"top = ExportedModel.load({str(model)!r}).predict([Image.open({str(tmp_path / 'a.png')!r})]); "
        "print(top[0][0][0], *(m in sys.modules for m in "
        "('lightning', 'hwr.training.classifier', 'torch', 'hydra')))"
    )
    light = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert light.returncode == 0, light.stderr[-2000:]
    label, *loaded = light.stdout.split()
    # serving an ONNX export needs numpy, Pillow and onnxruntime only: no torch, Lightning or Hydra
    assert label in ENGLISH_CLASSES and loaded == ["False"] * 4
