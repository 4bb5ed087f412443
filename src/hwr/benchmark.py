"""Training-speed measurements for scripts/benchmark.py: hwr's real training path against a
minimal hand-written PyTorch loop on the same network, data and batches, and start-up time.

The hwr arm is `hwr.train.train` itself (the Lightning module, trainer, callbacks and loggers
as train.py builds them, logging on); a `StepTimer` callback added through the config times
the training steps after a warm-up, so start-up, validation and testing are not counted.
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


def training_arms(overrides: list[str], steps: int, warmup: int, rounds: int, device: str) -> dict[str, Any]:
    """Alternate the plain loop and hwr for `rounds`; best images/s of each and their ratio."""
    plain, hwr = [], []
    for _ in range(rounds):
        plain.append(plain_images_per_second(overrides, steps, warmup, device))
        hwr.append(hwr_images_per_second(overrides, steps, warmup))
    result = {"plain_images_per_s": max(plain), "hwr_images_per_s": max(hwr)}
    result["hwr_step_time_ratio"] = result["plain_images_per_s"] / result["hwr_images_per_s"]
    result["rounds"] = json.dumps({"plain": [round(v) for v in plain], "hwr": [round(v) for v in hwr]})
    return result
