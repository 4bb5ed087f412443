"""The Trainer a run trains and tests with, writing only into its run folder.

`build_trainer` adds to the callbacks and loggers of the config what every run has: the
case-folded and per-source metrics, the divergence guard, the test report (into the run's
`report/`), and `RunCheckpointIO`, which writes every checkpoint atomically into the folder
and records it in the folder's manifest.
"""

from __future__ import annotations

import errno
import io
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar as LightningProgressBar
from omegaconf import DictConfig

from hwr.evaluation.casefold import GroupedMetrics
from hwr.evaluation.report import TestReport
from hwr.files import Folder, write_bytes, write_failure
from hwr.runs.progress import ProgressBar
from hwr.training.callbacks import DivergenceGuard


class RunCheckpointIO(TorchCheckpointIO):
    """Checkpoints written the way hwr writes every file (hwr.files): a temporary file in the
    checkpoint's own folder, fsync'ed, then renamed onto its name, so a full disk or a kill
    leaves the previous checkpoint intact and never a truncated one. (Lightning's own writes
    through a temporary file in the system's temp folder, and a move across file systems is a
    copy.) A failed write is one line naming the file.

    `preloaded` holds checkpoints already read (and checked) by the run, by path: Lightning's
    resume then takes the same dict instead of reading the file a second time.
    """

    def __init__(self, folder: Folder | None = None) -> None:
        super().__init__()
        self.folder = folder
        self.preloaded: dict[str, dict[str, Any]] = {}

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        # Serialised in memory first: torch's own file writer reports a full disk as a
        # RuntimeError and keeps the half-written file open; a Python write says OSError(ENOSPC).
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        path = Path(path)
        write_bytes(path, buffer.getbuffer(), f"the checkpoint {path.name}")
        if self.folder is not None:
            self.folder.written(path)

    def load_checkpoint(
        self, path: Any, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        key = str(Path(path).absolute())
        if key in self.preloaded:
            return self.preloaded.pop(key)
        return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)

    def remove_checkpoint(self, path: Any) -> None:
        try:
            super().remove_checkpoint(path)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise write_failure(Path(path), "an old checkpoint (removing it)", e) from e


def instantiate_group(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a config group dict (callbacks/loggers); null entries are skipped."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if c and "_target_" in c]


def build_trainer(cfg: DictConfig, folder: Folder, **overrides: Any) -> L.Trainer:
    """The Trainer of `cfg.trainer` (with `overrides`), the callbacks and loggers of `cfg`, and
    what every run adds (see module docstring). `report=false` leaves the report out."""
    callbacks = [*instantiate_group(cfg.get("callbacks")), GroupedMetrics(), DivergenceGuard()]
    bar_wanted = overrides.get("enable_progress_bar", cfg.trainer.get("enable_progress_bar", True))
    if bar_wanted and not any(isinstance(c, LightningProgressBar) for c in callbacks):
        callbacks.append(ProgressBar())  # eval's test pass: hwr's one-line bar, not Lightning's
    if cfg.get("report", True):
        callbacks.append(TestReport(folder.sub("report")))
    return hydra.utils.instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=instantiate_group(cfg.get("logger")) or False,
        plugins=[RunCheckpointIO(folder)],
        **overrides,
    )


def preload(trainer: L.Trainer, path: str | Path, checkpoint: dict[str, Any]) -> None:
    """Hand the trainer a checkpoint the run has already read, so `fit(ckpt_path=path)` does
    not read it again."""
    checkpoint_io = trainer.strategy.checkpoint_io
    if isinstance(checkpoint_io, RunCheckpointIO):
        checkpoint_io.preloaded[str(Path(path).absolute())] = checkpoint
