"""`hwr predict ckpt_path=... inputs=[img.png,folder/]` (or `python predict.py`): top-k classes
of image files.

Inputs may be files, folders (every image inside, recursively), glob patterns or `.txt` files
listing one path per line. Results print as a table, or as JSON (`json=true` or `--json`), and
go to a CSV with `output=preds.csv`. With `labels=english.csv` (columns image,label) the true
labels are joined in and the accuracy is printed. Unreadable images are reported, not fatal:
the others are still predicted and the exit status is 1.
"""

from __future__ import annotations

import csv
import glob
import io
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from hwr.errors import HwrError
from hwr.evaluation.names import lookalike_names
from hwr.files import write_text
from hwr.inference.model import Prediction, TrainedModel
from hwr.preprocess import IMAGE_SUFFIXES, load_image
from hwr.runs import console
from hwr.runs.entry import command


def collect_inputs(specs: str | Sequence[str]) -> list[Path]:
    """Files, folders, globs and .txt lists -> image paths, in the order given (folders sorted)."""
    paths: list[Path] = []
    for spec in [specs] if isinstance(specs, str) else list(specs):
        spec = str(spec)
        if glob.has_magic(spec):
            found = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
            if not found:
                raise HwrError(f"no file matches {spec}")
            paths += found
            continue
        path = Path(spec)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise HwrError(f"folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            paths += found
        elif path.suffix.lower() == ".txt" and path.is_file():
            lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            paths += [Path(line) if Path(line).is_absolute() else path.parent / line for line in lines]
        elif path.is_file():
            paths.append(path)
        else:
            raise HwrError(f"input not found: {path}; pass image files, folders, globs or a .txt list")
    if not paths:
        raise HwrError("inputs is empty; pass inputs=[image.png,folder/]")
    return paths


def read_labels(csv_path: str | Path) -> dict[Path, str]:
    """A csv with `image` and `label` columns (english.csv's format) -> {resolved path: label}."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise HwrError(f"labels file not found: {csv_path}")
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"image", "label"} <= set(reader.fieldnames or []):
            raise HwrError(f"{csv_path} needs the columns image,label (got {reader.fieldnames})")
        return {(csv_path.parent / row["image"]).resolve(): row["label"] for row in reader}


def predict_files(
    model: TrainedModel, paths: Sequence[Path], top_k: int, chunk: int = 256
) -> list[Prediction]:
    """Predict every file; a file that cannot be read gets a Prediction with `error` set."""
    results: list[Prediction] = []
    for start in range(0, len(paths), chunk):  # bounded memory for big folders
        images, sources = [], []
        for path in paths[start : start + chunk]:
            try:
                images.append(load_image(path))
                sources.append(str(path))
            except HwrError as e:
                results.append(Prediction(source=str(path), error=str(e)))
        results += model.predict(images, sources, top_k)
    order = {str(p): i for i, p in enumerate(paths)}
    return sorted(results, key=lambda r: order.get(r.source, 0))


def write_csv(path: Path, rows: list[dict], top_k: int) -> None:
    """The predictions as a CSV (written atomically: a failure leaves no half file)."""
    columns = ["source", "label", *[f"{part}{i}" for i in range(1, top_k + 1) for part in ("top", "prob")]]
    columns += [c for c in ("true", "correct", "blank", "error") if any(c in r for r in rows)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        flat = dict(row)
        for i, entry in enumerate(row.get("top", []), start=1):
            flat[f"top{i}"], flat[f"prob{i}"] = entry["label"], f"{entry['prob']:.6f}"
        writer.writerow(flat)
    write_text(path, buffer.getvalue(), "the predictions")


def run(cfg: DictConfig) -> int:
    """Predict `cfg.inputs` with `cfg.ckpt_path`; print/write the results; return the exit status."""
    output = Path(cfg.output) if cfg.get("output") else None
    if output is not None and output.exists() and not cfg.get("overwrite"):
        raise HwrError(f"{output} exists; pass overwrite=true or another output=")
    top_k = int(cfg.top_k)
    paths = collect_inputs(cfg.inputs)  # a ListConfig is a sequence like any other
    model = TrainedModel.load(cfg.ckpt_path, cfg.device, tta_shift=cfg.get("tta_shift"))
    results = predict_files(model, paths, top_k)
    rows = [r.as_dict() for r in results]
    summary = ""
    if cfg.get("labels"):
        truth = read_labels(cfg.labels)
        known = [row for row, r in zip(rows, results, strict=True) if Path(r.source).resolve() in truth]
        for row in known:
            row["true"] = truth[Path(row["source"]).resolve()]
            row["correct"] = row.get("label") == row["true"]
        if not known:
            raise HwrError(f"none of the inputs is listed in {cfg.labels}")
        right = sum(row["correct"] for row in known)
        summary = f"accuracy {right / len(known):.4f} ({right}/{len(known)} labelled images)"
    # printed first: an output file that cannot be written must not cost the predictions
    if cfg.get("json"):
        console.print_json({"predictions": rows, **({"summary": summary} if summary else {})})
    else:
        console.print_predictions(rows, summary, lookalike_names(model.class_names))
    errors = [r for r in results if r.error]
    for r in errors:
        console.print_error(r.error)
    if output is not None:
        try:
            write_csv(output, rows, top_k)
        except HwrError as e:
            raise HwrError(f"{e}; the predictions are printed above") from e
        console.note(f"wrote {output}")
    return 1 if errors else 0


@command("predict", run_folder=False)
def predict(cfg: DictConfig) -> None:
    """`run(cfg)`, exiting with its status when an input could not be read."""
    status = run(cfg)
    if status:
        raise SystemExit(status)


main = predict.main
