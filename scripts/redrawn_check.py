"""How much accuracy survives when English Hnd test characters arrive as a user's small crops.

Each test scan of the checkpoint's own English split is redrawn the way handwriting often
arrives: cropped tight to its ink, about `--size` px on its longer side, on grey paper with the
ink at `--contrast` of the paper's level, with mild noise: the plain look. Four more looks add
what photographs of paper bring (LOOKS): shading across the paper, a paper edge along one border,
light pencil strokes, JPEG noise on darker paper. The crops go through `hwr.preprocess`
(`TrainedModel.predict`, as predict.py and the web page do) and the model's accuracy on each
look is compared with eval.py's on the dataset tensors and with the full-size scans read by
predict.py.

    uv run scripts/redrawn_check.py bundled --out outputs/redrawn
    uv run scripts/redrawn_check.py <english run>/checkpoints/best.ckpt --looks plain gradient
"""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Sequence
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


# How each look departs from the plain one (grey paper, even light, ink of one darkness).
LOOKS = {
    "plain": "tight crop on grey paper",
    "gradient": "paper shaded darker across the crop (to 55-65%)",
    "edge": "a paper edge line along one border",
    "light": "half the strokes at 40% of the rest's darkness (a pencil pressed unevenly)",
    "jpeg": "darker grey paper, more noise, JPEG quality 30-50",
}


def known_look(look: str) -> str:
    """`look`, or a one-line error naming the looks there are."""
    if look not in LOOKS:
        raise HwrError(f"unknown look {look!r}; choose from {', '.join(LOOKS)}")
    return look


def _accuracy(guesses: Sequence, files: Sequence[tuple[Path, str]]) -> float:
    """The share of predictions (anything with `.label`) that name the file's class."""
    return float(np.mean([g.label == label for g, (_, label) in zip(guesses, files, strict=True)]))


def _tight_ink(path: Path, rng: np.random.Generator, size: int) -> np.ndarray:
    """One scan (dark ink on white) -> its ink cropped tight, longer side 0.75-1.25 x `size` px,
    as darkness in [0, 1] with the darkest pixel at 1."""
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
    return dark / max(float(dark.max()), 1e-6)


def _half_pressed(dark: np.ndarray, rng: np.random.Generator, light: float = 0.4) -> np.ndarray:
    """The ink on one side of a random line through its centre of mass at `light` of its
    darkness (a pencil pressed unevenly), blending over 2 px."""
    y, x = np.indices(dark.shape, dtype=np.float32)
    mass = max(float(dark.sum()), 1e-6)
    cy, cx = float((y * dark).sum()) / mass, float((x * dark).sum()) / mass
    angle = rng.uniform(0, 2 * np.pi)
    side = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
    return dark * (light + (1 - light) * np.clip(0.5 - side / 2, 0, 1))


