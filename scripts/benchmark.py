"""Speed benchmark, in one process, arms alternated (rounds) to even out machine noise.

    uv run scripts/benchmark.py [--parts data train ops startup tta speedrun] [--arms plain,hwr,...]
        [--data mnist] [--model cnn] [--batch-size 128] [--steps 100] [--device auto]
        [--extra KEY=VALUE ...] [--markdown outputs/benchmark/benchmark.md]

1. data: images/s of hwr's loader vs torchvision's MNIST + DataLoader (0 and N workers). hwr is
   measured bare, with the uint8 -> float conversion and normalisation it does on every batch
   (the like-for-like arm: torchvision's is the usual per-sample `ToTensor + Normalize`), and
   with shift/rotate/scale augmentation on top, which torchvision's arm does not do at all.
2. train: images/s of the hand-written PyTorch loop (`benchmarks.plain_loop`) vs hwr's real training
   path (`hwr.commands.train.train`: Lightning module, trainer, callbacks, TensorBoard logging) on the
   same config; the ratio is each arm's step time over the loop's. `--arms` adds hwr with one
   switch each: hwr_quiet (no logger, no progress bar: the logging overhead), hwr_fused,
   hwr_bf16, hwr_channels_last, hwr_compile (mode default), hwr_compile_ro
   (reduce-overhead: CUDA graphs), and on a GPU hwr_on_device / hwr_on_host and
   hwr_gpu_fast(_ro) (trainer=gpu_fast); plain_<switch> is the plain loop with the same
   switch, and each hwr_<switch> is also compared with its plain_<switch>.
3. ops: aten ops dispatched per training step, plain loop vs hwr (exact; the CPU proxy of
   per-step overhead), for each of --ops-models, and the host reads among them.
4. startup: seconds from launching `python train.py` to its first training step.
5. tta (time to accuracy): experiment=mnist_cnn with the data resident on the device,
   training seconds until test accuracy >= 99.0% and >= 99.5%, testing every --tta-every
   steps off the clock. --tta-max-steps caps it (smoke runs).
6. speedrun: experiment=mnist_speedrun for each of --seeds (training clock, time to 99.5%,
   final test accuracy; mean +- std), then the whole `python train.py experiment=mnist_speedrun`
   command once (wall time).
"""

from __future__ import annotations

import argparse
import gzip
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import lightning as L
import torch

# the measuring code lives in the checkout's benchmarks/, beside this script's folder (it is
# not part of the installed package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.arms import ARMS  # noqa: E402
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
    """Markdown lines of the training table: the plain loop and each arm."""
    from benchmarks.arms import GPU_ONLY, arm_label, rounds_json, training_arms

    skipped = [a for a in args.arms if a in GPU_ONLY and device != "cuda"]
    arms = [a for a in args.arms if a not in skipped]
    results = training_arms(overrides, arms, args.steps, args.warmup, args.rounds, device)
    best = {arm: max(values) for arm, values in results.items()}
    # the ratio column is against the plain loop, else hwr, else the first arm
    base = next((a for a in ("plain", "hwr", *best) if a in best), None)
    if base is None:
        return ["### Training: no arm to run on this device", "", *(f"- skipped {a}" for a in skipped)]
    reference = best[base]
    lines = [
        f"### Training: {' '.join(overrides)}, {args.steps} steps after {args.warmup} warm-up, "
        f"best of {args.rounds} rounds (images/s per round: {rounds_json(results)})",
        "",
        f"| training path | images/s | step time vs {'plain loop' if base == 'plain' else base} |",
        "|---|---:|---:|",
    ]
    lines += [f"| {arm_label(arm)} | {v:,.0f} | {reference / v:.2f}x |" for arm, v in best.items()]
    lines.append("")
    for arm in skipped:
        lines.append(f"- skipped {arm}: needs a GPU ({GPU_ONLY[arm]})")
    for arm, v in best.items():
        twin = "plain" + arm[len("hwr") :]
        if arm.startswith("hwr_") and twin in best:
            lines.append(f"- {arm} vs {twin}: {best[twin] / v:.2f}x the step time of the plain loop")
    if "hwr" in best and "hwr_quiet" in best:
        step_ms, quiet_ms = (1000 * args.batch_size / best[a] for a in ("hwr", "hwr_quiet"))
        lines.append(
            f"- logging + progress bar overhead: {step_ms - quiet_ms:+.2f} ms per step, "
            f"{100 * (step_ms - quiet_ms) / quiet_ms:+.1f}% of a step (target < 2%)"
        )
    return lines


