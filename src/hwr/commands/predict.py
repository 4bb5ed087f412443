"""`hwr predict ckpt_path=... inputs=[img.png,folder/]` (or `python predict.py`): top-k classes
of image files.

Inputs may be files, folders (every image inside, recursively), glob patterns or `.txt` files
listing one path per line. Results print as a table (`hwr.runs.predict_view`: fitted to the
terminal), or as JSON (`json=true` or `--json`), and go to a CSV or JSON file with
`output=preds.csv` / `output=preds.json`. More images than a table can show get a summary, and
their rows go to `output=` (or `<paths.log_dir>/predict/<time>.csv`). With `labels=english.csv`
(columns image,label) the true labels are joined in and the accuracy is printed, with the
share of the images that are in the model's own training split (`training_overlap`).
Unreadable images are reported, not fatal: the others are still predicted and the exit
status is 1.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from hwr import bundled
from hwr.data.folder import FolderDataModule
from hwr.data.sets import split_indices
from hwr.errors import HwrError
from hwr.evaluation.casefold import fold_members
from hwr.evaluation.names import lookalike_names
from hwr.files import write_text
from hwr.inference.checkpoint import TrainedOn
from hwr.inference.model import Prediction, TrainedModel
from hwr.preprocess import IMAGE_SUFFIXES, load_image
from hwr.runs import console, predict_view
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
    model: TrainedModel,
    paths: Sequence[Path],
    top_k: int,
    chunk: int = 256,
    progress: Callable[[int], None] | None = None,
) -> list[Prediction]:
    """Predict every file; a file that cannot be read gets a Prediction with `error` set.
    `progress` is called with each chunk's number of files once it is done."""
    results: list[Prediction] = []
    for start in range(0, len(paths), chunk):  # bounded memory for big folders
        images, sources = [], []
        for path in paths[start : start + chunk]:
            try:
                images.append(load_image(path))
                sources.append(str(path))
            except HwrError as e:
                results.append(Prediction(source=str(path), error=str(e)))
        results += model.predict(images, sources, top_k, fold_members(model.classes))
        if progress is not None:
            progress(len(paths[start : start + chunk]))
    order = {str(p): i for i, p in enumerate(paths)}
    return sorted(results, key=lambda r: order.get(r.source, 0))


@dataclass(frozen=True)
class Overlap:
    """Which images a checkpoint's own dataset puts in its training pool (train + validation)
    and which in its test split, as resolved paths; `exact` is False when the dataset's file
    list could not be read and only the folder's name says the inputs may be its images."""

    dataset: str
    seen: frozenset[Path]
    test: frozenset[Path]
    exact: bool = True


def split_files(dm: FolderDataModule) -> tuple[set[Path], set[Path]]:
    """(training pool, test split) of a folder set as resolved paths, drawn from its file list
    alone as `FolderDataModule` draws it (`split_indices` on class indices or writers): no
    image is decoded."""
    files = dm.files
    paths = [p.resolve() for p in files.paths]
    if dm.test_files_index is not None:  # a test folder of its own: all of `folder` trained
        return set(paths), {p.resolve() for p in dm.test_files_index.paths}
    index = {name: i for i, name in enumerate(dm.class_names)}
    labels = torch.tensor([index[label] for label in files.labels])
    groups = torch.tensor(files.writers) if dm.split_by == "writer" else None
    keep, held = split_indices(labels, dm.test_fraction, dm.hparams.seed, groups)
    return {paths[i] for i in keep.tolist()}, {paths[i] for i in held.tolist()}


def _folder_sets(on: TrainedOn, data_dir: Path, inputs: set[Path]) -> list[FolderDataModule]:
    """The folder sets a checkpoint trained on, read from `data_dir` as recorded, and (its
    own folder moved) from any folder of the inputs' with the recorded folder's name."""
    from hwr.data.mix import MixDataModule

    cls = on.datamodule_class()
    if issubclass(cls, MixDataModule):
        return [s for s in on.datamodule(data_dir).sources.values() if isinstance(s, FolderDataModule)]
    if not issubclass(cls, FolderDataModule) or not on.split.get("folder"):
        return []
    name = Path(str(on.split["folder"])).name
    moved = {parent for path in inputs for parent in path.parents if parent.name == name}
    return [
        on.datamodule(data_dir),
        *(cls(**{**on.split, "folder": str(p), "data_dir": data_dir}) for p in sorted(moved)),
    ]


def training_overlap(model: TrainedModel, paths: Sequence[Path], data_dir: str | Path) -> Overlap | None:
    """Which of `paths` the model's training data holds (see `Overlap`); None when its dataset
    is not a folder of image files, or none of `paths` lies in it."""
    inputs = {p.resolve() for p in paths}
    try:
        sets = _folder_sets(model.trained_on, Path(data_dir), inputs)
    except Exception:  # noqa: BLE001 - a class not importable here, other arguments: a nicety lost
        return None
    seen: set[Path] = set()
    test: set[Path] = set()
    checked, read = set(), False
    for dm in sets:
        root = dm.root.resolve()
        if root in checked or not any(root in p.parents for p in inputs):
            continue
        checked.add(root)
        try:
            train_files, test_files = split_files(dm)
        except Exception:  # noqa: BLE001 - not the layout it was trained from: say less, not wrong
            continue
        read, seen, test = True, seen | (train_files & inputs), test | (test_files & inputs)
    return Overlap(model.trained_on.name, frozenset(seen), frozenset(test), read) if checked else None


