"""Multirun bookkeeping: a failed job becomes a row, not a lost sweep; every sweep ends with
a summary table (`summary.md`, `summary.csv` in the sweep folder)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from hwr.errors import FolderTaken, HwrError, root_cause
from hwr.results import summarize_sweep
from hwr.utils.run import hydra_overrides, write_metrics

log = logging.getLogger("hwr")


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def error_message(error: BaseException) -> str:
    """One line: the user error's own message, else the exception type and message."""
    cause = root_cause(error)
    if isinstance(cause, HwrError):
        return str(cause)
    text = f"{type(cause).__name__}: {cause}"
    return text.strip().splitlines()[0] if text.strip() else type(cause).__name__


def record_failure(cfg: DictConfig, error: BaseException) -> str:
    """Write `status: failed` and the error's one-line message to the run folder's metrics.json
    (and its train.log) so a failed run's folder says what happened; a folder that already
    holds a record (another run, a resumed one) keeps it. Returns the message."""
    message = error_message(error)
    output_dir = Path(cfg.paths.output_dir)
    if isinstance(error, FolderTaken):
        return message  # the folder is another run's
    if output_dir.is_dir() and not (output_dir / "metrics.json").exists():
        failed = {"status": "failed", "error": message, "task": cfg.get("task_name")}
        failed.update(overrides=hydra_overrides(), output_dir=str(output_dir))
        write_metrics(output_dir, failed)
    run_log = logging.getLogger("hwr.run")
    if run_log.handlers:  # the run's log file (hwr.utils.run.log_to_run_file), not the terminal
        run_log.error("failed: %s", message)
    return message


def run_task(cfg: DictConfig, task: Callable[[DictConfig], dict[str, Any]], objective: str) -> float | None:
    """Run `task` and return its `objective` metric; a failure is recorded in the run folder
    (`record_failure`).

    In a multirun, an exception does not stop the sweep: the job returns None, as it does
    when the metric is missing: Optuna records a failed trial (a NaN would be told as a
    completed one, which optuna refuses, ending the study), the summary lists the row. A
    single run raises as usual, and its entry point prints the error.
    """
    try:
        value = task(cfg).get(objective)
    except Exception as e:  # noqa: BLE001 - any failure of one job is reported, the sweep goes on
        message = record_failure(cfg, e)
        if not in_multirun():
            raise
        if isinstance(root_cause(e), HwrError):  # a user error: its message says it all
            log.error("job failed (%s): %s", " ".join(hydra_overrides()), message)
        else:
            log.exception("job failed (%s)", " ".join(hydra_overrides()))
        return None
    return None if value is None else float(value)


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, write and print the sweep's summary table.

    Args:
        objective: the metric the rows are sorted by (what train.py returns to sweepers).
        fail_on_error: exit with status 1 after the summary when any job failed.
    """

    def __init__(self, objective: str = "val/acc_best", fail_on_error: bool = True):
        self.objective, self.fail_on_error = objective, fail_on_error

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows, table = summarize_sweep(sweep_dir, self.objective)
        failed = [r for r in rows if r["status"] == "failed"]
        print(f"\nsweep summary ({len(rows)} jobs, {len(failed)} failed), by {self.objective}:\n")
        print(table)
        print(f"written: {sweep_dir / 'summary.md'}, {sweep_dir / 'summary.csv'}")
        if failed and self.fail_on_error:
            raise SystemExit(
                f"error: {len(failed)} of {len(rows)} jobs failed; see {sweep_dir / 'summary.md'}"
            )