def _edge_line(page: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """`page` with paper added on one side and a dark line 1-3 px thick along that border,
    the full side long, tilted up to 1 px, 15-30% of `size` away from the character."""
    side = int(rng.integers(4))
    page = np.rot90(page, side)  # work on the top side, then turn back
    gap, thick = round(size * rng.uniform(0.15, 0.3)), int(rng.integers(1, 4))
    offset, darkness, tilt = int(rng.integers(0, 2)), rng.uniform(0.6, 1.0), rng.uniform(-1, 1)
    top = offset + thick + gap
    out = np.zeros((page.shape[0] + top, page.shape[1]), np.float32)
    out[top:] = page
    for col in range(out.shape[1]):
        start = offset + round(tilt * col / max(1, out.shape[1] - 1))
        out[max(0, start) : start + thick, col] = darkness
    return np.rot90(out, -side)


def redraw(
    path: Path, rng: np.random.Generator, size: int, contrast: float, paper: int, look: str = "plain"
) -> Image.Image:
    """One scan (dark ink on white) -> a tight crop, longer side 0.75-1.25 x `size` px, 1-2 px
    pad, on `paper`-grey paper with black at paper * (1 - contrast), plus mild noise; `look`
    (one of LOOKS) adds one photographed fault."""
    known_look(look)
    dark = _tight_ink(path, rng, size)
    if look == "light":
        dark = _half_pressed(dark, rng)
    pad = int(rng.integers(1, 3))
    page = np.zeros((dark.shape[0] + 2 * pad, dark.shape[1] + 2 * pad), np.float32)
    page[pad : pad + dark.shape[0], pad : pad + dark.shape[1]] = dark
    if look == "edge":
        page = _edge_line(page, rng, size)
    light, noise = np.full(page.shape, float(paper), np.float32), 3.0
    if look == "gradient":
        # reflectance times illumination: the ink darkens with the paper it is on
        y, x = np.indices(page.shape, dtype=np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        along = x * np.cos(angle) + y * np.sin(angle)
        along = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
        light *= 1 - rng.uniform(0.35, 0.45) * along
    if look == "jpeg":
        light[:] = rng.uniform(120, 170)
        noise = 6.0
    grey = light * (1 - contrast * page) + rng.normal(0, noise, page.shape)
    image = Image.fromarray(np.clip(np.round(grey), 0, 255).astype(np.uint8))
    if look == "jpeg":
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(rng.integers(30, 51)))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("L")
    return image


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
    looks: Sequence[str] = tuple(LOOKS),
) -> dict[str, float]:
    """Print the accuracies (eval.py's, the scans', each look's) as a markdown table and
    return them: `eval`, `png`, and per look its accuracy and `kept/<look>`, its share of
    eval.py's (`redrawn` and `kept` are the plain look's)."""
    looks = [known_look(look) for look in looks]  # before the model and data are loaded
    model = TrainedModel.load(ckpt_path, device="cpu")
    dm, note = english_test(model, data_dir, cache_dir)
    test_files = dm.test_files()
    known = [label in model.classes for _, label in test_files]
    keep = np.nonzero(known)[0][:limit]
    files = [test_files[i] for i in keep]
    eval_acc = tensor_accuracy(model, dm, keep)
    scans = predict_files(model, [path for path, _ in files], top_k=1)
    result = {"eval": eval_acc}
    result["png"] = _accuracy(scans, files)
    crops = {}
    for look in looks:
        # each look its own draws: adding or dropping one leaves the others' crops as they were
        rng = np.random.default_rng([seed, list(LOOKS).index(look)] if look != "plain" else seed)
        crops[look] = [redraw(path, rng, size, contrast, paper, look) for path, _ in files]
        result[look] = _accuracy(model.predict(crops[look], top_k=1), files)
        result[f"kept/{look}"] = result[look] / eval_acc if eval_acc else float("nan")
    if "plain" in looks:
        result["redrawn"], result["kept"] = result["plain"], result["kept/plain"]
    skipped = f", {len(known) - sum(known)} of classes it lacks left out" if not all(known) else ""
    print(f"{len(files)} English Hnd test images ({note}{skipped}); redrawn as tight ~{size} px crops "
          f"on grey paper ({paper}), ink at {contrast:.0%} contrast\n")  # fmt: skip
    print("| input | accuracy | of eval.py's | target |\n|---|---:|---:|---:|")
    rows = {"dataset tensors (eval.py)": "eval", "test PNGs through hwr.preprocess (predict.py)": "png"}
    rows |= {f"redrawn, {look}: {LOOKS[look]}": look for look in looks}
    for name, key in rows.items():
        target = "" if key in ("eval", "png") else ">= 95%" if key == "plain" else ">= 90%"
        share = result[key] / eval_acc if eval_acc else float("nan")
        print(f"| {name} | {result[key]:.4f} | {share:.1%} | {target} |")
    if "plain" in looks:
        print(f"\nthe redrawn-crop check keeps {result['kept']:.1%} of eval.py's accuracy (target >= 95%)")
    low = [look for look in looks if look != "plain" and result[f"kept/{look}"] < 0.9]
    if len(looks) > ("plain" in looks):
        print("every photographed look keeps >= 90%" if not low else f"below 90%: {', '.join(low)}")
    if out is not None:
        print(f"\nredrawn crops in {out}/<look>; read them as a user's files with")
        for look in looks:
            labels = save_redrawn(crops[look], files, out / look)
            print(f"  python predict.py ckpt_path={ckpt_path} inputs=[{out / look}] labels={labels}")
    return result


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
    looks = list(LOOKS)
    parser.add_argument("--looks", nargs="+", default=looks, choices=looks, help="which looks to draw")
    args = parser.parse_args()
    try:
        check(**vars(args))
    except HwrError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
