"""Training-speed measurements for scripts/benchmark.py: hwr's real training path against a
minimal hand-written PyTorch loop on the same network, data and batches; the speed switches
(bf16, channels_last, torch.compile, device-resident data) and logging as extra hwr arms;
time to a test accuracy; and start-up time.

Every hwr arm is `hwr.train.train` itself (the Lightning module, trainer, callbacks and
loggers as train.py builds them) with the arm's config overrides; a `StepTimer` callback added
through the config times the training steps after a warm-up, so start-up (and compilation),
validation and testing are not counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from hwr.train import CONFIG_DIR, build_model, train

ROOT = Path(CONFIG_DIR).parent
# Training arms: config overrides on top of the benchmark's own ("plain" is the hand-written loop).
ARMS: dict[str, list[str]] = {
    "plain": [],
    "hwr": [],
    "hwr_quiet": [
        "~logger",
        "callbacks.progress_bar=null",
        "callbacks.lr_monitor=null",  # it refuses to run without a logger
        "+trainer.enable_progress_bar=false",
    ],
    "hwr_bf16": ["trainer.precision=bf16-mixed"],
    "hwr_channels_last": ["model.channels_last=true"],
    "hwr_compile": ["model.compile=true"],
    "hwr_on_device": ["data.on_device=true"],
    "hwr_on_host": ["data.on_device=false"],
}
LABELS = {
    "plain": "plain PyTorch loop (same net, optimiser, batches)",
    "hwr": "hwr train.py path (Lightning, callbacks, logging)",
    "hwr_quiet": "hwr, logger=false, no progress bar",
}
# On a CPU the data already lives where the model is: on_device true/false are the same run.
GPU_ONLY = {"hwr_on_device", "hwr_on_host"}


def arm_label(arm: str) -> str:
    """The table row name of a training arm."""
    return LABELS.get(arm) or "hwr, " + " ".join(ARMS[arm])


class StepTimer(L.Callback):
    """Times training steps `warmup`..end; optionally writes the seconds from process start
    (`$HWR_BENCH_T0`) to the first training step into `startup_file`."""

    last: dict[str, float] = {}  # the most recent measurement, read by the benchmark

    def __init__(self, warmup: int = 5, startup_file: str | None = None):
        self.warmup, self.startup_file = warmup, startup_file
        self.start: float | None = None
        self.images = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.startup_file and trainer.global_step == 0:
            Path(self.startup_file).write_text(str(time.time() - float(os.environ["HWR_BENCH_T0"])))
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.start is not None:
            self.images += len(batch[1])
            StepTimer.last = {"images_per_s": self.images / (time.perf_counter() - self.start)}


def training_config(overrides: list[str], out: Path):
    """train.yaml composed with `overrides`, writing into `out` (no Hydra run needed)."""
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        return compose(
            "train", overrides=[f"paths.output_dir={out}", f"paths.cache_dir={out / 'cache'}", *overrides]
        )


def hwr_images_per_second(overrides: list[str], steps: int, warmup: int) -> float:
    """Images/s of train.py's own training path over `steps` steps after `warmup`."""
    torch._dynamo.reset()  # each compile arm compiles afresh (and stays under dynamo's cache limit)
    with tempfile.TemporaryDirectory() as tmp:
        timer = [
            "+callbacks.step_timer._target_=hwr.benchmark.StepTimer",
            f"+callbacks.step_timer.warmup={warmup}",
            f"+trainer.max_steps={warmup + steps}",
            "test=false",
        ]
        StepTimer.last = {}
        train(training_config([*overrides, *timer], Path(tmp)))
        return StepTimer.last["images_per_s"]


def plain_images_per_second(overrides: list[str], steps: int, warmup: int, device: str) -> float:
    """Images/s of a minimal PyTorch loop: the same network, optimiser, batches and transforms."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = training_config(overrides, Path(tmp))
        L.seed_everything(cfg.seed, verbose=False)
        dm = hydra.utils.instantiate(cfg.data)
        dm.setup("fit")
        net = build_model(cfg.model, dm).net.to(device).train()
        optimizer = hydra.utils.instantiate(cfg.model.optimizer)(params=net.parameters())
        step, images, start = 0, 0, time.perf_counter()
        while step < warmup + steps:
            for x, y in dm.train_dataloader():
                if step == warmup:
                    images, start = 0, time.perf_counter()
                x = dm.transform_batch(x.to(device, non_blocking=True), train=True)
                loss = F.cross_entropy(net(x), y.to(device, non_blocking=True))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step, images = step + 1, images + len(y)
                if step >= warmup + steps:
                    break
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return images / (time.perf_counter() - start)


def startup_seconds(overrides: list[str], data_dir: Path) -> float:
    """Seconds from launching `python train.py` to its first training step."""
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "startup.txt"
        command = [
            sys.executable,
            str(ROOT / "train.py"),
            *overrides,
            "+callbacks.step_timer._target_=hwr.benchmark.StepTimer",
            f"+callbacks.step_timer.startup_file={marker}",
            "+trainer.max_steps=1",
            "test=false",
            f"hydra.run.dir={Path(tmp) / 'run'}",
        ]
        env = {**os.environ, "HWR_DATA_DIR": str(data_dir), "HWR_BENCH_T0": repr(time.time())}
        run = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
        if run.returncode != 0 or not marker.is_file():
            raise RuntimeError(f"train.py failed: {run.stderr[-2000:]}")
        return float(marker.read_text())


def training_arms(
    overrides: list[str], arms: list[str], steps: int, warmup: int, rounds: int, device: str
) -> dict[str, list[float]]:
    """Images/s of each arm in each round, the arms alternated within every round."""
    results: dict[str, list[float]] = {arm: [] for arm in arms}
    for _ in range(rounds):
        for arm in arms:
            if arm == "plain":
                results[arm].append(plain_images_per_second(overrides, steps, warmup, device))
            else:
                results[arm].append(hwr_images_per_second([*overrides, *ARMS[arm]], steps, warmup))
    return results


def rounds_json(results: dict[str, list[float]]) -> str:
    """Every round's images/s, for the table heading."""
    return json.dumps({arm: [round(v) for v in values] for arm, values in results.items()})


