"""Training callbacks of hwr's own: the training clock and the divergence guard (the
terminal's progress bar and epoch lines are hwr.runs.console's; the rest are Lightning's,
listed in configs/callbacks/)."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from hwr.errors import Diverged


def synced_time(device: torch.device) -> float:
    """perf_counter, after the device has finished what was queued (a GPU runs ahead of Python)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class TrainingClock(L.Callback):
    """Seconds spent training: from the first training batch to the end of fitting, without
    validation (with the checkpointing that follows it) and without the compile warm-up
    (`Classifier.compile_warmup_s`).

    Start-up, data loading and the sanity check come before the clock starts. The device is
    synchronised only where the clock starts, pauses and stops (a few times per epoch),
    never per step. train.py writes `seconds` to metrics.json as `train_time_s`; TensorBoard
    gets it as the curve `train/time_s` (training seconds so far, at each validation and at
    the end), the series the HPARAMS table reads `train_time_s` from.
    """

    def __init__(self) -> None:
        self.started: float | None = None
        self.stopped: float | None = None
        self.paused_at: float | None = None
        self.excluded = 0.0
        self._module: L.LightningModule | None = None

    def elapsed(self, now: float | None = None) -> float | None:
        """Training seconds up to `now` (perf_counter; default: the end, or this moment)."""
        if self.started is None:
            return None
        if now is None:
            now = self.stopped if self.stopped is not None else time.perf_counter()
        # The module compiles on its first batch, after this clock has started.
        warmup = float(getattr(self._module, "compile_warmup_s", 0.0))
        return now - self.started - self.excluded - warmup

    @property
    def seconds(self) -> float | None:
        return self.elapsed()

    def _resume(self, device: torch.device) -> float:
        now = synced_time(device)
        if self.paused_at is not None:
            self.excluded += now - self.paused_at
            self.paused_at = None
        return now

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.started is None:
            self._module = pl_module
            self.started = synced_time(pl_module.device)
        elif self.paused_at is not None:
            self._resume(pl_module.device)

    def on_validation_start(self, trainer, pl_module) -> None:
        # Paused until the next training batch: validation, checkpoints, early stopping.
        if self.started is not None and self.stopped is None and not trainer.sanity_checking:
            self.paused_at = synced_time(pl_module.device)
            self._log(trainer, self.elapsed(self.paused_at))

    def on_train_end(self, trainer, pl_module) -> None:
        if self.started is not None:
            self.stopped = self._resume(pl_module.device)
            self._log(trainer, self.seconds)

    @staticmethod
    def _log(trainer: L.Trainer, seconds: float | None) -> None:
        # Straight to TensorBoard, not through LightningModule.log: the number is a fact of the
        # run (metrics.json's train_time_s), not a metric for the progress bar or checkpoints.
        if seconds is None or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_scalar("train/time_s", seconds, trainer.global_step)


class DivergenceGuard(L.Callback):
    """Stop the run at the step whose training loss stopped being a finite number.

    A NaN or infinite loss (a learning rate far too high, a broken input) turns the weights
    into NaN at once: training on would only cost time and report chance accuracy as a
    result. The step's loss stays on the device; the guard reads the losses kept since its
    last look every `every` steps and before each validation, one host read each time, so a
    training step never waits for it. Checkpoints are written after validation, so the last
    one was saved from finite weights and is kept. Raises `hwr.errors.Diverged` naming the
    first bad step.
    """

    def __init__(self, every: int = 50) -> None:
        self.every = every
        self._losses: list[torch.Tensor] = []
        self._first_step = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        if not self._losses:
            self._first_step = trainer.global_step  # the step this loss was taken at, from 1
        self._losses.append(loss)  # Lightning's detached copy: keeping it costs no op
        if len(self._losses) >= self.every:
            self.check(pl_module)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.check(pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(pl_module)

    def check(self, pl_module: L.LightningModule) -> None:
        """Raise Diverged when a kept loss is not finite (one host read)."""
        if not self._losses:
            return
        losses, first = torch.stack(self._losses).float(), self._first_step
        self._losses = []
        finite = torch.isfinite(losses)
        if bool(finite.all()):
            return
        bad = int((~finite).nonzero()[0])
        lr = next(iter(g["lr"] for opt in pl_module.trainer.optimizers for g in opt.param_groups), None)
        at_lr = f" at learning rate {lr:.3g}" if isinstance(lr, float) else ""
        raise Diverged(
            f"training diverged at step {first + bad}: the loss is {float(losses[bad])}{at_lr}; lower "
            "the learning rate (e.g. model.optimizer.lr=0.001) and run again; checkpoints saved before it "
            "are kept"
        )


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, with `last.ckpt` written after every validation.

    Lightning writes `save_last` only when a top-k checkpoint was saved in the same step, so an
    epoch that did not beat the best left `last.ckpt` at the best epoch: a killed run resumed
    from there and lost the epochs after it. Here the last checkpoint always follows training.
    """

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if (
            self.save_last
            and not self._should_skip_saving_checkpoint(trainer)
            and not self._should_save_on_train_epoch_end(trainer)
            and self._last_global_step_saved != trainer.global_step
        ):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
