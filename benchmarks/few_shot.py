"""Few-shot English: fine-tuning a checkpoint (`init_from=`) against training from scratch,
on k English Hnd images per class, tested on writers neither run saw.

    HWR_DATA_DIR=<datasets> uv run benchmarks/few_shot.py --init-from <emnist run>/checkpoints/best.ckpt
        [--k 1 5 20] [--seeds 1 2] [--epochs 30] [--extra KEY=VALUE ...] [--markdown FILE]

Every run is the whole `train.py data=english data.split_by=writer data.train_per_class=<k>`
command, with and without `init_from=`. `data.seed` picks the test writers, the validation
images and the k training images per class, so a fine-tuned run and its from-scratch partner
see the same images. The table gives test/acc (unseen writers) per k, the mean over seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(k: int, seed: int, init_from: str | None, epochs: int, extra: list[str], out: Path) -> dict:
    folder = out / f"k{k}_seed{seed}_{'tuned' if init_from else 'scratch'}"
    command = [
        sys.executable, str(ROOT / "train.py"), "data=english", "data.split_by=writer",
        f"data.train_per_class={k}", f"data.seed={seed}", f"trainer.max_epochs={epochs}",
        "callbacks.progress_bar=null", "report=false", f"hydra.run.dir={folder}", *extra,
    ]  # fmt: skip
    if init_from:
        command.append(f"init_from={init_from}")
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"k={k} seed={seed} init_from={init_from} failed:\n{done.stderr[-3000:]}")
    record = json.loads((folder / "metrics.json").read_text())
    return {
        "acc": record["test/acc"],
        "fold": record.get("test/acc_casefold"),
        "wall": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--init-from", required=True, help="the checkpoint to fine-tune (e.g. an EMNIST run's)"
    )
    parser.add_argument("--k", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides for every run")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()
    if not os.environ.get("HWR_DATA_DIR"):
        raise SystemExit("set HWR_DATA_DIR to the folder holding the English Hnd data")
    lines = [
        "| k per class | from scratch: test/acc | fine-tuned: test/acc | gain | fine-tuned, case-folded |",
        "|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory(prefix="hwr-few-shot-") as tmp:
        for k in args.k:
            scratch = [run(k, s, None, args.epochs, args.extra, Path(tmp)) for s in args.seeds]
            tuned = [run(k, s, args.init_from, args.epochs, args.extra, Path(tmp)) for s in args.seeds]
            a, b = (statistics.fmean(r["acc"] for r in rs) for rs in (scratch, tuned))
            fold = statistics.fmean(r["fold"] for r in tuned if r["fold"] is not None)
            shown = {
                name: [round(r["acc"], 4) for r in rs]
                for name, rs in (("scratch", scratch), ("tuned", tuned))
            }
            print(f"k={k}: {shown}", flush=True)
            lines.append(f"| {k} | {a:.2%} | {b:.2%} | {100 * (b - a):+.1f} points | {fold:.2%} |")
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}"
    text = "\n".join(lines) + f"\n\nmean over data.seed {args.seeds}; {args.epochs} epochs; {machine}\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
