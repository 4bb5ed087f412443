"""The study trial a sweep job trains, seen from the job's process.

The sweeper (hwr.studies.sweeper) asks the study for a trial and launches a job with its
parameters and `hydra.sweeper.trial=<number>`. The job, wherever a launcher runs it, opens
the study itself and owns its trial until the end:

- it records its host and pid, and a heartbeat every `heartbeat_s` (hwr.studies.storage
  fails the trial if the process disappears);
- the pruning callback reports the monitored metric each epoch and asks whether to stop
  (hwr.training.pruning);
- it tells the study how the job ended: COMPLETE with the objective, PRUNED, or FAIL with
  the reason (an error, an interrupt, a kill noticed by another worker).

The job tells because only it knows how it ended: a launcher that lost its sweeper (a SLURM
job outliving the terminal that started it) still finishes its trial.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from optuna.trial import TrialState

from hwr.studies.storage import ERROR, HEARTBEAT, HOST, PID, keep_beating, open_storage

log = logging.getLogger("hwr")
_active: TrialLink | None = None


def active() -> TrialLink | None:
    """The trial this process is training now, or None."""
    return _active


class TrialLink:
    """Trial `number` of study `study_name` in `storage`, pruned by `pruner` (an instantiated
    Optuna pruner, or None). Use it as a context manager around the job."""

    def __init__(
        self, storage: str, study_name: str, number: int, pruner: Any = None, heartbeat_s: float = 30.0
    ) -> None:
        self.storage_spec, self.study_name, self.number = storage, study_name, number
        self.heartbeat_s = heartbeat_s
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.storage = open_storage(storage)
        self.study = optuna.load_study(
            study_name=study_name,
            storage=self.storage,
            # the job never samples; a plain sampler keeps the study's own (a grid's end, a
            # CMA-ES state) to the sweeper that does
            sampler=optuna.samplers.RandomSampler(),
            pruner=pruner if pruner is not None else optuna.pruners.NopPruner(),
        )
        study_id = self.storage.get_study_id_from_name(study_name)
        self.trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, number)
        self.trial = optuna.trial.Trial(self.study, self.trial_id)
        self.told = False
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    @classmethod
    def from_hydra(cls) -> TrialLink | None:
        """The trial of this Hydra job (`hydra.sweeper.trial` set by hwr's sweeper), or None."""
        if not HydraConfig.initialized():
            return None
        sweeper = HydraConfig.get().sweeper
        if sweeper.get("trial") is None or not sweeper.get("storage"):
            return None
        pruner = instantiate(sweeper.pruner) if sweeper.get("pruner") else None
        heartbeat = float(sweeper.get("heartbeat_s") or 30.0)
        return cls(str(sweeper.storage), str(sweeper.study_name), int(sweeper.trial), pruner, heartbeat)

    # the job's life -------------------------------------------------------------------------
    def __enter__(self) -> TrialLink:
        global _active
        self._set_system(HOST, socket.gethostname())
        self._set_system(PID, os.getpid())
        self._set_system(HEARTBEAT, time.time())
        beat = (self.storage, [self.trial_id], self.heartbeat_s, self._stop)
        self._beat = threading.Thread(
            target=keep_beating, args=beat, name=f"trial-{self.number}", daemon=True
        )
        self._beat.start()
        _active = self
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        global _active
        _active = None
        self._stop.set()
        if self.told:
            return
        if error is None:
            self.tell_fail("the job returned no result")
        elif isinstance(error, SystemExit | KeyboardInterrupt):
            self.tell_fail("interrupted")
        else:
            from hwr.errors import one_line

            self.tell_fail(one_line(error))

    def _set_system(self, key: str, value: Any) -> None:
        self.storage.set_trial_system_attr(self.trial_id, key, value)

    # what the job tells -------------------------------------------------------------------
    def report(self, value: float, step: int) -> bool:
        """Report the monitored metric after epoch `step`; whether the pruner stops the trial.
        A study with two objectives takes no reports (Optuna cannot prune it)."""
        if len(self.study.directions) > 1:
            return False
        try:
            self.trial.report(value, step)
            return self.trial.should_prune()
        except optuna.exceptions.UpdateFinishedTrialError:
            return False  # marked failed by another worker: training on harms nobody

    def finish(
        self, record: Mapping[str, Any] | None, objective: str | Sequence[str], error: str = ""
    ) -> None:
        """Tell the study how the job ended, from its run record (None: the job failed)."""
        if record is None:
            return self.tell_fail(error or "the job failed")
        if record.get("status") == "pruned":
            return self._tell(TrialState.PRUNED)
        keys = [objective] if isinstance(objective, str) else list(objective)
        values = [record.get(k) for k in keys]
        bad = [
            k for k, v in zip(keys, values, strict=True) if not isinstance(v, int | float) or math.isnan(v)
        ]
        if bad:
            return self.tell_fail(f"the run recorded no {', '.join(bad)} (status {record.get('status')})")
        self._tell(TrialState.COMPLETE, [float(v) for v in values])

    def tell_fail(self, reason: str) -> None:
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self.storage.set_trial_user_attr(self.trial_id, ERROR, reason)
        self._tell(TrialState.FAIL)

    def _tell(self, state: TrialState, values: list[float] | None = None) -> None:
        self.told = True
        self._stop.set()
        try:
            self.study.tell(self.number, values, state=state, skip_if_finished=True)
        except Exception as e:  # noqa: BLE001 - the run's own record is written; say what the study missed
            log.warning("trial %d could not be recorded as %s in the study: %s", self.number, state.name, e)
