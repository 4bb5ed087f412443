"""How much accuracy survives when English Hnd test characters arrive as a user's small crops.

Each test scan of the checkpoint's own English split is redrawn the way handwriting often
arrives: cropped tight to its ink, about `--size` px on its longer side, on grey paper with the
ink at `--contrast` of the paper's level, with mild noise. The crops go through `hwr.preprocess`
(`TrainedModel.predict`, as predict.py and the web page do) and the model's accuracy is compared
with eval.py's on the dataset tensors and with the full-size scans read by predict.py.

    uv run scripts/redrawn_check.py <english run>/checkpoints/best.ckpt --out outputs/redrawn
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image

from hwr.commands.predict import predict_files
from hwr.data.base import default_data_dir
from hwr.data.english import EnglishDataModule
from hwr.data.folder import FolderDataModule
from hwr.data.mix import GEOMETRY, MixDataModule, reframe
from hwr.errors import HwrError
from hwr.inference.model import TrainedModel


def english_test(
    model: TrainedModel, data_dir: str | Path, cache_dir: str | Path | None = None
) -> tuple[FolderDataModule, str]:
    """The English test split the model was trained with (its own, or its mix's English source),
    else EnglishDataModule's default split; and a note saying which."""
    trained_on = model.trained_on
    cls = trained_on.datamodule_class()
    if issubclass(cls, FolderDataModule):
        return trained_on.datamodule(data_dir, cache_dir), f"{trained_on.name}'s own test split"
    if issubclass(cls, MixDataModule):
        mix = trained_on.datamodule(data_dir, cache_dir)
        folders = {k: s for k, s in mix.sources.items() if isinstance(s, FolderDataModule)}
        english = [k for k, s in folders.items() if isinstance(s, EnglishDataModule)] or list(folders)
        if english:
            return mix.sources[english[0]], f"the test split of its mix's source {english[0]!r}"
    note = f"trained on {trained_on.name}: EnglishDataModule's default split"
    return EnglishDataModule(data_dir, cache_dir=cache_dir), note


def tensor_accuracy(model: TrainedModel, dm: FolderDataModule, keep: np.ndarray) -> float:
    """eval.py's figure: the test tensors (`keep` of them), normalised as in training, classes by name."""
    dm.setup("test")
    images = dm.test_set.images.cpu()[keep]
    theirs, ours = dm.preprocessing(), model.preprocessing
    if any(getattr(theirs, k) != getattr(ours, k) for k in GEOMETRY):
        images = reframe(images, ours)  # the model's own framing, as a mix does
    truth = [dm.class_names[i] for i in dm.test_set.labels.cpu()[keep].tolist()]
    index = model.probabilities(model.preprocessing.normalise(images.numpy())).argmax(1).tolist()
    return float(np.mean([model.classes[i] == name for i, name in zip(index, truth, strict=True)]))


def redraw(path: Path, rng: np.random.Generator, size: int, contrast: float, paper: int) -> Image.Image:
    """One scan (dark ink on white) -> a tight crop, longer side 0.75-1.25 x `size` px, 1-2 px
    pad, on `paper`-grey paper with black at paper * (1 - contrast), plus mild noise."""
    with Image.open(path) as image:
        gray = image.convert("L")
    rows, cols = np.nonzero(np.asarray(gray) < 128)
    if len(rows) == 0:
        raise HwrError(f"{path} has no dark ink to crop to")
    crop = gray.crop((cols.min(), rows.min(), cols.max() + 1, rows.max() + 1))
    target = max(4, round(size * rng.uniform(0.75, 1.25)))
    scale = target / max(crop.size)
    width, height = max(1, round(crop.width * scale)), max(1, round(crop.height * scale))
    small = crop.resize((width, height), Image.Resampling.LANCZOS)
    dark = np.clip(1 - np.asarray(small, np.float32) / 255, 0, 1)
    dark /= max(float(dark.max()), 1e-6)  # the darkest ink at exactly `contrast` below the paper
    pad = int(rng.integers(1, 3))
    page = np.zeros((dark.shape[0] + 2 * pad, dark.shape[1] + 2 * pad), np.float32)
    page[pad : pad + dark.shape[0], pad : pad + dark.shape[1]] = dark
    grey = paper * (1 - contrast * page) + rng.normal(0, 3, page.shape)
    return Image.fromarray(np.clip(np.round(grey), 0, 255).astype(np.uint8))


def save_redrawn(images: list[Image.Image], files: list[tuple[Path, str]], out: Path) -> Path:
    """The crops as PNGs and an image,label csv (names relative to it) for predict.py's labels=."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (image, (path, label)) in enumerate(zip(images, files, strict=True)):
        name = f"{i:04d}-{path.stem}.png"
        image.save(out / name)
        rows.append((name, label))
    with open(out / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label"])
        writer.writerows(rows)
    return out / "labels.csv"


def check(
    ckpt_path: str | Path,
    data_dir: str | Path,
    limit: int | None = None,
    out: Path | None = None,
    size: int = 32,
    contrast: float = 0.6,
    paper: int = 180,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> dict[str, float]:
    """Print the three accuracies as a markdown table and return them."""
    model = TrainedModel.load(ckpt_path, device="cpu")
    dm, note = english_test(model, data_dir, cache_dir)
    test_files = dm.test_files()
    known = [label in model.classes for _, label in test_files]
    keep = np.nonzero(known)[0][:limit]
    files = [test_files[i] for i in keep]
    eval_acc = tensor_accuracy(model, dm, keep)
    scans = predict_files(model, [path for path, _ in files], top_k=1)
    png_acc = float(np.mean([r.label == label for r, (_, label) in zip(scans, files, strict=True)]))
    rng = np.random.default_rng(seed)
    crops = [redraw(path, rng, size, contrast, paper) for path, _ in files]
    guesses = model.predict(crops, top_k=1)
    redrawn_acc = float(np.mean([p.label == label for p, (_, label) in zip(guesses, files, strict=True)]))
    skipped = f", {len(known) - sum(known)} of classes it lacks left out" if not all(known) else ""
    print(f"{len(files)} English Hnd test images ({note}{skipped})\n")
    print(f"| input ({len(files)} English Hnd test images) | accuracy | of eval.py's |\n|---|---:|---:|")
    rows = {
        "dataset tensors (eval.py)": eval_acc,
        "test PNGs through hwr.preprocess (predict.py)": png_acc,
        f"redrawn: tight ~{size} px crops, grey paper, {contrast:.0%} contrast": redrawn_acc,
    }
    for name, acc in rows.items():
        print(f"| {name} | {acc:.4f} | {acc / eval_acc if eval_acc else float('nan'):.1%} |")
    kept = redrawn_acc / eval_acc if eval_acc else float("nan")
    print(f"\nthe redrawn-crop check keeps {kept:.1%} of eval.py's accuracy (target >= 95%)")
    if out is not None:
        labels = save_redrawn(crops, files, out)
        print(f"\nredrawn crops in {out}; read them as a user's files with\n"
              f"  python predict.py ckpt_path={ckpt_path} inputs=[{out}] labels={labels}")  # fmt: skip
    return {"eval": eval_acc, "png": png_acc, "redrawn": redrawn_acc, "kept": kept}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ckpt_path", help="a 62-character checkpoint (English, a mix, EMNIST ByClass)")
    parser.add_argument("--data-dir", default=str(default_data_dir()), help="datasets folder ($HWR_DATA_DIR)")
    parser.add_argument("--limit", type=int, help="test images to use (default: all)")
    parser.add_argument("--out", type=Path, help="also save the redrawn crops and labels.csv here")
    parser.add_argument("--size", type=int, default=32, help="crop size in px (longer side, varied +-25%%)")
    parser.add_argument("--contrast", type=float, default=0.6, help="ink darkness as a share of the paper's")
    parser.add_argument("--paper", type=int, default=180, help="grey level of the paper (0-255)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        check(**vars(args))
    except HwrError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
