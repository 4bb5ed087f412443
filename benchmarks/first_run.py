"""The first run on a CPU: the whole default `python train.py seed=<s>` command, per seed.

    HWR_DATA_DIR=<datasets> uv run benchmarks/first_run.py [--seeds 1 2 3] [--extra KEY=VALUE ...]
        [--target-acc 0.995] [--target-s 180] [--markdown outputs/benchmark/first_run.md]

Each seed runs the real command in its own process, one after another, the way a user types
it (only the run folder is moved to a temporary one): wall time of the whole command (start-up,
imports, training, validation, test and report), the training clock (`train_time_s` of
metrics.json) and `test/acc`. The table ends with the worst seed against the targets. The
1-minute load average is read before and after each run: on shared cores the wall time
follows it, so a timing taken under load says so. Only the standard library runs here; the
training process imports torch and Lightning itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class SeedRun:
    """One whole `train.py` command: what it took and what it reached."""

    seed: int
    wall_s: float
    train_s: float
    test_acc: float
    f1_macro: float
    epochs: int
    load_before: float
    load_after: float


def load_average() -> float:
    """The 1-minute load average (0.0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def run_seed(seed: int, extra: list[str], data_dir: str | None) -> SeedRun:
    """Run `python train.py seed=<seed> <extra>` to the end; raise with its stderr if it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        command = [sys.executable, str(ROOT / "train.py"), f"seed={seed}", *extra, f"hydra.run.dir={run_dir}"]
        env = dict(os.environ)
        if data_dir:
            env["HWR_DATA_DIR"] = data_dir
        load_before = load_average()
        started = time.perf_counter()
        done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"train.py seed={seed} failed (exit {done.returncode}): {done.stderr[-2000:]}")
        metrics = json.loads((run_dir / "metrics.json").read_text())
    return SeedRun(
        seed,
        wall,
        metrics["train_time_s"],
        metrics["test/acc"],
        metrics.get("test/f1_macro", float("nan")),
        metrics.get("epochs", 0),
        load_before,
        load_average(),
    )


def table(runs: list[SeedRun], command: str, target_acc: float, target_s: float) -> list[str]:
    """The markdown table: one row per seed, then the worst of each column against the target."""
    lines = [
        f"#### First run: `{command}`, {len(runs)} seeds, one after another",
        "",
        "| seed | wall, whole command (s) | training clock (s) | test acc | macro F1 | epochs "
        "| load avg (before, after) |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r.seed} | {r.wall_s:.1f} | {r.train_s:.1f} | {r.test_acc:.2%} | {r.f1_macro:.2%} "
            f"| {r.epochs} | {r.load_before:.2f}, {r.load_after:.2f} |"
        )
    worst_wall = max(r.wall_s for r in runs)
    worst_acc = min(r.test_acc for r in runs)
    lines.append(
        f"| worst | {worst_wall:.1f} | {max(r.train_s for r in runs):.1f} | {worst_acc:.2%} "
        f"| {min(r.f1_macro for r in runs):.2%} | | |"
    )
    met = worst_acc >= target_acc and worst_wall <= target_s
    lines += [
        "",
        f"Target: test acc >= {target_acc:.1%} in <= {target_s:.0f} s wall, every seed. "
        f"Measured worst: {worst_acc:.2%} in {worst_wall:.1f} s: {'met' if met else 'NOT met'}.",
    ]
    return lines


def main() -> None:
    """Parse the command line, run every seed, print (and optionally write) the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--extra", nargs="*", default=[], help="config overrides added to every run")
    parser.add_argument("--data-dir", default=None, help="the datasets' folder (else $HWR_DATA_DIR)")
    parser.add_argument("--target-acc", type=float, default=0.995)
    parser.add_argument("--target-s", type=float, default=180.0)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    if not (args.data_dir or os.environ.get("HWR_DATA_DIR")):
        print("note: neither --data-dir nor HWR_DATA_DIR is set; train.py looks in ./data", file=sys.stderr)
    command = " ".join(["python train.py seed=<s>", *args.extra])
    machine = platform.processor() or platform.machine()
    print(f"{machine}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    runs = []
    for seed in args.seeds:
        run = run_seed(seed, args.extra, args.data_dir)
        print(
            f"seed {seed}: {run.wall_s:.1f} s wall, {run.train_s:.1f} s training, "
            f"test/acc {run.test_acc:.2%} (load {run.load_before:.2f} -> {run.load_after:.2f})",
            flush=True,
        )
        runs.append(run)
    lines = table(runs, command, args.target_acc, args.target_s)
    print("\n".join(lines))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
