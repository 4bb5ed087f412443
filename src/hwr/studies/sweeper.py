"""StudySweeper: an Optuna study run as a Hydra multirun (`hparams_search=<name>`).

Each round asks the study for `n_jobs` trials, launches them as Hydra jobs with the
launcher of the config (one after another with the basic launcher, in parallel with joblib,
submitit or Ray), and goes on until this session has run `n_trials`. Each job opens the
study itself and tells it how it ended (hwr.studies.trial). Everything a worker needs is in
the study's storage, so the same command in several terminals or jobs makes parallel workers.

Trial n is sampled with `seed + n` (TrialSeededSampler): trial numbers are unique in a
study, so workers never replay one another's parameters, and a study started twice with one
seed proposes the same first trials. Trial n runs in the job folder `trial_<n>`.
"""

from __future__ import annotations

import logging
import os
import socket
import textwrap
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from hwr.errors import HwrError
from hwr.files import write_text
from hwr.studies import space
from hwr.studies.storage import ERROR, HOST, PID, fail_stale_trials, keep_beating, open_storage

log = logging.getLogger("hwr")


def job_folder(trial_number: int) -> str:
    """The job folder (hydra.sweep.subdir) of a trial: `trial_007`."""
    return f"trial_{trial_number:03d}"


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def instantiate_optional(cfg: dict[str, Any], what: str, **extra: Any) -> Any:
    """`instantiate(cfg)`, with a missing optional package (cmaes, scipy) named in one line."""
    try:
        return instantiate(cfg, **extra)
    except Exception as e:
        cause = e.__cause__ or e
        if isinstance(cause, ImportError):
            name = getattr(cause, "name", None) or str(cause)
            raise HwrError(f"the {what} {cfg['_target_']} needs {name}: pip install {name}") from e
        raise


class TrialSeededSampler(BaseSampler):
    """The sampler of `config` (with a `seed`) instantiated for each trial with
    `seed + trial.number`. Samplers keep no state of their own but their random generators
    (the history is the study's), so this changes only where a trial's random numbers come
    from: its number, not how many trials this process sampled before."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = dict(config)
        self.seed = int(self.config.pop("seed"))
        self._samplers: dict[int, BaseSampler] = {}  # trials asked and not yet finished

    def sampler(self, trial: FrozenTrial) -> BaseSampler:
        if trial.number not in self._samplers:
            self._samplers[trial.number] = instantiate_optional(
                self.config, "sampler", seed=self.seed + trial.number
            )
        return self._samplers[trial.number]

    def forget(self, number: int) -> None:
        self._samplers.pop(number, None)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.sampler(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.sampler(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self.sampler(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.sampler(trial).before_trial(study, trial)


def build_sampler(
    cfg: dict[str, Any] | None, distributions: dict[str, BaseDistribution]
) -> BaseSampler | None:
    """The study's sampler from `hydra.sweeper.sampler` (seeded per trial when it has a seed)."""
    if not cfg:
        return None
    if str(cfg["_target_"]).endswith("GridSampler"):
        # trial n takes point n of the grid shuffled by the seed: the same order in every worker
        return instantiate_optional(cfg, "sampler", search_space=space.grid(distributions))
    if cfg.get("seed") is not None:
        return TrialSeededSampler(cfg)
    return instantiate_optional(cfg, "sampler")


