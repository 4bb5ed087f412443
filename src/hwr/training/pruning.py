"""TrialPruning: stop a study's trial early when its pruner says it cannot catch up.

After each validation the monitored metric is reported to the trial this process trains
(hwr.studies.trial); when the study's pruner (median, successive halving, Hyperband: see
hydra/sweeper/pruner) ranks it hopeless, the training ends after this epoch and the run is
recorded `pruned`, with `pruned_at` its last epoch. Outside a study it does nothing, so the
callback can sit in any config. Optuna is imported only when a trial is being trained.
"""

from __future__ import annotations

import logging

import lightning as L
from lightning.pytorch.callbacks import Callback

log = logging.getLogger("hwr")


class TrialPruning(Callback):
    """Report `monitor` after each validation; stop the training when the trial is pruned.

    Args:
        monitor: a validation metric that moves with the study's direction (val/acc for a
            maximised val/acc_best); its per-epoch values are what the pruner compares.
    """

    def __init__(self, monitor: str = "val/acc") -> None:
        self.monitor = monitor
        self.pruned_at: int | None = None  # the last epoch trained, when pruned
        self._said: str | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.pruned_at is not None:
            return
        prune = False
        if trainer.is_global_zero:
            prune = self._report(trainer)
        # every rank stops at the same epoch
        if trainer.strategy.broadcast(prune, src=0):
            self.pruned_at = trainer.current_epoch + 1
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # said here, after the epoch's row of the log (its validation ran before)
        if self.pruned_at == trainer.current_epoch + 1 and trainer.is_global_zero and self._said is not None:
            log.info("%s", self._said)
            self._said = None

    def _report(self, trainer: L.Trainer) -> bool:
        from hwr.studies.trial import active

        trial = active()
        value = trainer.callback_metrics.get(self.monitor)
        if trial is None or value is None:
            return False
        epoch = trainer.current_epoch + 1
        if not trial.report(float(value), epoch):
            return False
        pruner = type(trial.study.pruner).__name__
        self._said = (
            f"trial {trial.number} pruned by {pruner} after epoch {epoch} ({self.monitor} {float(value):.4f})"
        )
        return True
