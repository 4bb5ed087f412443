"""`hwr results <folder>`: every run below a folder in one table, best first.

    hwr results outputs/train/runs
    hwr results outputs --sort val/acc_best --output results.md   # or results.csv

One row per metrics.json (train, eval, and each baselines method). The terminal gets the
columns that tell runs apart and fit its width; `--output` writes every column (Markdown or
CSV, by the suffix). The folder it reads is left as it is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hwr.errors import HwrError
from hwr.evaluation.results import RESULT_COLUMNS, collect, csv_text, markdown, present, sort_rows
from hwr.files import write_text
from hwr.runs import console, tables

FORMATS = (".md", ".csv")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hwr results", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="folder searched (with its subfolders) for metrics.json")
    p.add_argument("--sort", default="test/acc", help="column to sort by, best first (default test/acc)")
    p.add_argument("--output", type=Path, help="also write the whole table to this .md or .csv file")
    return p


def results(folder: Path, sort: str = "test/acc", output: Path | None = None) -> list[dict]:
    """Print the runs below `folder` (and write them to `output`); the rows, best first."""
    if not folder.is_dir():
        raise HwrError(f"{folder} is not a folder; name the folder of your runs (e.g. outputs)")
    if sort not in RESULT_COLUMNS:
        raise HwrError(f"--sort {sort} is not a column; choose from {', '.join(RESULT_COLUMNS)}")
    if output is not None and output.suffix not in FORMATS:
        raise HwrError(f"--output {output} must end in .md (Markdown) or .csv")
    rows = collect(folder)
    if not rows:
        raise HwrError(f"no metrics.json under {folder}; run hwr train, eval or baselines first")
    rows, columns = sort_rows(rows, sort), present(RESULT_COLUMNS, rows)
    tables.print_results(rows, folder, sort)
    if output is not None:
        text = markdown(rows, columns) if output.suffix == ".md" else csv_text(rows, columns)
        write_text(output, text, "a results table")
        console.note(f"written: {output}")
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    with console.user_errors():
        results(args.folder, args.sort, args.output)


if __name__ == "__main__":
    main()
