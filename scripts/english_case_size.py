"""How far can size alone tell a lowercase letter from its capital in English Hnd?

    uv run scripts/english_case_size.py [--report <run dir>/report]

Crop-to-ink preprocessing removes the size of a character, and for c/C, o/O, s/S, v/V, w/W,
x/X, z/Z ... size is nearly the only difference. For each such pair this measures the ink
box height as a share of the page and prints the accuracy of the best single height
threshold (the ceiling for any size cue that ignores who wrote it). With --report it also
prints how often a trained model confused the two cases, from its confusion_matrix.csv.
"""

from __future__ import annotations

import argparse
import csv
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from hwr.data.folder import scan_folder
from hwr.paper import ink_on_black

PAIRS = "cklmopsuvwxyz"


def ink_height(path: Path) -> float:
    """Height of the ink's bounding box as a share of the image height."""
    gray = Image.open(path).convert("L")
    gray = gray.reduce(max(1, min(gray.size) // 256))
    ink = ink_on_black(np.asarray(gray)).astype(np.float32)
    ink = (ink - ink.min()) / max(float(ink.max() - ink.min()), 1.0)
    rows = np.nonzero((ink >= 0.25).any(axis=1))[0]
    return (rows[-1] - rows[0] + 1) / ink.shape[0] if len(rows) else 0.0


def best_threshold_accuracy(lower: np.ndarray, upper: np.ndarray) -> float:
    """Accuracy of 'capital when taller than t' at the best t."""
    heights = np.concatenate([lower, upper])
    is_upper = np.concatenate([np.zeros(len(lower)), np.ones(len(upper))])
    return max(float(np.mean((heights > t) == is_upper)) for t in np.unique(heights))


def model_pair_errors(report: Path) -> dict[str, tuple[int, int]]:
    """{letter: (confusions between its two cases, images of both cases)} from a report."""
    with open(report / "confusion_matrix.csv", newline="") as f:
        rows = list(csv.reader(f))
    names, counts = rows[0][1:], np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    index = {n: i for i, n in enumerate(names)}
    out = {}
    for ch in PAIRS:
        a, b = index[ch], index[ch.upper()]
        out[ch] = (int(counts[a, b] + counts[b, a]), int(counts[a].sum() + counts[b].sum()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("HWR_DATA_DIR", "data")) / "english")
    parser.add_argument("--report", type=Path, help="a report/ folder of an English Hnd run")
    args = parser.parse_args()
    files = scan_folder(args.data)
    wanted = [i for i, label in enumerate(files.labels) if label.lower() in PAIRS]
    with ProcessPoolExecutor() as pool:
        heights = list(pool.map(ink_height, [files.paths[i] for i in wanted], chunksize=32))
    by_label: dict[str, list[float]] = {}
    for i, h in zip(wanted, heights, strict=True):
        by_label.setdefault(files.labels[i], []).append(h)
    errors = model_pair_errors(args.report) if args.report else {}
    print("| pair | lowercase height | capital height | size-threshold accuracy | model's case accuracy |")
    print("|---|---:|---:|---:|---:|")
    for ch in PAIRS:
        lower, upper = np.array(by_label[ch]), np.array(by_label[ch.upper()])
        model = ""
        if ch in errors:
            wrong, total = errors[ch]
            model = f"{1 - wrong / total:.0%} ({wrong}/{total} confused)"
        sizes = f"{lower.mean():.2f} ± {lower.std():.2f} | {upper.mean():.2f} ± {upper.std():.2f}"
        print(f"| {ch}/{ch.upper()} | {sizes} | {best_threshold_accuracy(lower, upper):.0%} | {model} |")


if __name__ == "__main__":
    main()