def accuracy(rows: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """(right, labelled) among `rows`."""
    known = [r for r in rows if "true" in r]
    return sum(bool(r["correct"]) for r in known), len(known)


def overlap_record(overlap: Overlap | None, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How many of `rows` are in the training pool and in the test split, and the accuracy on
    the test split's labelled ones (--json's `training_overlap`); {} when unknown."""
    if overlap is None or not overlap.exact:
        return {}
    resolved = [Path(r["source"]).resolve() for r in rows]
    right, known = accuracy([r for r, p in zip(rows, resolved, strict=True) if p in overlap.test])
    return {
        "dataset": overlap.dataset,
        "in_training_split": sum(p in overlap.seen for p in resolved),
        "in_test_split": sum(p in overlap.test for p in resolved),
        "test_split_accuracy": right / known if known else None,
        "test_split_counts": [right, known],
    }


def overlap_lines(overlap: Overlap | None, rows: Sequence[dict[str, Any]]) -> list[str]:
    """What the accuracy means when some inputs are the model's training images."""
    if overlap is not None and not overlap.exact:
        return [
            f"these images are in a folder named like the model's training set ({overlap.dataset}), "
            "whose file list could not be read: if they are its images, accuracy on them is not a test score"
        ]
    record = overlap_record(overlap, rows)
    if not record.get("in_training_split"):
        return []
    lines = [
        f"{record['in_training_split']} of {len(rows)} images are in the model's training split "
        f"({record['dataset']}: train + validation): accuracy on them is not a test score"
    ]
    right, known = record["test_split_counts"]
    if known:
        lines.append(f"accuracy on the {known} in its test split: {right / known:.4f} ({right}/{known})")
    return lines


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


def write_rows(path: Path, payload: dict[str, Any], top_k: int) -> None:
    """The rows as JSON (a `.json` path: the same object --json prints) or CSV, atomically."""
    if path.suffix.lower() == ".json":
        write_text(path, json.dumps(payload, indent=1) + "\n", "the predictions")
    else:
        write_csv(path, payload["predictions"], top_k)


def default_output(log_dir: str | Path) -> Path:
    """`<log_dir>/predict/<time>.csv` (`_1`, `_2`, ... when taken): where a large input's rows
    go when no output= is given."""
    stem = Path(log_dir) / "predict" / time.strftime("%Y-%m-%d_%H-%M-%S")
    path, n = stem.with_suffix(".csv"), 0
    while path.exists():
        n += 1
        path = stem.with_name(f"{stem.name}_{n}.csv")
    return path


def run(cfg: DictConfig) -> int:
    """Predict `cfg.inputs` with `cfg.ckpt_path`; print/write the results; return the exit status."""
    output = Path(cfg.output) if cfg.get("output") else None
    if output is not None and output.exists() and not cfg.get("overwrite"):
        raise HwrError(f"{output} exists; pass overwrite=true or another output=")
    top_k = int(cfg.top_k)
    paths = collect_inputs(cfg.inputs)  # a ListConfig is a sequence like any other
    ckpt_path = bundled.default(cfg.ckpt_path, console.note)  # none given: the bundled model, said so
    model = TrainedModel.load(ckpt_path, cfg.device, tta_shift=cfg.get("tta_shift"))
    with predict_view.progress(len(paths)) as advance:
        results = predict_files(model, paths, top_k, progress=advance)
    rows = [r.as_dict() for r in results]
    summary: list[str] = []
    if cfg.get("labels"):
        truth = read_labels(cfg.labels)
        for row in rows:
            true = truth.get(Path(row["source"]).resolve())
            if true is not None:
                row["true"], row["correct"] = true, row.get("label") == true
        right, known = accuracy(rows)
        if not known:
            raise HwrError(f"none of the inputs is listed in {cfg.labels}")
        summary.append(f"accuracy {right / known:.4f} ({right}/{known} labelled images)")
    overlap = training_overlap(model, paths, cfg.paths.data_dir)
    summary += overlap_lines(overlap, rows)
    payload = {"predictions": rows, **({"summary": "; ".join(summary)} if summary else {})}
    record = overlap_record(overlap, rows)
    if record:
        payload["training_overlap"] = {k: v for k, v in record.items() if k != "test_split_counts"}
    errors = [r for r in results if r.error]
    names = lookalike_names(model.class_names)
    large = not cfg.get("json") and len(rows) > predict_view.TABLE_ROWS
    if large:  # no table: the file is the result, so it is written before anything is said
        output = output or default_output(cfg.paths.log_dir)
        try:
            write_rows(output, payload, top_k)
        except HwrError as e:
            predict_view.print_lines([predict_view.counts_line(rows), *summary])
            raise HwrError(f"{e}; the summary is printed above, --json prints every row") from e
        predict_view.print_summary(rows, names, summary, str(output))
    elif cfg.get("json"):  # printed first: an output file that cannot be written must not cost them
        console.print_json(payload)
    else:
        predict_view.print_table(rows, names, summary)
    for r in errors[: 10 if large else None]:
        console.print_error(r.error)
    if large and len(errors) > 10:
        console.note(f"... and {len(errors) - 10} more unreadable images (their rows say why)")
    if output is not None and not large:
        try:
            write_rows(output, payload, top_k)
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
