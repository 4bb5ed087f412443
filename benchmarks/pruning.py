"""What pruning buys: the same seeded Optuna study run once per pruner, side by side.

    HWR_DATA_DIR=<datasets> uv run benchmarks/pruning.py [--pruners none median hyperband]
        [--trials 16] [--epochs 20] [--extra KEY=VALUE ...] [--markdown outputs/benchmark/pruning.md]
        [--keep outputs/benchmark/pruning]   # keep the studies (optuna-dashboard opens them)

Each pruner runs the whole `train.py hparams_search=english_optuna` command in its own
process and its own study folder (the sampler's seed is the same, so the first trials are
the same). Per study: the best objective, the trials pruned, the epochs trained by all trials
together (`epochs` of each trial's metrics.json) and the wall time of the command. The last
two columns compare with the first pruner given (`none`: every trial trains to the end).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_study(pruner: str, trials: int, epochs: int, extra: list[str], out: Path) -> dict:
    """One study with `pruner`; its figures."""
    command = [
        sys.executable, str(ROOT / "train.py"), "hparams_search=english_optuna",
        f"hydra/sweeper/pruner={pruner}", f"hydra.sweeper.n_trials={trials}",
        f"trainer.max_epochs={epochs}", f"hydra.sweeper.study_name=english_{pruner}",
        "callbacks.progress_bar=null", f"paths.log_dir={out}", *extra,
    ]  # fmt: skip
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the study with pruner={pruner} failed:\n{done.stderr[-3000:]}")
    study_dir = next(out.glob(f"*/optuna/english_{pruner}"))
    records = [
        {**json.loads(p.read_text()), "trial": p.parent.name}
        for p in sorted(study_dir.glob("trial_*/metrics.json"))
    ]
    best = max(records, key=lambda r: r.get("val/acc_best") or 0)
    return {
        "pruner": pruner,
        "best": best["val/acc_best"],
        "best_trial": best["trial"],
        "best_test": best.get("test/acc"),
        "pruned": sum(r["status"] == "pruned" for r in records),
        "trials": len(records),
        "epochs": sum(int(r.get("epochs") or 0) for r in records),
        "wall_s": wall,
        "load": (load, os.getloadavg()[0]),
    }


def table(rows: list[dict], epochs: int) -> str:
    base = rows[0]
    lines = [
        "| pruner | best val/acc_best (trial) | its test/acc | pruned | epochs trained | wall time "
        f"| epochs vs {base['pruner']} | wall vs {base['pruner']} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        test = f"{r['best_test']:.2%}" if r["best_test"] is not None else "(pruned)"
        lines.append(
            f"| {r['pruner']} | {r['best']:.2%} ({r['best_trial']}) | {test} "
            f"| {r['pruned']} of {r['trials']} "
            f"| {r['epochs']} of {r['trials'] * epochs} | {r['wall_s'] / 60:.1f} min "
            f"| {r['epochs'] / base['epochs']:.0%} | {r['wall_s'] / base['wall_s']:.0%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pruners", nargs="+", default=["none", "median", "hyperband"])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides for every study")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument("--keep", type=Path, help="run the studies in this folder and keep them")
    args = parser.parse_args()
    if not os.environ.get("HWR_DATA_DIR"):
        raise SystemExit("set HWR_DATA_DIR to the folder holding the English Hnd data")
    rows = []
    with tempfile.TemporaryDirectory(prefix="hwr-pruning-") as tmp:
        for pruner in args.pruners:
            rows.append(run_study(pruner, args.trials, args.epochs, args.extra, args.keep or Path(tmp)))
            r = rows[-1]
            print(
                f"{pruner}: best {r['best']:.4f}, {r['pruned']} pruned, {r['epochs']} epochs, "
                f"{r['wall_s']:.0f} s (load {r['load'][0]:.2f} -> {r['load'][1]:.2f})",
                flush=True,
            )
    text = table(rows, args.epochs)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}"
    text += f"\n\n{args.trials} trials of up to {args.epochs} epochs each; {machine}\n"
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
