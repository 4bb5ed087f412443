"""The run folder and its one owner: claimed before anything is written, every file recorded.

A run claims its folder by creating `.hwr/lock` with O_EXCL (atomic on every local and
network file system hwr runs on): the lock holds the owner's pid, host and start time, and
is removed when the run ends. A second run pointed at the same folder finds the lock and is
refused without writing anything; a lock whose process is gone (a killed run) is stale: a
resume takes it over, saying so. The processes of one run (DDP ranks) join the folder their
first process claimed; each sweep job claims its own.

Every file the run writes goes through the folder (atomically: hwr.files) and is recorded in
`.hwr/manifest.json`; files written by libraries (TensorBoard's event files, a profiler's
report) are adopted into it when they appear. `overwrite=true` removes exactly the files of
that manifest, so files of the user's own in the folder are never touched.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from hwr.errors import FolderTaken, HwrError
from hwr.files import Folder, write_text

STATE = ".hwr"  # the run's own bookkeeping: lock and manifest
LOCK, MANIFEST = "lock", "manifest.json"
# a run made by an hwr that kept no manifest
LEGACY_SIGNS = ("metrics.json", "checkpoints", ".hydra")
# files libraries write into a run's folders, adopted into the manifest when they appear
log = logging.getLogger("hwr")
ADOPTED = ("tensorboard/**/events.out.tfevents.*", "tensorboard/**/hparams.yaml", "profile*.txt", "*.log")
OWNER_ENV = "HWR_RUN_OWNER"  # tells a DDP rank which folder and lock its run holds


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holds_run(path: Path) -> list[str]:
    """The signs of a run in `path`: its manifest, or what an older hwr left."""
    if (path / STATE / MANIFEST).is_file():
        return [f"{STATE}/{MANIFEST}"]
    return [name for name in LEGACY_SIGNS if (path / name).exists()]


class RunFolder(Folder):
    """A run's folder, owned by the run that claimed it (see module docstring).

    `claim` for the first process of a run, `join` for its other DDP ranks (which write
    nothing). Use as a context manager: the lock goes when the run ends.
    """

    def __init__(self, path: str | Path, owner: bool) -> None:
        super().__init__(Path(path).absolute())
        self.owner = owner
        self.files: list[str] = []
        self.token = ""
        self._present: set[str] = set()

    # ---- claiming -----------------------------------------------------------------------
    @classmethod
    def claim(cls, path: str | Path, resume: bool = False, overwrite: bool = False) -> RunFolder:
        """Take `path` for a new run (it may be empty or missing), a resumed one (`resume`: it
        must hold that run) or a replacement (`overwrite`: the old run's files go first).

        Raises FolderTaken when another live process holds it, or when it holds another run
        and neither `resume` nor `overwrite` says what to do with it.
        """
        folder = cls(path, owner=True)
        folder.path.mkdir(parents=True, exist_ok=True)
        folder._lock()
        try:
            found = holds_run(folder.path)
            if found and not (resume or overwrite):
                raise FolderTaken(
                    f"{folder.path} holds another run ({', '.join(found)}); use another folder, "
                    f"resume={folder.path} to continue it, or overwrite=true to replace it"
                )
            if overwrite and not resume and found:
                folder._remove_previous()
            folder._load_manifest()
            folder._present = {p for p in folder._scan() if p not in folder.files}
            folder._save_manifest()
        except BaseException:
            folder.release()
            raise
        os.environ[OWNER_ENV] = f"{folder.path}|{folder.token}"
        return folder

    @classmethod
    def join(cls, path: str | Path) -> RunFolder:
        """The folder of this run as one of its other processes (DDP ranks) sees it: no claim,
        no writes."""
        return cls(path, owner=False)

    def _lock(self) -> None:
        state = self.path / STATE
        state.mkdir(exist_ok=True)
        lock = state / LOCK
        self.token = f"{os.getpid()}-{time.time_ns()}"
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        for attempt in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder(lock)
                if attempt == 0 and holder is not None and self._stale(holder):
                    log.warning(
                        "%s: the lock of pid %s (started %s) is stale, its process is gone: taking over",
                        self.path,
                        holder.get("pid"),
                        holder.get("started"),
                    )
                    lock.unlink(missing_ok=True)
                    continue
                who = (
                    f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}"
                    if holder
                    else "another process"
                )
                raise FolderTaken(
                    f"{self.path} is in use by another hwr run ({who}); wait for it, or use another folder"
                ) from None
            except OSError as e:
                raise HwrError(
                    f"cannot claim {self.path} ({e.strerror or e}); choose a writable folder"
                ) from e
            with os.fdopen(fd, "w") as f:
                json.dump({**info, "token": self.token}, f)
            return

    @staticmethod
    def _holder(lock: Path) -> dict[str, Any] | None:
        try:
            return json.loads(lock.read_text())
        except (OSError, ValueError):
            return None  # being written right now: a live claim

    @staticmethod
    def _stale(holder: dict[str, Any]) -> bool:
        """The lock's process is gone (only knowable on the host that wrote it)."""
        pid = holder.get("pid")
        return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)

    def release(self) -> None:
        """End the claim: the lock goes, the manifest stays."""
        if not self.owner:
            return
        lock = self.path / STATE / LOCK
        holder = self._holder(lock)
        if holder is not None and holder.get("token") == self.token:
            lock.unlink(missing_ok=True)
        if os.environ.get(OWNER_ENV, "").endswith(f"|{self.token}"):
            del os.environ[OWNER_ENV]

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ---- the manifest -------------------------------------------------------------------
    def _rel(self, path: Path) -> str:
        return path.absolute().relative_to(self.path).as_posix()

    def _scan(self) -> set[str]:
        return {self._rel(p) for pattern in ADOPTED for p in self.path.glob(pattern) if p.is_file()}

    def _load_manifest(self) -> None:
        path = self.path / STATE / MANIFEST
        try:
            self.files = list(json.loads(path.read_text()).get("files", [])) if path.is_file() else []
        except (OSError, ValueError) as e:
            raise HwrError(
                f"{path} is unreadable ({e}); the folder's run cannot be continued or replaced"
            ) from e

    def _save_manifest(self) -> None:
        text = json.dumps({"files": self.files}, indent=1) + "\n"
        write_text(self.path / STATE / MANIFEST, text, "the run's manifest")

    def _record(self, rel: str, save: bool = True) -> None:
        if rel not in self.files:
            self.files.append(rel)
            if save:
                self._save_manifest()

    def written(self, path: Path) -> None:
        if self.owner:
            self._record(self._rel(path))

    def adopt(self) -> None:
        """Record the files libraries wrote into this run's folders since the claim
        (TensorBoard's event files and hparams.yaml, a profiler's report)."""
        if self.owner:
            new = sorted(self._scan() - self._present - set(self.files))
            if new:
                self.files += new
                self._save_manifest()

    def _remove_previous(self) -> None:
        """overwrite=true: remove the files the previous run's manifest lists, and no other."""
        manifest = self.path / STATE / MANIFEST
        if not manifest.is_file():
            raise HwrError(
                f"{self.path} holds a run from an hwr that kept no manifest of its files, so "
                "overwrite=true cannot tell them from yours; move what you keep, delete the rest, "
                "or use another folder"
            )
        self._load_manifest()
        for rel in self.files:
            path = self.path / rel
            if path.is_file() and rel != f"{STATE}/{LOCK}":
                path.unlink()
        for folder in sorted({(self.path / r).parent for r in self.files}, key=lambda p: -len(p.parts)):
            while folder != self.path and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()  # the run's own folders, once empty
                folder = folder.parent
        manifest.unlink(missing_ok=True)
        self.files = []
