"""The tables and lines a run ends with (its metrics, its facts, the confused pairs, where to
look next) and `hwr results`' table of runs. Every one fits 80 columns; accuracies are
percentages (hwr.evaluation.metrics.show), times read as 2:41.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import rich
import rich.box
import rich.table

from hwr.evaluation.casefold import fold_members
from hwr.evaluation.metrics import numbers, show
from hwr.evaluation.names import labelled, lookalike_names
from hwr.evaluation.results import seed_groups
from hwr.runs.console import duration, shown_path

# facts of a run, shown in one line under the metrics table rather than as metrics
FACTS = ("epochs", "train_time_s", "wall_time_s")
# what the end table shows (per-source keys as their plain name), after the objective; the
# rest (micro averages equal to accuracy, precision, recall) is in metrics.json and report/
TERMINAL = (
    "test/acc",
    "test/acc_casefold",
    "test/acc_top5",
    "test/f1",
    "test/loss",
    "val/acc",
    "val/loss",
    "train/acc",
    "train/loss",
)


def metrics_table(record: Mapping[str, Any], title: str, first: str | None = None) -> rich.table.Table:
    """The registry's metrics of a record (no facts, no learning rates), `first` (the
    objective) and test/acc at the top."""
    rank = {name: i for i, name in enumerate(TERMINAL)}
    plain = {k: _plain(k) for k in numbers(record)}
    shown = [k for k in numbers(record) if k == first or plain[k] in rank]
    order = sorted(shown, key=lambda k: (k != first, rank.get(plain[k], -1), k))
    table = rich.table.Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in order:
        table.add_row(key, show(key, record[key]))
    return table


def _plain(key: str) -> str:
    """test/english/acc -> test/acc (a mix's per-source figures sit beside the plain one)."""
    parts = key.split("/")
    return f"{parts[0]}/{parts[-1]}" if len(parts) == 3 else key


def facts_line(record: Mapping[str, Any]) -> str:
    """`10 epochs, 2:41 training (3:02 in all) · seed 12345 · 0.58 M params`: what the run
    was, beside what it scored."""
    parts = []
    epochs, train_s, wall_s = (record.get(k) for k in FACTS)
    if isinstance(epochs, int) and epochs:
        timing = f"{epochs} epoch{'s' if epochs != 1 else ''}"
        if isinstance(train_s, int | float):
            timing += f", {duration(train_s)} training"
        if isinstance(wall_s, int | float):
            timing += f" ({duration(wall_s)} in all)"
        parts.append(timing)
    elif isinstance(wall_s, int | float):
        parts.append(f"{duration(wall_s)} in all")
    if record.get("seed") is not None:
        parts.append(f"seed {record['seed']}")
    if isinstance(record.get("num_params"), int):
        parts.append(f"{record['num_params'] / 1e6:.2f} M params")
    return " · ".join(parts)


def pairs_table(pairs: Sequence[Mapping[str, Any]], classes: Sequence[str] | None = None) -> rich.table.Table:
    """The most-confused pairs, look-alike labels named ("l (small L)") among `classes`."""
    names = lookalike_names(classes or [row[k] for row in pairs for k in ("true", "predicted")])
    table = rich.table.Table(title=f"most confused pairs (top {len(pairs)})", title_justify="left")
    for column in ("true", "predicted", "count", "share of true class"):
        table.add_column(column, justify="right" if column != "true" else "left")
    for row in pairs:
        true, pred = labelled(row["true"], names), labelled(row["predicted"], names)
        table.add_row(true, pred, str(row["count"]), f"{row['share']:.1%}")
    return table


def print_report(report: Any, top: int = 5) -> None:
    """What a test report says at the end of a run: the `top` confused pairs (all of them are
    in report/confusions.csv), and how much of the error is case or look-alike confusion."""
    if not report.pairs:
        print("no confused pairs: every test image was read right")
    else:
        table = pairs_table(report.pairs[:top], report.classes)
        if len(report.pairs) > top:
            table.caption = f"{len(report.pairs)} pairs in report/confusions.csv"
        rich.print(table)
    share = report.metrics.get("test/error_share_casefold")
    if share is not None:
        groups = " ".join("/".join(m) for m in fold_members(report.classes))
        line = f"{share:.1%} of the errors are case or look-alike confusions ({groups})"
        print(line if len(line) <= 80 else f"{line[:76]}...)")


def print_metrics(record: Mapping[str, Any], title: str, first: str | None = None) -> None:
    """The end's metrics table and, under it, the run's facts line."""
    rich.print(metrics_table(record, title, first))
    facts = facts_line(record)
    if facts:
        print(facts)


def print_pointers(record_path: Any, report: Any = None, tensorboard: Any = None) -> None:
    """Where to look next, one unwrapped line each that can be pasted as it is (plain print: a
    long path must stay one line a terminal can copy): under `uv run`, the commands say so."""
    run = "uv run " if os.environ.get("UV") else ""
    print(f"run record: {shown_path(record_path)}")
    if report is not None:
        print(f"report:     {shown_path(report)}/")
    if tensorboard is not None:
        print(f"curves:     {run}tensorboard --logdir {shown_path(tensorboard)}")
        print(f"compare:    {run}hwr results {shown_path(tensorboard)}")


def print_job_line(record: Mapping[str, Any], objective: str | None, folder: Path) -> None:
    """A multirun job's end in one line (its folder, status, objective, test/acc, time): the
    sweep's summary table comes at the end, and twenty full tables would bury it."""
    status = str(record.get("status"))
    if status == "pruned" and record.get("pruned_at"):
        status += f" at epoch {record['pruned_at']}"
    parts = [f"{Path(folder).name}: {status}"]
    for metric in dict.fromkeys(m for m in (objective, "test/acc") if m):
        value = record.get(metric)
        if isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(f"{metric} {show(metric, value)}")
    if isinstance(record.get("wall_time_s"), int | float):
        parts.append(duration(record["wall_time_s"]))
    print(" · ".join(parts))


def print_results(rows: Sequence[Mapping[str, Any]], folder: Path, sort: str) -> None:
    """`hwr results`' table: each run (its folder below `folder`), data, model and the
    registry's results columns, percentages as everywhere else."""
    title = f"{len(rows)} runs in {shown_path(folder)}, best {sort} first"
    table = rich.table.Table(title=title, title_justify="left", box=rich.box.SIMPLE_HEAD)
    metrics = [
        c
        for c in ("test/acc", "val/acc_best", "test/acc_casefold")
        if any(r.get(c) is not None for r in rows)
    ]
    table.add_column("run", no_wrap=True)
    table.add_column("data/model", overflow="fold")
    headers = {"test/acc": "test acc", "val/acc_best": "best val", "test/acc_casefold": "casefold"}
    for metric in metrics:
        table.add_column(headers[metric], justify="right")
    table.add_column("time", justify="right")
    for row in rows:
        run = Path(row["path"]).resolve()
        with contextlib.suppress(ValueError):
            run = run.relative_to(folder.resolve())
        cells = [show(m, row[m]) if row.get(m) is not None else "-" for m in metrics]
        wall = row.get("wall_time_s")
        table.add_row(
            str(run), f"{row.get('data')} / {row.get('model')}", *cells, duration(wall) if wall else "-"
        )
    rich.print(table)


def print_sweep(title: str, rows: Sequence[Mapping[str, Any]], objective: str, written: str) -> None:
    """A sweep's summary on the terminal: each job's overrides, status, objective, test/acc and
    time (errors and every column are in the summary files), and seed groups' mean ± std."""
    table = rich.table.Table(
        title=title, title_justify="left", box=rich.box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True
    )
    metrics = list(
        dict.fromkeys(m for m in (objective, "test/acc") if any(r.get(m) is not None for r in rows))
    )
    headers = {"val/acc_best": "best val", "test/acc": "test acc"}  # short: overrides get the room
    table.add_column("job", no_wrap=True)
    table.add_column("overrides", overflow="fold", ratio=1, min_width=23)
    table.add_column("status")
    for metric in metrics:
        table.add_column(headers.get(metric, metric), justify="right")
    table.add_column("ep", justify="right")  # epochs trained: a pruned trial stopped early
    table.add_column("time", justify="right")
    common, varied = split_overrides([str(r.get("overrides") or "") for r in rows])
    for row, overrides in zip(rows, varied, strict=True):
        cells = [show(m, row[m]) if isinstance(row.get(m), int | float) else "-" for m in metrics]
        wall = row.get("wall_time_s")
        time = duration(wall) if isinstance(wall, int | float) else "-"
        epochs = str(row["epochs"]) if row.get("epochs") is not None else "-"
        shown = "\n".join(overrides.split()) or "(none)"  # one per line: a value is never split
        table.add_row(str(row.get("job")), shown, str(row.get("status")), *cells, epochs, time)
    rich.print(table)
    if common:
        print(f"every job: {common}")
    for group in seed_groups(list(rows), metrics):
        # seed_groups gives "mean ± std" as fractions (summary.md keeps raw values): shown as percentages here
        spread = ", ".join(f"{m} {_mean_std(m, group[m])}" for m in metrics if m in group)
        print(f"over {group['seeds']} seeds of {group['overrides']}: {spread}")
    print(f"written: {written}")


def split_overrides(lines: Sequence[str]) -> tuple[str, list[str]]:
    """(the overrides every job shares, each job's own) for a terminal table: long numbers
    shortened to 4 digits and dotted keys to their shortest unambiguous ending, so a study's
    rows read `lr=0.002345 dropout=0.1245` (summary.md keeps them whole)."""
    jobs = [line.split() for line in lines]
    shared = set.intersection(*(set(j) for j in jobs)) if len(jobs) > 1 else set()
    common = " ".join(o for o in (jobs[0] if jobs else []) if o in shared)
    names = _short_keys({o.partition("=")[0] for job in jobs for o in job if o not in shared and "=" in o})
    return common, [" ".join(_short(o, names) for o in job if o not in shared) for job in jobs]


def _short_keys(keys: set[str]) -> dict[str, str]:
    """Each dotted key's shortest ending no other key shares: model.net.dropout -> dropout."""
    out = {}
    for key in keys:
        parts = key.lstrip("+~").split(".")
        for n in range(1, len(parts) + 1):
            end = ".".join(parts[-n:])
            if not any(k != key and (k == end or k.endswith("." + end)) for k in keys):
                break
        out[key] = end
    return out


def _short(override: str, names: dict[str, str]) -> str:
    key, sep, value = override.partition("=")
    if not sep:
        return override
    try:
        number = float(value)
        if len(value) > 7 and not value.isdigit():
            value = f"{number:.4g}"
    except ValueError:
        pass
    return f"{names.get(key, key)}={value}"


def _mean_std(metric: str, text: str) -> str:
    mean, std = (float(part) for part in text.split(" ± "))
    return f"{show(metric, mean)} ± {show(metric, std)}"
