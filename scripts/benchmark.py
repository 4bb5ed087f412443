"""Data-path benchmark: images/s of hwr's loader vs torchvision's MNIST + DataLoader.

    uv run scripts/benchmark.py [--data-dir DIR] [--batch-size 128] [--seconds 3] [--workers 0 2]

Measured in one process, arms alternated (rounds) to even out machine noise. hwr is
measured bare, with the uint8 -> float conversion and normalisation it does on every batch
(the like-for-like arm: torchvision's is the usual per-sample `ToTensor + Normalize`), and
with shift/rotate/scale augmentation on top, which torchvision's arm does not do at all.
(Training-step and GPU measurements are for a later extension of this script.)
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from hwr.data.base import default_data_dir
from hwr.data.mnist import MNISTDataModule


def images_per_second(make_batches: Callable[[], Iterable], seconds: float) -> float:
    """Run through batches for about `seconds`; return images/s."""
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for images, _ in make_batches():
            n += len(images)
            if time.perf_counter() - start >= seconds:
                break
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=3.0, help="per arm and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()

    from torchvision import datasets, transforms

    dm = MNISTDataModule(
        args.data_dir,
        download=False,
        batch_size=args.batch_size,
        augment={"shift": 2, "rotate": 10, "scale": 0.1},
    )
    dm.setup("fit")

    def hwr_batches(normalise: bool, augment: bool):
        for images, labels in dm.train_dataloader():
            yield (dm.transform_batch(images, train=augment) if normalise else images), labels

    # torchvision reads only unpacked files: give it a private unpacked copy.
    tmp = Path(tempfile.mkdtemp())
    raw = tmp / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for part in ("train", "t10k"):
        for kind in ("images-idx3", "labels-idx1"):
            name = f"{part}-{kind}-ubyte"
            src = dm.raw_dir / name
            data = src.read_bytes() if src.is_file() else gzip.decompress(Path(f"{src}.gz").read_bytes())
            (raw / name).write_bytes(data)
    tv = datasets.MNIST(
        str(tmp),
        train=True,
        download=True,
        transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]),
    )

    arms: dict[str, Callable[[], Iterable]] = {
        "hwr loader (uint8 batches by index)": lambda: hwr_batches(False, False),
        "hwr loader + float + normalise": lambda: hwr_batches(True, False),
        "hwr loader + float + normalise + augment": lambda: hwr_batches(True, True),
    }
    for w in args.workers:
        arms[f"torchvision DataLoader, {w} workers"] = lambda w=w: torch.utils.data.DataLoader(
            tv, batch_size=args.batch_size, shuffle=True, num_workers=w
        )
    results: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(args.rounds):
        for name, make in arms.items():
            results[name].append(images_per_second(make, args.seconds))
    shutil.rmtree(tmp)

    best_tv = max(max(v) for n, v in results.items() if n.startswith("torchvision"))
    print(
        f"\nMNIST train, batch {args.batch_size}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, best of {args.rounds} rounds x {args.seconds:g} s\n"
    )
    print("| loader | images/s | vs best torchvision |\n|---|---:|---:|")
    for name, values in results.items():
        print(f"| {name} | {max(values):,.0f} | {max(values) / best_tv:.1f}x |")


if __name__ == "__main__":
    main()
