"""torch.compile for the Classifier's network: the modes, the CUDA graph step marks, and the
warm-up that keeps compilation off the training clock."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from hwr.errors import HwrError

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# Modes that capture CUDA graphs: each step must say where it begins.
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
WARMUP_STEPS = 3  # compile, then (CUDA graph modes) warm up, record and replay once


def compile_mode(value: bool | str | None) -> str | None:
    """`model.compile` as a torch.compile mode: None when off (false/null), "default" for true."""
    text = str(value).strip().lower()
    if value is None or value is False or text in ("false", "none", "null", "off"):
        return None
    if value is True or text == "true":
        return "default"
    if text in COMPILE_MODES:
        return text
    raise HwrError(
        f"model.compile={value!r} is not allowed; use false, true or one of {', '.join(COMPILE_MODES)}"
    )


class CompiledNet:
    """`torch.compile(net, mode)` with what a training loop needs around it.

    A plain object, not an nn.Module: the compiled wrapper shares the network's parameters,
    and registering it would add `_orig_mod.*` duplicates to every checkpoint's state dict.
    `dynamic=False`: one graph per batch shape (training, evaluation, the last evaluation
    batch), which CUDA graphs need anyway.
    """

    def __init__(self, net: nn.Module, mode: str):
        self.net, self.mode = net, mode
        self.fn = torch.compile(net, mode=mode, dynamic=False)
        self.warm = False
        self.warmup_s = 0.0  # seconds spent compiling and warming up (not training)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def mark_step(self) -> None:
        """Tell CUDA graph trees that a step begins (its outputs may reuse the last one's memory)."""
        if self.mode in CUDA_GRAPH_MODES:
            torch.compiler.cudagraph_mark_step_begin()

    def warm_up(self, loss: Callable[[], torch.Tensor], device: torch.device) -> None:
        """Compile (and record CUDA graphs) before training starts, off the training clock.

        `loss()` runs a forward pass through this object on a real batch; it and its backward
        run WARMUP_STEPS times. Weights, BatchNorm statistics, gradients and the random state
        are then put back, so the run trains exactly as if compilation had been free.
        """
        self.warm = True
        started = time.perf_counter()
        saved = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for _ in range(WARMUP_STEPS):
                self.mark_step()
                loss().backward()
        self.net.zero_grad(set_to_none=True)
        with torch.no_grad():
            for key, value in self.net.state_dict().items():
                value.copy_(saved[key])  # in place: CUDA graphs keep pointing at the same memory
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self.warmup_s += time.perf_counter() - started
