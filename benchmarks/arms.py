"""Step-time arms for scripts/benchmark.py: hwr's real training path against the hand-written
loop of `benchmarks.plain_loop` on the same config, the speed switches (fused optimiser, bf16,
channels_last, torch.compile modes, device-resident data, trainer=gpu_fast) and logging as
extra arms; start-up time; the wall time of a whole command.

Every hwr arm is `hwr.commands.train.train` itself (the Lightning module, trainer, callbacks and
loggers as train.py builds them) with the arm's config overrides; a `StepTimer` callback added
through the config times the training steps after a warm-up, so start-up (and compilation),
validation and testing are not counted. A `plain_<switch>` arm is the plain loop with the
overrides of `hwr_<switch>` (e.g. plain_compile vs hwr_compile).
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

import lightning as L
import torch

from benchmarks.plain_loop import PlainLoop
from hwr.commands.train import train
from hwr.config import compose_config
from hwr.training.callbacks import synced_time

ROOT = Path(__file__).resolve().parents[1]  # the checkout: train.py
# hwr arms: config overrides on top of the benchmark's own.
HWR_ARMS: dict[str, list[str]] = {
    "hwr": [],
    "hwr_quiet": [
        "~logger",
        "callbacks.progress_bar=null",
        "callbacks.lr_monitor=null",  # it refuses to run without a logger
        "+trainer.enable_progress_bar=false",
    ],
    "hwr_fused": ["model.optimizer.fused=true"],
    "hwr_bf16": ["trainer.precision=bf16-mixed"],
    "hwr_channels_last": ["model.channels_last=true"],
    "hwr_compile": ["model.compile=default"],
    "hwr_compile_ro": ["model.compile=reduce-overhead"],
    "hwr_on_device": ["data.on_device=true"],
    "hwr_on_host": ["data.on_device=false"],
    "hwr_gpu_fast": ["trainer=gpu_fast"],
    "hwr_gpu_fast_ro": ["trainer=gpu_fast", "model.compile=reduce-overhead"],
}
# plain arms: the hand-written loop with the overrides of the hwr arm of the same suffix.
PLAIN_ARMS = ["plain", *(f"plain{name[3:]}" for name in HWR_ARMS if name not in ("hwr", "hwr_quiet"))]
ARMS = [*HWR_ARMS, *PLAIN_ARMS]
LABELS = {
    "plain": "plain PyTorch loop (same net, optimiser, schedule, loss, batches)",
    "hwr": "hwr train.py path (Lightning, callbacks, logging)",
    "hwr_quiet": "hwr, logger=false, no progress bar",
}
# Arms that mean nothing on a CPU: on_device=false is what a CPU trainer does anyway (on a CPU,
# hwr_on_device is the difference between ResidentBatches and a DataLoader), and gpu_fast
# selects accelerator=gpu. The reason is printed beside each skipped arm.
GPU_ONLY = {
    "hwr_on_host": "on a CPU it is the plain hwr arm (the data already lives where the model is)",
    "plain_on_host": "on a CPU it is the plain arm",
    "hwr_gpu_fast": "trainer=gpu_fast selects accelerator=gpu",
    "hwr_gpu_fast_ro": "trainer=gpu_fast selects accelerator=gpu",
    "plain_gpu_fast": "trainer=gpu_fast selects accelerator=gpu",
    "plain_gpu_fast_ro": "trainer=gpu_fast selects accelerator=gpu",
}


def arm_overrides(arm: str) -> list[str]:
    """The config overrides of a training arm (hwr or plain)."""
    if arm.startswith("plain"):
        return [] if arm == "plain" else HWR_ARMS["hwr" + arm[len("plain") :]]
    return HWR_ARMS[arm]


def arm_label(arm: str) -> str:
    """The table row name of a training arm."""
    if arm in LABELS:
        return LABELS[arm]
    kind = "plain loop" if arm.startswith("plain") else "hwr"
    return f"{kind}, " + " ".join(arm_overrides(arm))


class StepTimer(L.Callback):
    """Times training steps `warmup` .. `warmup + steps` (synchronising the device at both
    ends, never in between). With `startup_file`, also writes there (JSON) the seconds from
    process start (`$HWR_BENCH_T0`) to: this callback's creation (imports, config, data and
    model objects), the data loaded (`setup`), training starting (after the sanity check) and
    the first training step."""

    last: dict[str, float] = {}  # the most recent measurement, read by the benchmark

    def __init__(self, warmup: int = 5, steps: int = 0, startup_file: str | None = None):
        self.warmup, self.steps, self.startup_file = warmup, steps, startup_file
        self.start: float | None = None
        self.images = 0
        self.marks: dict[str, float] = {}
        self._mark("trainer_built")

    def _mark(self, name: str) -> None:
        if self.startup_file and name not in self.marks:
            self.marks[name] = time.time() - float(os.environ["HWR_BENCH_T0"])
            Path(self.startup_file).write_text(json.dumps(self.marks))

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._mark("data_loaded")

    def on_train_start(self, trainer, pl_module) -> None:
        self._mark("train_start")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == 0:
            self._mark("first_step")
        if trainer.global_step == self.warmup:
            self.start = synced_time(pl_module.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.start is None:
            return
        self.images += len(batch[1])
        if trainer.global_step == self.warmup + self.steps:
            StepTimer.last = {"images_per_s": self.images / (synced_time(pl_module.device) - self.start)}


def training_config(overrides: list[str], out: Path):
    """train.yaml composed with `overrides`, writing into `out` (no Hydra run needed)."""
    paths = [f"paths.output_dir={out}", f"paths.cache_dir={out / 'cache'}"]
    return compose_config("train", [*paths, *overrides])


def hwr_images_per_second(overrides: list[str], steps: int, warmup: int) -> float:
    """Images/s of train.py's own training path over `steps` steps after `warmup`."""
    torch._dynamo.reset()  # each compile arm compiles afresh (and stays under dynamo's cache limit)
    with tempfile.TemporaryDirectory() as tmp:
        timer = [
            "+callbacks.step_timer._target_=benchmarks.arms.StepTimer",
            f"+callbacks.step_timer.warmup={warmup}",
            f"+callbacks.step_timer.steps={steps}",
            f"+trainer.max_steps={warmup + steps}",
            "test=false",
        ]
        StepTimer.last = {}
        train(training_config([*overrides, *timer], Path(tmp)))
        return StepTimer.last["images_per_s"]


