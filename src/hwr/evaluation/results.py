"""Tables of runs from their metrics.json files: the results table and the sweep summary.

Every run (train.py, eval.py, baselines.py) ends by writing `metrics.json`; a multirun job
that fails writes one too, with `status: failed` and the error. These functions turn a
folder of them into one table, printed and written as markdown + csv.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from hwr.evaluation.metrics import columns as metric_columns
from hwr.evaluation.metrics import lookup, optional_columns
from hwr.files import write_text

# the metric columns come from the registry (hwr.evaluation.metrics): adding a metric there
# with results=True or summary=True adds its column here
RESULT_COLUMNS = ["data", "model", "task", "overrides", *metric_columns("results"), "path"]
SWEEP_COLUMNS = ["job", "overrides", "status", *metric_columns("summary"), "error"]
# shown only when some row has them (MNIST runs have no case-folded accuracy)
OPTIONAL_COLUMNS = optional_columns()
log = logging.getLogger("hwr")


def present(columns: Sequence[str], rows: list[dict[str, Any]]) -> list[str]:
    """`columns` less the optional ones that no row fills."""
    return [c for c in columns if c not in OPTIONAL_COLUMNS or any(r.get(c) is not None for r in rows)]


def read_rows(paths: Sequence[Path], columns: Sequence[str]) -> list[dict[str, Any]]:
    """One row per metrics.json (unreadable files are reported and skipped)."""
    rows = []
    for path in paths:
        try:
            metrics = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            log.warning("skipping %s: %s", path, e)
            continue
        row = {key: metrics.get(key) for key in columns}
        if "test/f1" in row and row["test/f1"] is None:  # baselines name the macro F1 in full
            row["test/f1"] = metrics.get("test/f1_macro")
        row["overrides"] = " ".join(metrics.get("overrides") or [])
        if "status" in row:
            row["status"] = metrics.get("status") or "completed"
        if "path" in row:
            row["path"] = str(path.parent)
        if "job" in row:
            row["job"] = path.parent.name
        rows.append(row)
    return rows


def collect(folder: Path) -> list[dict[str, Any]]:
    """The results table: one row per metrics.json anywhere below `folder`."""
    return read_rows(sorted(folder.rglob("metrics.json")), RESULT_COLUMNS)


def sort_rows(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Best first by `key`; rows without a number (failed jobs) last."""

    def value(row: dict[str, Any]) -> float:
        v = row.get(key)
        return v if isinstance(v, int | float) and not math.isnan(v) else float("-inf")

    return sorted(rows, key=value, reverse=True)


def fmt(value: Any, column: str = "") -> str:
    """Fractions to 4 places (the tables keep raw values, as metrics.json has them), seconds to 0.1."""
    if isinstance(value, float):
        metric = lookup(column)
        return f"{value:.1f}" if metric is not None and metric.fmt == "seconds" else f"{value:.4f}"
    return "" if value is None else str(value)


def markdown(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row[c], c).replace("|", "\\|") for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """The table as CSV, raw values (as metrics.json has them)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows({c: row[c] for c in columns} for row in rows)
    return buffer.getvalue()


def write_table(rows: list[dict[str, Any]], columns: Sequence[str], stem: Path, extra_md: str = "") -> str:
    """Write `<stem>.md` and `<stem>.csv`; return the markdown."""
    table = markdown(rows, columns) + extra_md
    write_text(stem.with_suffix(".md"), table, "a results table")
    write_text(stem.with_suffix(".csv"), csv_text(rows, columns), "a results table")
    return table


def seed_groups(rows: list[dict[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Completed jobs that differ only in `seed=`: count, mean and std of each metric.

    Only groups with at least two seeds are returned (a `-m seed=1,2,3` sweep).
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("status") in ("failed", "pruned"):
            continue
        rest = " ".join(o for o in row["overrides"].split() if not o.startswith("seed="))
        groups.setdefault(rest, []).append(row)
    out = []
    for overrides, members in groups.items():
        if len(members) < 2:
            continue
        entry: dict[str, Any] = {"overrides": overrides or "(none)", "seeds": len(members)}
        for m in metrics:
            values = [r[m] for r in members if isinstance(r.get(m), int | float)]
            if values:
                mean, std = statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0
                entry[m] = f"{mean:.4f} ± {std:.4f}"
        out.append(entry)
    return out


def unfinished_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """Rows for job folders that never wrote metrics.json (the process was killed or crashed)."""
    rows = []
    for job in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not (p / "metrics.json").exists()):
        overrides_file = job / ".hydra" / "overrides.yaml"
        if not overrides_file.is_file():
            continue  # not a job folder
        overrides = [str(o) for o in yaml.safe_load(overrides_file.read_text()) or []]
        row: dict[str, Any] = dict.fromkeys(SWEEP_COLUMNS)
        row.update(job=job.name, overrides=" ".join(overrides), status="incomplete")
        row["error"] = "no metrics.json: the job was killed or crashed before it finished"
        rows.append(row)
    return rows


def summarize_sweep(
    sweep_dir: Path, objective: str = "val/acc_best", extra_md: str = ""
) -> tuple[list[dict[str, Any]], str]:
    """Write `summary.md` / `summary.csv` for the jobs of a multirun folder; return (rows, markdown).

    Rows are sorted by `objective` (best first); failed jobs are rows with their error, and
    jobs that ended without a metrics.json (killed) are listed as incomplete.
    Seeds are grouped with mean ± std when the sweep varied `seed` alone; `extra_md` (a
    study's sections) goes at the end.
    """
    rows = read_rows(sorted(sweep_dir.glob("*/metrics.json")), SWEEP_COLUMNS)
    rows = sort_rows(rows + unfinished_jobs(sweep_dir), objective)
    groups = seed_groups(rows, (objective, "test/acc"))
    extra = ""
    if groups:
        columns = ["overrides", "seeds", objective, "test/acc"]
        for g in groups:
            for c in columns:
                g.setdefault(c, "")
        extra = "\n## Over seeds (mean ± std)\n\n" + markdown(groups, columns)
    table = write_table(rows, present(SWEEP_COLUMNS, rows), sweep_dir / "summary", extra + extra_md)
    return rows, table
