"""Time to accuracy for scripts/benchmark.py: test accuracy against the training clock while
a real train.py run trains (its own test passes off the clock), and the speedrun over seeds."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch

from benchmarks.arms import training_config
from hwr.commands.train import train
from hwr.training.callbacks import TrainingClock, synced_time


@torch.no_grad()
def test_accuracy(trainer: L.Trainer, model: L.LightningModule) -> float:
    """Top-1 accuracy of `model` on the DataModule's test set: the plain (uncompiled) network
    in eval mode under the run's precision, the way the test pass runs it."""
    dm = trainer.datamodule
    was_training = model.training
    model.eval()
    correct = total = 0
    for images, labels in dm.test_dataloader():
        x = dm.transform_batch(images.to(model.device, non_blocking=True), train=False)
        with trainer.precision_plugin.forward_context():
            logits = model.net(model._input(x))
        correct += int((logits.argmax(dim=1) == labels.to(model.device)).sum())
        total += len(labels)
    model.train(was_training)
    return correct / total


class TimeToAccuracy(TrainingClock):
    """Tests the model every `every` training steps (and when training ends) on the training
    clock (TrainingClock: no validation, no compilation), its own test passes left out too.

    With `stop`, training stops once every target accuracy is reached or `max_seconds` of
    training time have passed. The record lands in `TimeToAccuracy.last` (read by the benchmark).
    """

    last: dict[str, Any] = {}

    def __init__(
        self,
        every: int = 100,
        targets: tuple[float, ...] = (0.99, 0.995),
        max_seconds: float = 0,
        stop: bool = True,
    ):
        super().__init__()
        self.every, self.targets, self.max_seconds, self.stop = every, tuple(targets), max_seconds, stop

    def on_fit_start(self, trainer, pl_module) -> None:
        trainer.datamodule.setup("test")  # loaded (and moved to the device) before the clock starts
        TimeToAccuracy.last = {"points": [], "reached": {}}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step % self.every == 0:
            self._test(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        points = TimeToAccuracy.last["points"]
        if self.started is not None and (not points or points[-1]["step"] != trainer.global_step):
            self._test(trainer, pl_module)
        super().on_train_end(trainer, pl_module)

    def _test(self, trainer, pl_module) -> None:
        paused = synced_time(pl_module.device)
        seconds = self.elapsed(paused)
        acc = test_accuracy(trainer, pl_module)
        self.excluded += synced_time(pl_module.device) - paused
        point = {"step": trainer.global_step, "epoch": trainer.current_epoch, "train_s": seconds, "acc": acc}
        TimeToAccuracy.last["points"].append(point)
        reached = TimeToAccuracy.last["reached"]
        for target in self.targets:
            if acc >= target and target not in reached:
                reached[target] = point
        done = len(reached) == len(self.targets) or (self.max_seconds and seconds >= self.max_seconds)
        if self.stop and done:
            trainer.should_stop = True


def time_to_accuracy(overrides: list[str], every: int, max_seconds: float, max_steps: int) -> dict[str, Any]:
    """Train MNIST with `overrides` through train.py's path; the TimeToAccuracy record.

    `max_steps` > 0 caps the run (smoke mode); the schedule still spans trainer.max_epochs.
    """
    extra = [
        f"+callbacks.time_to_acc.max_seconds={max_seconds}",
        "test=false",
    ]
    return _tested_run([*overrides, *extra], every, max_steps)[1]


def _tested_run(overrides: list[str], every: int, max_steps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """One train.py run in a temporary folder with a TimeToAccuracy callback testing every
    `every` steps; its metrics.json and the callback's record."""
    torch._dynamo.reset()  # each run compiles afresh, as its own process would
    extra = [
        "+callbacks.time_to_acc._target_=benchmarks.accuracy.TimeToAccuracy",
        f"+callbacks.time_to_acc.every={every}",
    ]
    if max_steps > 0:
        extra.append(f"+trainer.max_steps={max_steps}")
    TimeToAccuracy.last = {}
    with tempfile.TemporaryDirectory() as tmp:
        metrics = train(training_config([*overrides, *extra], Path(tmp)))
    return metrics, TimeToAccuracy.last


def speedrun_seed(overrides: list[str], seed: int, every: int, max_steps: int) -> dict[str, Any]:
    """One train.py run (fit + test) of `overrides` with `seed`, tested every `every` steps off
    the clock: training clock, time to 99.5%, final test accuracy and in-process wall time.

    `max_steps` > 0 caps the run (smoke mode).
    """
    extra = [
        f"seed={seed}",
        "+callbacks.time_to_acc.targets=[0.99,0.995]",
        "+callbacks.time_to_acc.stop=false",
    ]
    metrics, record = _tested_run([*overrides, *extra], every, max_steps)
    reached = record.get("reached", {})
    points = record.get("points") or [{}]
    return {
        "seed": seed,
        # the last test point's clock: all training, without these extra test passes
        "train_time_s": points[-1].get("train_s"),
        "to_995_s": reached[0.995]["train_s"] if 0.995 in reached else None,
        "test_acc": metrics.get("test/acc"),
        "wall_s": metrics.get("wall_time_s"),
    }
