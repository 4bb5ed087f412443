"""Collect every metrics.json under a folder into one results table.

    uv run scripts/results.py outputs/ [--out results] [--sort test/acc]

Prints the table and writes `<out>.md` and `<out>.csv` (default: `<folder>/results.*`).
One row per run (train.py, eval.py) or per baseline method (baselines.py).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

COLUMNS = [
    "data",
    "model",
    "task",
    "overrides",
    "val/acc_best",
    "test/acc",
    "test/f1",
    "epochs",
    "wall_time_s",
    "path",
]


def collect(folder: Path) -> list[dict[str, Any]]:
    """One row per metrics.json below `folder` (unreadable files are reported and skipped)."""
    rows = []
    for path in sorted(folder.rglob("metrics.json")):
        try:
            metrics = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            print(f"skipping {path}: {e}")
            continue
        row = {key: metrics.get(key) for key in COLUMNS}
        if row["test/f1"] is None:  # baselines report the macro F1 under its full name
            row["test/f1"] = metrics.get("test/f1_macro")
        row["overrides"] = " ".join(metrics.get("overrides") or [])
        row["path"] = str(path.parent)
        rows.append(row)
    return rows


def fmt(value: Any, column: str = "") -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if column == "wall_time_s" else f"{value:.4f}"
    return "" if value is None else str(value)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt(row[c], c).replace("|", "\\|") for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="folder searched recursively for metrics.json")
    parser.add_argument("--out", type=Path, help="output path without suffix (default <folder>/results)")
    parser.add_argument("--sort", default="test/acc", help="column to sort by, descending")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        raise SystemExit(f"error: {args.folder} is not a folder")
    rows = collect(args.folder)
    if not rows:
        raise SystemExit(
            f"error: no metrics.json under {args.folder}; run train.py, eval.py or baselines.py first"
        )
    if args.sort not in COLUMNS:
        raise SystemExit(f"error: --sort must be one of {', '.join(COLUMNS)}")

    def sort_key(row: dict[str, Any]) -> float:
        value = row[args.sort]
        return value if isinstance(value, int | float) else float("-inf")

    rows.sort(key=sort_key, reverse=True)
    out = args.out or args.folder / "results"
    table = markdown(rows)
    out.with_suffix(".md").write_text(table)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(table)
    print(f"written: {out.with_suffix('.md')}, {out.with_suffix('.csv')}")


if __name__ == "__main__":
    main()
