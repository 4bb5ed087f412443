"""Speed benchmark, in one process, arms alternated (rounds) to even out machine noise.

    uv run scripts/benchmark.py [--parts data train startup] [--data mnist] [--model cnn]
        [--batch-size 128] [--steps 100] [--device auto] [--markdown outputs/benchmark.md]

1. data: images/s of hwr's loader vs torchvision's MNIST + DataLoader (0 and N workers). hwr is
   measured bare, with the uint8 -> float conversion and normalisation it does on every batch
   (the like-for-like arm: torchvision's is the usual per-sample `ToTensor + Normalize`), and
   with shift/rotate/scale augmentation on top, which torchvision's arm does not do at all.
2. train: images/s of a minimal hand-written PyTorch loop vs hwr's real training path
   (`hwr.train.train`: Lightning module, trainer, callbacks, TensorBoard logging), same
   network, optimiser, data and batch size; the ratio is hwr's step time over the loop's.
3. startup: seconds from launching `python train.py` to its first training step.
(GPU-only arms - bf16, channels_last, torch.compile, time-to-accuracy - are not here yet.)
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


def data_path(args: argparse.Namespace) -> list[str]:
    """Markdown lines of the data-path table."""
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
    lines = [
        f"### Data path: MNIST train, batch {args.batch_size}, "
        f"best of {args.rounds} rounds x {args.seconds:g} s",
        "",
        "| loader | images/s | vs best torchvision |",
        "|---|---:|---:|",
    ]
    for name, values in results.items():
        lines.append(f"| {name} | {max(values):,.0f} | {max(values) / best_tv:.1f}x |")
    return lines


def training(args: argparse.Namespace, overrides: list[str], device: str) -> list[str]:
    """Markdown lines of the plain-loop vs hwr training table."""
    from hwr.benchmark import training_arms

    r = training_arms(overrides, args.steps, args.warmup, args.rounds, device)
    return [
        f"### Training: {' '.join(overrides)}, {args.steps} steps after {args.warmup} warm-up, "
        f"best of {args.rounds} rounds (images/s per round: {r['rounds']})",
        "",
        "| training path | images/s | step time vs plain loop |",
        "|---|---:|---:|",
        f"| plain PyTorch loop (same net, optimiser, batches) | {r['plain_images_per_s']:,.0f} | 1.00x |",
        f"| hwr train.py path (Lightning, callbacks, logging) | {r['hwr_images_per_s']:,.0f} "
        f"| {r['hwr_step_time_ratio']:.2f}x |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--parts", nargs="+", choices=["data", "train", "startup"], default=["data", "train", "startup"]
    )
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--data", default="mnist", help="data config for train/startup")
    parser.add_argument("--model", default="cnn", help="model config for train/startup")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=100, help="timed training steps per arm and round")
    parser.add_argument("--warmup", type=int, default=10, help="untimed training steps first")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--seconds", type=float, default=3.0, help="data path: seconds per arm and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--markdown", type=Path, default=Path("outputs/benchmark/benchmark.md"))
    args = parser.parse_args()
    args.data_dir = args.data_dir.resolve()  # the start-up arm runs train.py in another folder
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    overrides = [
        f"data={args.data}",
        f"model={args.model}",
        f"data.batch_size={args.batch_size}",
        f"paths.data_dir={args.data_dir}",
        f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
    ]
    machine = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    lines = [f"## hwr benchmark: {machine}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}", ""]
    if "data" in args.parts:
        lines += [*data_path(args), ""]
    if "train" in args.parts:
        lines += [*training(args, overrides, device), ""]
    if "startup" in args.parts:
        from hwr.benchmark import startup_seconds

        seconds = [startup_seconds(overrides, args.data_dir) for _ in range(args.rounds)]
        runs = ", ".join(f"{s:.1f}" for s in seconds)
        best = f"{min(seconds):.1f} s (best of {args.rounds}: {runs})"
        lines += ["### Start-up", "", f"`python train.py` launch to first training step: {best}", ""]
    text = "\n".join(lines)
    print("\n" + text)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(text)
    print(f"written: {args.markdown}")


if __name__ == "__main__":
    main()
