"""OptunaSweeperImpl with what several sessions on one study need (the point of a shared
SQLite/RDB study: run the same command in several terminals or jobs):

- the storage's tables are created with retries, since two sessions starting on a new
  database race on them (alembic_version: IntegrityError);
- trial n is sampled with `seed + n` (TrialSeededSampler): trial numbers are unique in a
  study, so parallel or continued sessions never replay one another's parameters, and a
  single session stays reproducible;
- trial n runs in the job folder `trial_<n>` (job_folder), unique in the study, and the
  number Optuna's own tools show;
- a study whose trials all failed ends with the sweep's summary, not the plugin's traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import optuna
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, Trial, TrialState
from sqlalchemy.exc import IntegrityError, OperationalError

log = logging.getLogger(__name__)


def job_folder(trial_number: int) -> str:
    """The job folder (hydra.sweep.subdir) of a trial: `trial_007`."""
    return f"trial_{trial_number:03d}"


def create_schema(url: str, attempts: int = 5) -> None:
    """Create (or check) the tables of the RDB storage at `url`. Sessions starting together on a
    new database race on them, and the loser's error is retried: by then the tables exist."""
    for attempt in range(1, attempts + 1):
        try:
            optuna.storages.RDBStorage(url).engine.dispose()
            return
        except (IntegrityError, OperationalError, optuna.exceptions.StorageInternalError) as e:
            if attempt == attempts:
                raise
            log.debug("creating the tables of %s: %s; retrying", url, type(e).__name__)
            time.sleep(0.2 * attempt)


class TrialSeededSampler(BaseSampler):
    """The sampler of `config` (a Hydra sampler config with a seed) instantiated for each trial
    with `seed + trial.number`. Samplers keep no state of their own but their random
    generators (the history comes from the study), so this changes only where the random
    numbers of a trial come from: from its number, not from how many trials this process
    sampled before."""

    def __init__(self, config: DictConfig | dict[str, Any]) -> None:
        self.config = OmegaConf.to_container(OmegaConf.create(config), resolve=True)
        self.seed = int(self.config["seed"])
        self._samplers: dict[int, BaseSampler] = {}  # trials asked and not yet told

    def sampler(self, trial: FrozenTrial) -> BaseSampler:
        if trial.number not in self._samplers:
            self._samplers[trial.number] = instantiate(self.config, seed=self.seed + trial.number)
        return self._samplers[trial.number]

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.sampler(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.sampler(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self.sampler(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self.sampler(trial).after_trial(study, trial, state, values)
        self._samplers.pop(trial.number, None)


class _FailedJobNoise(logging.Filter):
    """A failed job returns None (hwr.runs.sweep.run_task), which the plugin records as a
    failed trial after warning that None is not a float: the job has already said why it failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "must be float-castable. Got 'None'" not in record.getMessage()


class HwrOptunaSweeperImpl(OptunaSweeperImpl):
    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        plugin_log = logging.getLogger(OptunaSweeperImpl.__module__)
        if not any(isinstance(f, _FailedJobNoise) for f in plugin_log.filters):
            plugin_log.addFilter(_FailedJobNoise())
        sampler = config.hydra.sweeper.sampler
        # GridSampler (a partial, completed in sweep()) takes no seed; unseeded samplers
        # draw from the OS and cannot replay.
        if sampler.get("seed") is not None and not sampler.get("_partial_", False):
            self.sampler = TrialSeededSampler(sampler)
        if isinstance(self.storage, str) and not self.storage.startswith("redis"):
            create_schema(self.storage)

    def sweep(self, arguments: list[str]) -> None:
        try:
            super().sweep(arguments)
        except ValueError as e:
            # Every trial failed: the plugin has no best trial to write and raises. The sweep
            # still ends with its summary (hwr.runs.sweep.SweepSummary) saying why, exit 1.
            if "Record does not exist" not in str(e):
                raise
            log.error("no trial of study %s has completed: no optimization_results.yaml", self.study_name)

    def _configure_trials(
        self,
        trials: list[Trial],
        search_space_distributions: dict[str, BaseDistribution],
        fixed_params: dict[str, Any],
    ) -> Sequence[Sequence[str]]:
        overrides = super()._configure_trials(trials, search_space_distributions, fixed_params)
        # A hydra.* override: the job's folder, not among its task overrides (metrics.json).
        return [
            (*job, f"hydra.sweep.subdir={job_folder(trial.number)}")
            for trial, job in zip(trials, overrides, strict=True)
        ]
