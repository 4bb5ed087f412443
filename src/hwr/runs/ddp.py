"""Hydra + DDP: one run folder per training, whatever the number of processes.

Lightning's DDP starts ranks 1..N-1 by running the script again with `sys.argv`. Under Hydra
that breaks in two ways (lightning-hydra-template #393, Lightning #11300): in a multirun the
children receive `-m` and the sweep lists, so each starts its own sweep; and each child
resolves `hydra.run.dir` anew, so a new timestamp means a new folder. `child_command` starts
a child as `python -m hwr <command>` with exactly this job's overrides, in single-run mode,
in this job's folder, which the child joins (hwr.runs.folder) instead of claiming.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig


@dataclass
class Job:
    """The job a DDP child must repeat: its command, the overrides that make its config, its folder."""

    command: str
    overrides: list[str]
    folder: Path


_job: Job | None = None  # set for the length of a command's job (`job_scope`)


def child_command(local_rank: int) -> tuple[Sequence[str], str]:
    """(command line, working directory) of DDP rank `local_rank` for the running job."""
    if _job is None:
        raise RuntimeError("a DDP child was asked for outside an hwr command")
    command = [sys.executable, "-m", "hwr", _job.command, *_job.overrides]
    name = HydraConfig.get().job.name if HydraConfig.initialized() else _job.command
    command += [
        f"hydra.run.dir={quoted(str(_job.folder))}",
        f"hydra.job.name={name}_rank{local_rank}",
        "hydra.mode=RUN",
    ]
    return command, os.getcwd()


def quoted(value: str) -> str:
    """A value as a Hydra override reads it back unchanged: quoted, with quotes and
    backslashes escaped, when it holds what the override grammar would parse (, = [ ] { } ...)."""
    if value and all(c.isalnum() or c in "/._-:~+@%" for c in value):
        return value
    # in a quoted value a backslash is literal unless it precedes a quote (or ends the value)
    escaped = re.sub(r"(\\*)'", lambda m: m[1] * 2 + "\\'", value)
    escaped = re.sub(r"(\\+)$", lambda m: m[1] * 2, escaped)
    return f"'{escaped}'"


SUPPORTED_LIGHTNING = ">=2.4,<2.7"  # as pinned in pyproject.toml


def install() -> None:
    """Make Lightning's DDP launcher start its child processes with `child_command`.

    The hook is private to Lightning (`_hydra_subprocess_cmd`, what its launcher calls for a
    Hydra script). Without it a DDP run would start one run folder or one sweep per process,
    so a Lightning that lacks it is refused here rather than warned about.
    """
    import lightning
    from lightning.pytorch.strategies.launchers import subprocess_script

    if not hasattr(subprocess_script, "_hydra_subprocess_cmd"):
        raise RuntimeError(
            f"lightning {lightning.__version__} has no subprocess_script._hydra_subprocess_cmd, which hwr "
            f"replaces for DDP under Hydra; pip install 'lightning{SUPPORTED_LIGHTNING}'"
        )
    subprocess_script._hydra_subprocess_cmd = child_command


def is_child() -> bool:
    """Whether this process is one of a run's other ranks (DDP, or srun's tasks)."""
    from lightning.pytorch.utilities import rank_zero_only

    return os.environ.get("LOCAL_RANK", "0") != "0" or rank_zero_only.rank != 0


@contextmanager
def job_scope(command: str, overrides: list[str], folder: Path) -> Iterator[None]:
    """Run one job: DDP children repeat it; no DDP state is left behind for the next job.

    Lightning records the rank and port of a DDP run in environment variables; left in place,
    the next job of a multirun would take LOCAL_RANK as a sign that its processes were started
    externally and wait forever for ranks that never come.
    """
    global _job
    saved = dict(os.environ)
    _job = Job(command, list(overrides), folder)
    try:
        yield
    finally:
        _job = None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)
