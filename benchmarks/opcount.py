"""Exact op counts per training step: every aten op dispatched, hwr's path vs the plain loop.

A step's time on a GPU is mostly its ops' launch cost, so the number of ops a framework adds
to a step is what it adds to a GPU step, and, unlike a timing, it is the same on any machine
and in every run. `TorchDispatchMode` sees each op below autograd (forward, backward and
optimiser alike), once per op. Counted over whole iterations: fetching the batch, moving and
transforming it, the step, and every hook in between.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils._python_dispatch import TorchDispatchMode

# The op behind `.item()`, `float(t)` and the like: a read of a value back to the host,
# which on a GPU waits for every queued kernel.
HOST_READ = "aten._local_scalar_dense.default"


class OpCounter(TorchDispatchMode):
    """Counts the aten ops dispatched while active, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[str(func)] += 1
        return func(*args, **(kwargs or {}))


class CountOps(L.Callback):
    """Counts the ops of training steps `warmup` .. `warmup + steps` (whole iterations)."""

    last: Counter[str] = Counter()  # read by count_hwr_ops

    def __init__(self, warmup: int = 5, steps: int = 20):
        self.warmup, self.steps = warmup, steps
        self.mode: OpCounter | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.warmup:
            self.mode = OpCounter()
            self.mode.__enter__()
        elif trainer.global_step == self.warmup + self.steps and self.mode is not None:
            self._stop()

    def on_train_end(self, trainer, pl_module) -> None:
        if self.mode is not None:
            self._stop()

    def _stop(self) -> None:
        self.mode.__exit__(None, None, None)
        CountOps.last = self.mode.counts
        self.mode = None


def count_hwr_ops(overrides: list[str], steps: int, warmup: int) -> Counter[str]:
    """Ops of `steps` training steps of train.py's own path (after `warmup` steps)."""
    from benchmarks.arms import training_config
    from hwr.commands.train import train

    with tempfile.TemporaryDirectory() as tmp:
        extra = [
            "+callbacks.count_ops._target_=benchmarks.opcount.CountOps",
            f"+callbacks.count_ops.warmup={warmup}",
            f"+callbacks.count_ops.steps={steps}",
            f"+trainer.max_steps={warmup + steps + 1}",
            "test=false",
        ]
        CountOps.last = Counter()
        train(training_config([*overrides, *extra], Path(tmp)))
        return CountOps.last


def count_plain_ops(overrides: list[str], steps: int, warmup: int, device: str) -> Counter[str]:
    """Ops of `steps` steps of the plain loop on the same config (after `warmup` steps)."""
    from benchmarks.arms import training_config
    from benchmarks.plain_loop import PlainLoop

    with tempfile.TemporaryDirectory() as tmp:
        loop = PlainLoop(training_config(overrides, Path(tmp)), device, total_steps=warmup + steps + 1)
        counter = OpCounter()
        batches = loop.batches()
        done = 0
        while done < warmup + steps:
            if done == warmup:
                counter.__enter__()
            try:
                images, labels = next(batches)
            except StopIteration:
                batches = loop.batches()
                continue
            loop.step(images, labels)
            done += 1
        counter.__exit__(None, None, None)
        return counter.counts


def compare_ops(plain: Counter[str], hwr: Counter[str], steps: int) -> dict[str, Any]:
    """Per-step totals, ratio, host reads and the ops hwr runs more (or less) often than the loop."""
    difference = Counter(hwr)
    difference.subtract(plain)
    extra = {op: n / steps for op, n in sorted(difference.items(), key=lambda kv: -abs(kv[1])) if n}
    plain_total, hwr_total = sum(plain.values()) / steps, sum(hwr.values()) / steps
    return {
        "plain": plain_total,
        "hwr": hwr_total,
        "ratio": hwr_total / plain_total,
        "plain_host_reads": plain[HOST_READ] / steps,
        "hwr_host_reads": hwr[HOST_READ] / steps,
        "extra": extra,
    }
