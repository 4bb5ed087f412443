"""Collect every metrics.json under a folder into one results table.

    uv run scripts/results.py outputs/ [--out results] [--sort test/acc]

Prints the table and writes `<out>.md` and `<out>.csv` (default: `<folder>/results.*`).
One row per run (train.py, eval.py) or per baseline method (baselines.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hwr.evaluation.results import RESULT_COLUMNS, collect, present, sort_rows, write_table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="folder searched recursively for metrics.json")
    parser.add_argument("--out", type=Path, help="output path without suffix (default <folder>/results)")
    parser.add_argument("--sort", default="test/acc", help="column to sort by, descending")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        raise SystemExit(f"error: {args.folder} is not a folder")
    if args.sort not in RESULT_COLUMNS:
        raise SystemExit(f"error: --sort must be one of {', '.join(RESULT_COLUMNS)}")
    rows = collect(args.folder)
    if not rows:
        raise SystemExit(
            f"error: no metrics.json under {args.folder}; run train.py, eval.py or baselines.py first"
        )
    out = args.out or args.folder / "results"
    print(write_table(sort_rows(rows, args.sort), present(RESULT_COLUMNS, rows), out))
    print(f"written: {out.with_suffix('.md')}, {out.with_suffix('.csv')}")


if __name__ == "__main__":
    main()
