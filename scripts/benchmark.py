"""Speed benchmark, in one process, arms alternated (rounds) to even out machine noise.

    uv run scripts/benchmark.py [--parts data train startup tta] [--arms plain,hwr,...]
        [--data mnist] [--model cnn] [--batch-size 128] [--steps 100] [--device auto]
        [--extra KEY=VALUE ...] [--markdown outputs/benchmark/benchmark.md]

1. data: images/s of hwr's loader vs torchvision's MNIST + DataLoader (0 and N workers). hwr is
   measured bare, with the uint8 -> float conversion and normalisation it does on every batch
   (the like-for-like arm: torchvision's is the usual per-sample `ToTensor + Normalize`), and
   with shift/rotate/scale augmentation on top, which torchvision's arm does not do at all.
2. train: images/s of a minimal hand-written PyTorch loop vs hwr's real training path
   (`hwr.train.train`: Lightning module, trainer, callbacks, TensorBoard logging), same
   network, optimiser, data and batch size; the ratio is each arm's step time over the
   loop's. `--arms` adds hwr with one switch each: hwr_quiet (no logger, no progress bar:
   the logging overhead), hwr_bf16, hwr_channels_last, hwr_compile, and on a GPU
   hwr_on_device / hwr_on_host (data.on_device=true / false).
3. startup: seconds from launching `python train.py` to its first training step.
4. tta (time to accuracy): experiment=mnist_cnn with the data resident on the device,
   training seconds until test accuracy >= 99.0% and >= 99.5%, testing every --tta-every
   steps off the clock. --tta-max-steps caps it (smoke runs).
"""

from __future__ import annotations

import argparse
import gzip
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import lightning as L
import torch

from hwr.benchmark import ARMS
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
    """Markdown lines of the training table: the plain loop and each hwr arm."""
    from hwr.benchmark import GPU_ONLY, arm_label, rounds_json, training_arms

    skipped = [a for a in args.arms if a in GPU_ONLY and device != "cuda"]
    arms = [a for a in args.arms if a not in skipped]
    results = training_arms(overrides, arms, args.steps, args.warmup, args.rounds, device)
    best = {arm: max(values) for arm, values in results.items()}
    reference = best.get("plain", best.get("hwr"))
    lines = [
        f"### Training: {' '.join(overrides)}, {args.steps} steps after {args.warmup} warm-up, "
        f"best of {args.rounds} rounds (images/s per round: {rounds_json(results)})",
        "",
        f"| training path | images/s | step time vs {'plain loop' if 'plain' in best else 'hwr'} |",
        "|---|---:|---:|",
    ]
    lines += [f"| {arm_label(arm)} | {v:,.0f} | {reference / v:.2f}x |" for arm, v in best.items()]
    lines.append("")
    for arm in skipped:
        lines.append(f"- skipped {arm}: needs a GPU (on a CPU the data already lives where the model is)")
    if "hwr" in best and "hwr_quiet" in best:
        step_ms, quiet_ms = (1000 * args.batch_size / best[a] for a in ("hwr", "hwr_quiet"))
        lines.append(
            f"- logging + progress bar overhead: {step_ms - quiet_ms:+.2f} ms per step, "
            f"{100 * (step_ms - quiet_ms) / quiet_ms:+.1f}% of a step (target < 2%)"
        )
    return lines


def time_to_acc(args: argparse.Namespace, device: str) -> list[str]:
    """Markdown lines of the time-to-accuracy table."""
    from hwr.benchmark import time_to_accuracy

    overrides = [
        "experiment=mnist_cnn",
        f"paths.data_dir={args.data_dir}",
        f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
        f"trainer.max_epochs={args.tta_epochs}",
        "data.on_device=true",
        *args.extra,
    ]
    r = time_to_accuracy(overrides, args.tta_every, args.tta_max_seconds, args.tta_max_steps)
    last = r["points"][-1]
    lines = [
        f"### Time to accuracy: {' '.join(overrides[:1] + overrides[2:])}, test set every "
        f"{args.tta_every} steps (off the clock)",
        "",
        "| test accuracy | training seconds | step | epoch |",
        "|---|---:|---:|---:|",
    ]
    for target in (0.99, 0.995):
        p = r["reached"].get(target)
        cells = f"{p['train_s']:.1f} | {p['step']} | {p['epoch'] + 1}" if p else "not reached | | "
        lines.append(f"| {100 * target:.1f}% | {cells} |")
    lines += ["", f"Last test: {100 * last['acc']:.2f}% after {last['train_s']:.1f} s, step {last['step']}."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=["data", "train", "startup", "tta"],
        default=["data", "train", "startup", "tta"],
    )
    parser.add_argument(
        "--arms", nargs="+", default=[",".join(ARMS)], help=f"training arms: {', '.join(ARMS)}"
    )
    parser.add_argument("--extra", nargs="*", default=[], help="config overrides for every train/tta run")
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
    parser.add_argument("--tta-epochs", type=int, default=5, help="tta: length of the OneCycle schedule")
    parser.add_argument("--tta-every", type=int, default=100, help="tta: test every N training steps")
    parser.add_argument(
        "--tta-max-seconds", type=float, default=0, help="tta: stop after N training s (0: never)"
    )
    parser.add_argument(
        "--tta-max-steps", type=int, default=0, help="tta: stop after N steps (0: never; smoke)"
    )
    parser.add_argument("--markdown", type=Path, default=Path("outputs/benchmark/benchmark.md"))
    args = parser.parse_args()
    args.arms = [a for item in args.arms for a in item.split(",") if a]
    unknown = sorted(set(args.arms) - set(ARMS))
    if unknown:
        parser.error(f"unknown arms {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    args.data_dir = args.data_dir.resolve()  # the start-up arm runs train.py in another folder
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    overrides = [
        f"data={args.data}",
        f"model={args.model}",
        f"data.batch_size={args.batch_size}",
        f"paths.data_dir={args.data_dir}",
        f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
        *args.extra,
    ]
    machine = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    versions = f"Python {platform.python_version()}, torch {torch.__version__}, lightning {L.__version__}"
    lines = [f"## hwr benchmark: {machine}, {versions}, {time.strftime('%Y-%m-%d')}", ""]
    args.markdown.parent.mkdir(parents=True, exist_ok=True)

    def report(part: list[str]) -> None:
        """Print a finished part and rewrite the markdown, so a long run keeps what it measured."""
        lines.extend([*part, ""])
        print("\n" + "\n".join(part) + "\n", flush=True)
        args.markdown.write_text("\n".join(lines))

    if "data" in args.parts:
        report(data_path(args))
    if "train" in args.parts:
        report(training(args, overrides, device))
    if "startup" in args.parts:
        from hwr.benchmark import startup_seconds

        seconds = [startup_seconds(overrides, args.data_dir) for _ in range(args.rounds)]
        runs = ", ".join(f"{s:.1f}" for s in seconds)
        best = f"{min(seconds):.1f} s (best of {args.rounds}: {runs})"
        report(["### Start-up", "", f"`python train.py` launch to first training step: {best}"])
    if "tta" in args.parts:
        report(time_to_acc(args, device))
    print("\n" + "\n".join(lines))
    print(f"written: {args.markdown}")


if __name__ == "__main__":
    main()