class StudySweeper:
    """The sweep of one session on the study `hydra.sweeper` describes (hwr/configs/hydra/sweeper)."""

    def __init__(
        self,
        options: DictConfig,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
    ) -> None:
        self.options = options
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        self.sweep_dir = Path(config.hydra.sweep.dir)
        self.job_idx = 0

    def directions(self) -> list[str]:
        direction = _plain(self.options.direction)
        directions = [direction] if isinstance(direction, str) else list(direction)
        objective = self.config.get("objective")
        objectives = [objective] if isinstance(objective, str) else list(_plain(objective) or [])
        if len(objectives) != len(directions):
            raise HwrError(
                f"hydra.sweeper.direction gives {len(directions)} direction(s) for {len(objectives)} "
                f"objective(s) ({', '.join(map(str, objectives))}): give one direction per objective"
            )
        return directions

    def open_study(self, distributions: dict[str, BaseDistribution]) -> tuple[optuna.Study, Any]:
        directions = self.directions()
        storage = open_storage(str(self.options.storage))
        pruner_cfg = _plain(self.options.get("pruner"))
        pruner = instantiate_optional(pruner_cfg, "pruner") if pruner_cfg else optuna.pruners.NopPruner()
        if len(directions) > 1 and pruner_cfg:
            log.warning("two objectives: Optuna cannot prune them, every trial trains to the end")
        study = optuna.create_study(
            study_name=str(self.options.study_name),
            storage=storage,
            sampler=build_sampler(_plain(self.options.get("sampler")), distributions),
            pruner=pruner,
            directions=directions,
            load_if_exists=True,
        )
        theirs = [d.name.lower() for d in study.directions]
        if theirs != directions:
            raise HwrError(
                f"study {study.study_name} in {self.options.storage} optimises {theirs}, not {directions}: "
                "use another hydra.sweeper.study_name for a new objective"
            )
        self.storage, self.study_id = storage, storage.get_study_id_from_name(study.study_name)
        return study, storage

    def sweep(self, arguments: list[str]) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # hwr's own lines say what happens
        distributions, fixed = space.search_space(_plain(self.options.get("params")), arguments)
        if not distributions:
            raise HwrError("the study has nothing to search: add hydra.sweeper.params (see hparams_search/)")
        study, storage = self.open_study(distributions)
        write_text(self.sweep_dir / "multirun.yaml", OmegaConf.to_yaml(self.config), "the study's config")
        stale_after = float(self.options.get("stale_after_s") or 600)
        so_far = len(study.trials)
        log.info(
            "study %s: %s, in %s",
            study.study_name,
            f"continued after {so_far} trials" if so_far else "new",
            self.options.storage,
        )
        left = int(self.options.n_trials)
        while left > 0:
            for number in fail_stale_trials(storage, study.study_name, stale_after):
                log.warning("trial %d was left running by a process that is gone: marked failed", number)
            if isinstance(study.sampler, optuna.samplers.GridSampler) and study.sampler.is_exhausted(study):
                log.info("every point of the grid has been tried")
                break
            batch = [study.ask(distributions) for _ in range(min(int(self.options.n_jobs), left))]
            self.run_batch(study, batch, fixed)
            left -= len(batch)
        self.write_results(study)

    def run_batch(self, study: optuna.Study, trials: Sequence[optuna.Trial], fixed: list[str]) -> None:
        """Launch one job per trial; a trial its job did not finish (the job crashed past its
        own handling, or the launcher failed) is marked failed here."""
        jobs = []
        for trial in trials:
            # until its job records its own process: this one (a basic launcher's job is this one)
            self.set_system(trial.number, HOST, socket.gethostname())
            self.set_system(trial.number, PID, os.getpid())
            params = [f"{k}={space.override_value(v)}" for k, v in trial.params.items()]
            where = [f"hydra.sweep.subdir={job_folder(trial.number)}", f"hydra.sweeper.trial={trial.number}"]
            jobs.append([*params, *fixed, *where])
        # while the launcher waits (a SLURM job may sit in the queue for hours), this process
        # keeps its trials' heartbeat: no other worker takes them for abandoned
        stop = threading.Event()
        beat = threading.Thread(target=self.keep_alive, args=([t.number for t in trials], stop), daemon=True)
        beat.start()
        try:
            self.launcher.launch(jobs, initial_job_idx=self.job_idx)
        finally:
            stop.set()
            beat.join()
            self.job_idx += len(jobs)
            for trial in trials:
                trial_id = self.trial_id(trial.number)
                if self.storage.get_trial(trial_id).state == TrialState.RUNNING:
                    self.storage.set_trial_user_attr(trial_id, ERROR, "its job ended without a result")
                    study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
                if isinstance(study.sampler, TrialSeededSampler):
                    study.sampler.forget(trial.number)

    def keep_alive(self, numbers: list[int], stop: threading.Event) -> None:
        """Keep the heartbeat of the RUNNING trials `numbers` until `stop`."""
        interval = float(self.options.get("heartbeat_s") or 30)
        keep_beating(self.storage, [self.trial_id(n) for n in numbers], interval, stop)

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def set_system(self, number: int, key: str, value: Any) -> None:
        self.storage.set_trial_system_attr(self.trial_id(number), key, value)

    def write_results(self, study: optuna.Study) -> None:
        """`optimization_results.yaml`: the best trial (or the Pareto front of two objectives)."""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not done:
            log.error("no trial of study %s has completed: no optimization_results.yaml", study.study_name)
            return
        if len(study.directions) == 1:
            best = study.best_trial
            results = {
                "name": study.study_name,
                "best_trial": best.number,
                "best_params": best.params,
                "best_value": best.value,
            }
            shown = " ".join(f"{k}={space.short(v)}" for k, v in best.params.items())
            head = f"best: trial {best.number}, {self.config.get('objective')} {best.value:.4f}:"
            log.info(
                "%s", textwrap.fill(f"{head} {shown}", 80, subsequent_indent="  ", break_long_words=False)
            )
        else:
            front = [{"trial": t.number, "params": t.params, "values": t.values} for t in study.best_trials]
            results = {"name": study.study_name, "pareto_front": front}
            log.info("Pareto front: trials %s", ", ".join(str(t["trial"]) for t in front))
        text = OmegaConf.to_yaml(OmegaConf.create(results))
        write_text(self.sweep_dir / "optimization_results.yaml", text, "the study's best parameters")