@torch.no_grad()
def test_accuracy(model: L.LightningModule, dm) -> float:
    """Top-1 accuracy of `model` on the DataModule's test set (eval mode, restored after)."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for images, labels in dm.test_dataloader():
        x = dm.transform_batch(images.to(model.device, non_blocking=True), train=False)
        correct += int((model(x).argmax(dim=1) == labels.to(model.device)).sum())
        total += len(labels)
    model.train(was_training)
    return correct / total


class TimeToAccuracy(L.Callback):
    """Tests the model every `every` training steps (and when training ends) on a clock of
    training time only: its own test passes and Lightning's validation are left out.

    Stops training once every target accuracy is reached or `max_seconds` of training time
    have passed. The result lands in `TimeToAccuracy.last` (read by the benchmark).
    """

    last: dict[str, Any] = {}

    def __init__(self, every: int = 100, targets: tuple[float, ...] = (0.99, 0.995), max_seconds: float = 0):
        self.every, self.targets, self.max_seconds = every, tuple(targets), max_seconds
        self.t0: float | None = None
        self.paused_at: float | None = None
        self.excluded = 0.0

    def _now(self, device: torch.device) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the clock must not stop before the GPU does
        return time.perf_counter()

    def on_fit_start(self, trainer, pl_module) -> None:
        trainer.datamodule.setup("test")  # loaded (and moved to the device) before the clock starts
        TimeToAccuracy.last = {"points": [], "reached": {}}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.t0 is None:
            self.t0 = self._now(pl_module.device)

    def on_validation_start(self, trainer, pl_module) -> None:
        if self.t0 is not None and not trainer.sanity_checking:
            self.paused_at = self._now(pl_module.device)

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.paused_at is not None:
            self.excluded += self._now(pl_module.device) - self.paused_at
            self.paused_at = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step % self.every == 0:
            self._test(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        points = TimeToAccuracy.last["points"]
        if self.t0 is not None and (not points or points[-1]["step"] != trainer.global_step):
            self._test(trainer, pl_module)

    def _test(self, trainer, pl_module) -> None:
        paused = self._now(pl_module.device)
        seconds = paused - self.t0 - self.excluded
        acc = test_accuracy(pl_module, trainer.datamodule)
        self.excluded += self._now(pl_module.device) - paused
        point = {"step": trainer.global_step, "epoch": trainer.current_epoch, "train_s": seconds, "acc": acc}
        TimeToAccuracy.last["points"].append(point)
        reached = TimeToAccuracy.last["reached"]
        for target in self.targets:
            if acc >= target and target not in reached:
                reached[target] = point
        if len(reached) == len(self.targets) or (self.max_seconds and seconds >= self.max_seconds):
            trainer.should_stop = True


def time_to_accuracy(overrides: list[str], every: int, max_seconds: float, max_steps: int) -> dict[str, Any]:
    """Train MNIST with `overrides` through train.py's path; the TimeToAccuracy record.

    `max_steps` > 0 caps the run (smoke mode); the schedule still spans trainer.max_epochs.
    """
    torch._dynamo.reset()
    with tempfile.TemporaryDirectory() as tmp:
        extra = [
            "+callbacks.time_to_acc._target_=hwr.benchmark.TimeToAccuracy",
            f"+callbacks.time_to_acc.every={every}",
            f"+callbacks.time_to_acc.max_seconds={max_seconds}",
            "callbacks.early_stopping=null",
            "test=false",
        ]
        if max_steps > 0:
            extra.append(f"+trainer.max_steps={max_steps}")
        TimeToAccuracy.last = {}
        train(training_config([*overrides, *extra], Path(tmp)))
        return TimeToAccuracy.last
