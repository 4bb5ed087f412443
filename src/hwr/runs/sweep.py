"""Multiruns: a failed job becomes a row, not a lost sweep; every sweep ends with a summary
table (`summary.md`, `summary.csv` in the sweep folder).

Each job of a sweep is a run of its own, in its own folder (hwr.runs.entry claims it). A job
that fails is recorded there (`status: failed` and its error) and returns None to the
sweeper, so the other jobs go on and Optuna records a failed trial.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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


def objective_value(record: Any, objective: str | Sequence[str] | None) -> float | list[float] | None:
    """What a sweep job returns to its sweeper: its objective metric (a list of them for two
    objectives), or None when it has none (a failed job)."""
    if not objective or not isinstance(record, dict):
        return None
    keys = [objective] if isinstance(objective, str) else list(objective)
    values = [record.get(k) for k in keys]
    if any(v is None for v in values):
        return None
    return float(values[0]) if isinstance(objective, str) else [float(v) for v in values]


@contextmanager
def study_trial() -> Iterator[Any]:
    """The Optuna trial this job trains (hwr.studies.trial.TrialLink), told how the job ends;
    None when the job is not a trial of hwr's study sweeper (Optuna is imported only then)."""
    if not in_multirun() or HydraConfig.get().sweeper.get("trial") is None:
        yield None
        return
    from hwr.studies.trial import TrialLink

    link = TrialLink.from_hydra()
    if link is None:
        yield None
        return
    with link:
        yield link


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, write and print the sweep's summary table.

    Args:
        objective: the metric the rows are sorted by (what `hwr train` returns to sweepers).
        fail_on_error: exit with status 1 after the summary when any job failed.
    """

    def __init__(self, objective: str | Sequence[str] = "val/acc_best", fail_on_error: bool = True):
        objectives = [objective] if isinstance(objective, str) else [str(o) for o in objective]
        self.objectives, self.fail_on_error = objectives, fail_on_error
        self.objective = objectives[0]  # what the rows are sorted by

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows, _ = summarize_sweep(sweep_dir, self.objective, study_summary(config, self.objectives))
        failed = [r for r in rows if r["status"] in ("failed", "diverged")]
        pruned = sum(r["status"] == "pruned" for r in rows)
        shown = f", {pruned} pruned" if pruned else ""
        title = f"sweep summary ({len(rows)} jobs, {len(failed)} failed{shown}), best {self.objective} first"
        tables.print_sweep(
            title, rows, self.objective, f"{sweep_dir / 'summary.md'}, {sweep_dir / 'summary.csv'}"
        )
        if failed and self.fail_on_error:
            raise SystemExit(
                f"error: {len(failed)} of {len(rows)} jobs failed; see {sweep_dir / 'summary.md'}"
            )


def study_summary(config: DictConfig, objectives: list[str]) -> str:
    """The study's sections of summary.md when the multirun was an Optuna study (hwr.studies)."""
    sweeper = config.hydra.sweeper
    if "trial" not in sweeper or not sweeper.get("storage"):
        return ""
    from hwr.studies.report import study_sections

    return study_sections(
        str(sweeper.storage), str(sweeper.study_name), objectives, Path(config.hydra.sweep.dir)
    )