def op_counts(args: argparse.Namespace, overrides: list[str]) -> list[str]:
    """Markdown lines of the op-count table (CPU: the counts do not depend on the machine)."""
    from benchmarks.opcount import compare_ops, count_hwr_ops, count_plain_ops

    lines = [
        f"### Ops per training step: aten ops dispatched, {args.ops_steps} steps after "
        f"{args.warmup} (TorchDispatchMode, CPU), {' '.join(o for o in overrides if 'model=' not in o)}",
        "",
        "| model | plain loop | hwr | hwr / plain | host reads (plain, hwr) | what hwr adds per step |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for model in args.ops_models:
        config = [*(o for o in overrides if not o.startswith("model=")), f"model={model}"]
        config = [o.replace("trainer.accelerator=gpu", "trainer.accelerator=cpu") for o in config]
        plain = count_plain_ops(config, args.ops_steps, args.warmup, "cpu")
        hwr = count_hwr_ops(config, args.ops_steps, args.warmup)
        r = compare_ops(plain, hwr, args.ops_steps)
        extra = ", ".join(f"{n:+g} {op.removeprefix('aten.')}" for op, n in r["extra"].items()) or "nothing"
        lines.append(
            f"| {model} | {r['plain']:.0f} | {r['hwr']:.0f} | {r['ratio']:.3f}x | "
            f"{r['plain_host_reads']:g}, {r['hwr_host_reads']:g} | {extra} |"
        )
    return lines


def mean_std(values: list[float]) -> str:
    if not values:
        return "n/a"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4g} ± {std:.2g}"


def speedrun(args: argparse.Namespace, device: str) -> list[str]:
    """Markdown lines of the speedrun table: each seed, mean ± std, and the whole command."""
    from benchmarks.accuracy import speedrun_seed
    from benchmarks.arms import command_seconds

    overrides = [
        "experiment=mnist_speedrun",
        f"paths.data_dir={args.data_dir}",
        f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
        *args.extra,
    ]
    rows = [speedrun_seed(overrides, s, args.speedrun_every, args.speedrun_max_steps) for s in args.seeds]
    lines = [
        f"### Speedrun: {' '.join(overrides[:1] + overrides[2:])}, {len(rows)} seeds, test set "
        f"every {args.speedrun_every} steps (off the clock)",
        "",
        "| seed | training clock (s) | to 99.5% (s) | test acc | in-process wall (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        to_995 = f"{r['to_995_s']:.2f}" if r["to_995_s"] is not None else "not reached"
        acc = f"{100 * r['test_acc']:.2f}%"
        lines.append(f"| {r['seed']} | {r['train_time_s']:.2f} | {to_995} | {acc} | {r['wall_s']:.1f} |")
    reached = [r["to_995_s"] for r in rows if r["to_995_s"] is not None]
    accs = [100 * r["test_acc"] for r in rows]
    lines += [
        f"| mean ± std | {mean_std([r['train_time_s'] for r in rows])} | {mean_std(reached)} "
        f"({len(reached)}/{len(rows)} reached) | {mean_std(accs)}% | |",
        "",
        f"Seeds with test accuracy ≥ 99.5%: {sum(a >= 99.5 for a in accs)} of {len(rows)}.",
    ]
    if args.speedrun_max_steps <= 0:
        command = [o for o in overrides if not o.startswith("paths.data_dir")]
        wall, metrics = command_seconds(command, args.data_dir)
        lines.append(
            f"Whole command `python train.py {' '.join(command)}`: {wall:.1f} s wall, training clock "
            f"{metrics.get('train_time_s')} s, test acc {100 * metrics.get('test/acc', 0):.2f}%."
        )
    return lines


def time_to_acc(args: argparse.Namespace, device: str) -> list[str]:
    """Markdown lines of the time-to-accuracy table."""
    from benchmarks.accuracy import time_to_accuracy

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
        choices=["data", "train", "ops", "startup", "tta", "speedrun"],
        default=["data", "train", "ops", "startup", "tta"],
    )
    parser.add_argument(
        "--arms", nargs="+", default=["plain,hwr,hwr_quiet"], help=f"training arms: {', '.join(ARMS)}"
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
    parser.add_argument("--ops-models", nargs="+", default=["mlp", "cnn"], help="ops: models to count")
    parser.add_argument("--ops-steps", type=int, default=20, help="ops: counted training steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5], help="speedrun: seeds")
    parser.add_argument("--speedrun-every", type=int, default=10, help="speedrun: test every N steps")
    parser.add_argument(
        "--speedrun-max-steps", type=int, default=0, help="speedrun: stop after N steps (0: never; smoke)"
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
    if "ops" in args.parts:
        report(op_counts(args, overrides))
    if "startup" in args.parts:
        from benchmarks.arms import startup_seconds

        marks = [startup_seconds(overrides, args.data_dir) for _ in range(args.rounds)]
        best = min(marks, key=lambda m: m["first_step"])
        runs = ", ".join(f"{m['first_step']:.1f}" for m in marks)
        steps = " → ".join(f"{name} {seconds:.1f} s" for name, seconds in best.items())
        report(
            [
                "### Start-up",
                "",
                f"`python train.py` launch to first training step: {best['first_step']:.1f} s "
                f"(best of {args.rounds}: {runs}); in the best run: {steps}",
            ]
        )
    if "tta" in args.parts:
        report(time_to_acc(args, device))
    if "speedrun" in args.parts:
        report(speedrun(args, device))
    print("\n" + "\n".join(lines))
    print(f"written: {args.markdown}")


if __name__ == "__main__":
    main()
