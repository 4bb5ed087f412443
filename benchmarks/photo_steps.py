"""What hwr.paper's photograph steps cost on clean scans: changed pixels and time per image.

    HWR_DATA_DIR=<datasets> uv run benchmarks/photo_steps.py [--limit 3410]

Every English Hnd scan goes through `preprocess_image` twice, in the English DataModule's
framing: as shipped, and with the three photograph steps (levelling shaded paper, dropping
edge lines, lifting light strokes) replaced by "leave it as it is". It prints how many scans
come out different (the steps are meant to change none) and the mean time per scan of each.
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from hwr import paper, preprocess
from hwr.data.base import default_data_dir
from hwr.data.english import EnglishDataModule


@contextmanager
def without_photo_steps():
    """preprocess_image as it was before hwr.paper's three photograph steps."""
    saved = paper.flatten_paper, preprocess.drop_edge_lines, preprocess.even_strokes
    paper.flatten_paper = preprocess.drop_edge_lines = preprocess.even_strokes = lambda ink: ink
    try:
        yield
    finally:
        paper.flatten_paper, preprocess.drop_edge_lines, preprocess.even_strokes = saved


def timed(images: list[Image.Image], frame: preprocess.Preprocessing) -> tuple[np.ndarray, float]:
    """The images' pixels and the mean seconds per image."""
    start = time.perf_counter()
    pixels = np.stack([frame.pixels(image) for image in images])
    return pixels, (time.perf_counter() - start) / len(images)


def main(argv: list[str] | None = None) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--data-dir", default=str(default_data_dir()), help="datasets folder ($HWR_DATA_DIR)")
    parser.add_argument("--limit", type=int, help="scans to use (default: all)")
    args = parser.parse_args(argv)
    dm = EnglishDataModule(args.data_dir)
    paths = dm.files.paths[: args.limit]
    if not paths:
        raise SystemExit(f"error: no English Hnd scans under {Path(args.data_dir) / 'english'}")
    images = []
    for path in paths:
        with Image.open(path) as image:
            image.load()
            images.append(image.copy())
    frame = dm.preprocessing()
    shipped, t_shipped = timed(images, frame)
    with without_photo_steps():
        plain, t_plain = timed(images, frame)
    changed = int((shipped != plain).reshape(len(images), -1).any(axis=1).sum())
    print(f"{len(images)} English Hnd scans; {changed} come out different with the photograph steps")
    print(f"preprocess_image: {t_shipped * 1000:.1f} ms a scan with them, {t_plain * 1000:.1f} ms without")


if __name__ == "__main__":
    main()
