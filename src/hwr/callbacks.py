"""Trainer callbacks of hwr's own (the rest are Lightning's, listed in configs/callbacks/)."""

from __future__ import annotations

import logging
import time

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar

# the run's log file only (hwr.utils.run.log_to_run_file): the terminal has the progress bar
run_log = logging.getLogger("hwr.run")


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
    never per step. train.py writes `seconds` to metrics.json as `train_time_s`.
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

    def on_train_end(self, trainer, pl_module) -> None:
        if self.started is not None:
            self.stopped = self._resume(pl_module.device)


class ProgressBar(RichProgressBar):
    """Lightning's RichProgressBar, redrawn every `refresh_rate` training batches.

    The base class reads and formats every logged metric after each training batch. Nothing
    is logged per training step here (train/loss and train/acc are epoch figures), so what
    the bar shows changes only when an epoch or a validation ends, where the base class reads
    it anyway; per batch that work only costs Python time. Epochs are shown from 1.
    """

    def _get_train_description(self, current_epoch: int) -> str:
        # Lightning counts epochs from 0 ("Epoch 0/1" for two epochs); people count from 1.
        description = f"Epoch {current_epoch + 1}"
        if self.trainer.max_epochs is not None and self.trainer.max_epochs > 0:
            description += f"/{self.trainer.max_epochs}"
        return f"{description:{len(self.validation_description)}}"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        done = batch_idx + 1
        if done % max(self.refresh_rate, 1) == 0 or done == self.total_train_batches:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


class EpochLog(L.Callback):
    """One line per finished epoch in the run's log file (`<run>/train.log`), which the
    progress bar's redrawn lines never reach: epoch (from 1), step and the epoch's metrics.

    An epoch is logged when the next one starts or training ends, once all of its metrics
    (train/*, computed after validation, among them) are in. Epochs a resumed run had already
    finished are not logged again.
    """

    def __init__(self) -> None:
        self._logged = 0

    def _log(self, trainer: L.Trainer, epochs_done: int) -> None:
        if epochs_done <= self._logged or trainer.sanity_checking:
            return
        self._logged = epochs_done
        metrics = {k: float(v) for k, v in sorted(trainer.callback_metrics.items()) if v.numel() == 1}
        shown = " ".join(
            f"{k} {100 * v:.2f}%" if "acc" in k or "f1" in k else f"{k} {v:.4g}" for k, v in metrics.items()
        )
        of = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        run_log.info("epoch %d%s (step %d): %s", epochs_done, of, trainer.global_step, shown)

    def on_train_start(self, trainer, pl_module) -> None:
        self._logged = trainer.current_epoch  # epochs a resumed run finished before

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._log(trainer, trainer.current_epoch)

    def on_train_end(self, trainer, pl_module) -> None:
        self._log(trainer, trainer.current_epoch)  # counts the last epoch only if it finished