def plain_images_per_second(overrides: list[str], steps: int, warmup: int, device: str) -> float:
    """Images/s of the plain loop (benchmarks.plain_loop) on the same config, `steps` after `warmup`."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    torch._dynamo.reset()
    with tempfile.TemporaryDirectory() as tmp:
        loop = PlainLoop(training_config(overrides, Path(tmp)), device, total_steps=warmup + steps + 1)
        images, start = 0, time.perf_counter()
        for i, n in enumerate(loop.steps(warmup + steps)):
            if i + 1 == warmup:
                sync()
                images, start = 0, time.perf_counter()
            else:
                images += n
        sync()
        return images / (time.perf_counter() - start)


def startup_seconds(overrides: list[str], data_dir: Path) -> dict[str, float]:
    """Seconds from launching `python train.py` to each start-up mark of StepTimer
    (`first_step`: its first training step)."""
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "startup.txt"
        command = [
            sys.executable,
            str(ROOT / "train.py"),
            *overrides,
            "+callbacks.step_timer._target_=benchmarks.arms.StepTimer",
            f"+callbacks.step_timer.startup_file={marker}",
            "+trainer.max_steps=1",
            "test=false",
            f"hydra.run.dir={Path(tmp) / 'run'}",
        ]
        env = {**os.environ, "HWR_DATA_DIR": str(data_dir), "HWR_BENCH_T0": repr(time.time())}
        run = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
        if run.returncode != 0 or not marker.is_file():
            raise RuntimeError(f"train.py failed: {run.stderr[-2000:]}")
        return json.loads(marker.read_text())


def training_arms(
    overrides: list[str], arms: list[str], steps: int, warmup: int, rounds: int, device: str
) -> dict[str, list[float]]:
    """Images/s of each arm in each round, the arms alternated within every round."""
    results: dict[str, list[float]] = {arm: [] for arm in arms}
    for _ in range(rounds):
        for arm in arms:
            arm_config = [*overrides, *arm_overrides(arm)]
            if arm.startswith("plain"):
                results[arm].append(plain_images_per_second(arm_config, steps, warmup, device))
            else:
                results[arm].append(hwr_images_per_second(arm_config, steps, warmup))
    return results


def rounds_json(results: dict[str, list[float]]) -> str:
    """Every round's images/s, for the table heading."""
    return json.dumps({arm: [round(v) for v in values] for arm, values in results.items()})


def command_seconds(args: list[str], data_dir: Path) -> tuple[float, dict[str, Any]]:
    """Wall seconds of the whole `python train.py <args>` command, and its metrics.json."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        command = [sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={run_dir}"]
        env = {**os.environ, "HWR_DATA_DIR": str(data_dir)}
        started = time.perf_counter()
        run = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if run.returncode != 0:
            raise RuntimeError(f"train.py failed: {run.stderr[-2000:]}")
        return seconds, json.loads((run_dir / "metrics.json").read_text())
