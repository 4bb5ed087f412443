"""Multiruns: a failed job becomes a row, not a lost sweep; every sweep ends with a summary
table (`summary.md`, `summary.csv` in the sweep folder).

Each job of a sweep is a run of its own, in its own folder (hwr.runs.entry claims it). A job
that fails is recorded there (`status: failed` and its error) and returns None to the
sweeper, so the other jobs go on and Optuna records a failed trial.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from hwr.evaluation.results import summarize_sweep
from hwr.runs import tables


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def objective_value(record: Any, objective: str | None) -> float | None:
    """What a sweep job returns to its sweeper: its objective metric, or None when it has none
    (Optuna then records a failed trial; a NaN would be told as a completed one)."""
    if not objective or not isinstance(record, dict):
        return None
    value = record.get(objective)
    return None if value is None else float(value)


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, write and print the sweep's summary table.

    Args:
        objective: the metric the rows are sorted by (what `hwr train` returns to sweepers).
        fail_on_error: exit with status 1 after the summary when any job failed.
    """

    def __init__(self, objective: str = "val/acc_best", fail_on_error: bool = True):
        self.objective, self.fail_on_error = objective, fail_on_error

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows, _ = summarize_sweep(sweep_dir, self.objective)
        failed = [r for r in rows if r["status"] in ("failed", "diverged")]
        title = f"sweep summary ({len(rows)} jobs, {len(failed)} failed), best {self.objective} first"
        tables.print_sweep(
            title, rows, self.objective, f"{sweep_dir / 'summary.md'}, {sweep_dir / 'summary.csv'}"
        )
        if failed and self.fail_on_error:
            raise SystemExit(
                f"error: {len(failed)} of {len(rows)} jobs failed; see {sweep_dir / 'summary.md'}"
            )
