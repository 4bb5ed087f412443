"""Where a study lives, and trials that nobody will finish.

A storage is a journal file by default (`<study folder>/optuna_journal.log`): Optuna appends
every change to it under a file lock, so several workers (terminals, launcher processes, a
SLURM array on a shared file system) share one study with no server. A URL
(`postgresql+psycopg://...`, `mysql+pymysql://...`, `sqlite:///...`) selects a database
instead (the `sweeps-db` extra installs the drivers).

A trial is RUNNING while a process trains it. The process records its host, pid and a
heartbeat on the trial (hwr.studies.trial); a RUNNING trial whose process is gone (same host,
pid not alive) or whose heartbeat stopped (`stale_after_s`) is marked FAIL by the next
worker that looks, so no trial is left running forever.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from hwr.errors import HwrError

log = logging.getLogger("hwr")
JOURNAL = "optuna_journal.log"
# system attributes of a RUNNING trial, written by the process that trains it
HOST, PID, HEARTBEAT = "hwr:host", "hwr:pid", "hwr:heartbeat"
ERROR = "error"  # user attribute: why a trial failed


def is_url(storage: str) -> bool:
    return "://" in storage


def open_storage(storage: str) -> BaseStorage:
    """The storage `storage` names: a journal file (created with its folder) or a database URL."""
    if is_url(storage):
        try:
            return RDBStorage(storage)
        except (ImportError, ModuleNotFoundError) as e:
            raise HwrError(
                f"the study's database {storage.split('://')[0]} needs its driver ({e.name or e}): "
                'pip install "hwr[sweeps-db]"'
            ) from e
        except RuntimeError as e:
            if "storage upgrade" not in str(e):
                raise
            raise HwrError(
                f"{storage} holds a study written by an older Optuna: run "
                f"`optuna storage upgrade --storage {storage}` once, then this command again"
            ) from e
    path = Path(storage)
    refuse_old_sqlite(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def refuse_old_sqlite(folder: Path) -> None:
    """A study folder of an older hwr holds `optuna.db` (SQLite, Optuna 2). Starting a journal
    beside it would fork the study silently: say how to continue it instead."""
    old = folder / "optuna.db"
    if old.is_file() and not (folder / JOURNAL).exists():
        url = f"sqlite:///{old.absolute()}"
        raise HwrError(
            f"{old} holds this study from an older hwr (SQLite, Optuna 2): to continue it run "
            f"`optuna storage upgrade --storage {url}` once and add hydra.sweeper.storage={url}; "
            "to start a new study instead, move optuna.db away"
        )


def alive(pid: int) -> bool:
    """Whether process `pid` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def stale(trial: FrozenTrial, stale_after_s: float, now: float | None = None) -> str | None:
    """Why a RUNNING trial will never be finished by its process, or None if it may still be."""
    attrs = trial.system_attrs
    if attrs.get(HOST) == socket.gethostname() and PID in attrs and not alive(int(attrs[PID])):
        return f"its process ({attrs[PID]}) ended without finishing it"
    started = trial.datetime_start.timestamp() if trial.datetime_start else None
    beat = attrs.get(HEARTBEAT, started)
    if beat is not None and (now or time.time()) - float(beat) > stale_after_s:
        return f"no heartbeat from its process for over {stale_after_s:.0f} s"
    return None


def fail_stale_trials(storage: BaseStorage, study_name: str, stale_after_s: float) -> list[int]:
    """Mark FAIL every RUNNING trial of the study whose process is gone; the numbers marked."""
    study_id = storage.get_study_id_from_name(study_name)
    failed = []
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale(trial, stale_after_s)
        if reason is None:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.set_trial_user_attr(trial_id, ERROR, f"abandoned: {reason}")
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        failed.append(trial.number)
    return failed


def keep_beating(storage: BaseStorage, trial_ids: list[int], interval: float, stop: threading.Event) -> None:
    """Write HEARTBEAT on the trials every `interval` seconds until `stop` is set, or until
    each is finished (its job, or another worker, has told the study how it ended)."""
    alive = list(trial_ids)
    while alive and not stop.wait(interval):
        for trial_id in list(alive):
            try:
                storage.set_trial_system_attr(trial_id, HEARTBEAT, time.time())
            except optuna.exceptions.UpdateFinishedTrialError:
                alive.remove(trial_id)
            except Exception as e:  # noqa: BLE001 - a shared file system's hiccup: the next beat retries
                log.debug("trial %d heartbeat: %s", trial_id, e)
