"""Hydra + DDP: one output folder per training, whatever the number of processes.

Lightning's DDP starts ranks 1..N-1 by running the script again with `sys.argv`. Under Hydra
that breaks in two ways (lightning-hydra-template #393, Lightning #11300): in a multirun the
children receive `-m` and the sweep lists, so each starts its own sweep; and each child
resolves `hydra.run.dir` anew, so a new timestamp means a new folder. `child_command` gives
a child exactly this job's overrides, in single-run mode, in this job's folder.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd

log = logging.getLogger("hwr")


def child_command(local_rank: int) -> tuple[Sequence[str], str]:
    """(command line, working directory) of DDP rank `local_rank` for the running Hydra job."""
    import __main__

    hydra_cfg = HydraConfig.get()
    if __main__.__spec__ is None:
        command = [sys.executable, os.path.join(get_original_cwd(), sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    command += list(hydra_cfg.overrides.task)  # this job's values, not the sweep's lists
    command += [
        f"hydra.run.dir={hydra_cfg.runtime.output_dir}",
        "hydra.output_subdir=null",  # rank 0 saved the config already
        f"hydra.job.name={hydra_cfg.job.name}_rank{local_rank}",
        "hydra.mode=RUN",
    ]
    return command, get_original_cwd()


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


@contextmanager
def job_scope() -> Iterator[None]:
    """Leave no DDP state behind a job: the next job of a multirun starts its own processes.

    Lightning records the rank and port of a DDP run in environment variables; left in place,
    the next job would take LOCAL_RANK as a sign that its processes were started externally
    and wait forever for ranks that never come.
    """
    saved = dict(os.environ)
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)
