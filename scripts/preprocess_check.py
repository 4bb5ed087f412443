"""How much accuracy survives when test digits arrive as drawings instead of dataset tensors.

Each MNIST test image is turned into the kind of picture a user sends: enlarged onto a big
canvas, off-centre, in other colours, as a noisy photo or drawn with a thin pen. Every
picture then goes through `hwr.preprocess` (what predict.py and the web page do) and the
model's accuracy is compared with its accuracy on the dataset tensors themselves.

    uv run scripts/preprocess_check.py <mnist run>/checkpoints/best.ckpt --limit 2000
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch
from PIL import Image

from hwr.data.base import default_data_dir
from hwr.data.mnist import MNISTDataModule
from hwr.inference.model import TrainedModel


def canvas(digit: np.ndarray, rng: np.random.Generator, variant: str) -> Image.Image:
    """One 28x28 white-on-black digit -> a picture of it as a user might send it."""
    scale = int(rng.integers(6, 14))  # 170-390 px tall
    big = Image.fromarray(digit).resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC)
    ink = np.asarray(big).astype(np.float32) / 255
    if variant == "thin pen":  # keep only the stroke's core: a 1-3 px line on the big canvas
        ink = (ink > 0.97).astype(np.float32)
    width, height = 28 * scale + int(rng.integers(40, 300)), 28 * scale + int(rng.integers(40, 200))
    page = np.zeros((height, width), dtype=np.float32)
    top, left = int(rng.integers(0, height - ink.shape[0])), int(rng.integers(0, width - ink.shape[1]))
    page[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    paper, pen = {
        "black on white": ((255, 255, 255), (0, 0, 0)),
        "thin pen": ((255, 255, 255), (0, 0, 0)),
        "blue on yellow": ((255, 235, 120), (20, 40, 200)),
        "white on dark grey": ((40, 40, 40), (255, 255, 255)),
        "noisy photo": ((185, 180, 170), (50, 45, 40)),
    }[variant]
    rgb = np.array(paper, np.float32) * (1 - page[..., None]) + np.array(pen, np.float32) * page[..., None]
    if variant == "noisy photo":
        rgb += rng.normal(0, 10, rgb.shape[:2])[..., None]
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


VARIANTS = ("black on white", "blue on yellow", "white on dark grey", "noisy photo", "thin pen")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ckpt_path", help="a checkpoint trained with data=mnist")
    parser.add_argument("--limit", type=int, default=2000, help="test images per variant")
    parser.add_argument("--data-dir", default=str(default_data_dir()))
    parser.add_argument("--min-stroke", type=float, help="override the thin-stroke thickening (0 = off)")
    args = parser.parse_args()
    model = TrainedModel.load(args.ckpt_path, device="cpu")
    if args.min_stroke is not None:
        preprocessing = dataclasses.replace(model.preprocessing, min_stroke=args.min_stroke)
        model = dataclasses.replace(model, preprocessing=preprocessing)
    dm = MNISTDataModule(data_dir=args.data_dir, download=False)
    dm.setup("test")
    images, labels = dm.test_set.images[: args.limit].numpy(), dm.test_set.labels[: args.limit]
    names = model.class_names
    direct = model.probabilities(model.preprocessing.normalise(images)).argmax(1)
    print(f"| input ({len(labels)} MNIST test digits) | accuracy |\n|---|---:|")
    print(f"| dataset tensors, no preprocessing | {(direct == labels).float().mean():.4f} |")
    again = [model.preprocessing.pixels(Image.fromarray(d)) for d in images]
    redone = model.probabilities(model.preprocessing.normalise(np.stack(again))).argmax(1)
    print(f"| 28x28 digits through hwr.preprocess | {(redone == labels).float().mean():.4f} |")
    rng = np.random.default_rng(0)
    for variant in VARIANTS:
        pictures = [canvas(d, rng, variant) for d in images]
        predicted = [p.label for p in model.predict(pictures, top_k=1)]
        right = torch.tensor([names.index(p) for p in predicted]) == labels
        print(f"| {variant}, 200-400 px, off-centre | {right.float().mean():.4f} |")


if __name__ == "__main__":
    main()
