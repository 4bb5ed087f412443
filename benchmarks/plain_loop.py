"""The hand-written PyTorch loop that hwr's training path is measured against.

Built from the same composed train.yaml as a train.py run, it does what that run's training
does and nothing else: the same network and initialisation, optimiser, LR schedule, loss
(label smoothing), precision (bf16 autocast), memory format, torch.compile mode, data,
augmentation and batches; with the data resident on a GPU (`data.on_device`), the shuffle
is one randperm there, as in hwr. No metrics, logging, checkpoints or callbacks: the floor a
framework can approach. scripts/benchmark.py times it and counts its ops beside hwr's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import hydra
import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from hwr.data.loaders import parse_on_device
from hwr.training.compiled import CUDA_GRAPH_MODES, compile_mode


class PlainLoop:
    """One training run of `cfg` as a plain loop on `device` ("cpu" or "cuda").

    `total_steps` sizes a OneCycle schedule (hwr takes it from the trainer).
    """

    def __init__(self, cfg: DictConfig, device: str, total_steps: int):
        from hwr.commands.train import build_model  # the same constructor and initialisation as train.py

        L.seed_everything(cfg.seed, verbose=False)
        self.device = torch.device(device)
        self.dm = hydra.utils.instantiate(cfg.data)
        self.dm.setup("fit")
        model = build_model(cfg.model, self.dm)
        hp = model.hparams
        self.net = model.net.to(self.device).train()
        self.label_smoothing = float(hp.label_smoothing)
        self.channels_last = bool(hp.get("channels_last"))
        self.mode = compile_mode(hp.get("compile"))
        self.forward = torch.compile(self.net, mode=self.mode, dynamic=False) if self.mode else self.net
        self.optimizer = hydra.utils.instantiate(cfg.model.optimizer)(params=self.net.parameters())
        self.scheduler = None
        if cfg.model.get("scheduler"):
            make = hydra.utils.instantiate(cfg.model.scheduler)
            if getattr(make, "func", None) is torch.optim.lr_scheduler.OneCycleLR:
                make.keywords.setdefault("total_steps", total_steps)
            self.scheduler = make(optimizer=self.optimizer)
        self.step_scheduler_every_batch = cfg.model.get("scheduler_interval", "epoch") == "step"
        precision = str(cfg.trainer.get("precision", "32-true"))
        self.autocast = (
            (lambda: torch.autocast(self.device.type, dtype=torch.bfloat16))
            if precision.startswith("bf16")
            else contextlib.nullcontext
        )
        on_device = parse_on_device(cfg.data.get("on_device", "auto"))
        self.resident = on_device is True or (on_device == "auto" and self.device.type == "cuda")
        if self.resident:
            train = self.dm.train_set.to(self.device)
            self.images, self.labels = train.images, train.labels

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of raw (uint8) training batches on the device."""
        if self.resident:
            b = self.dm.batch_size
            order = torch.randperm(len(self.labels), device=self.device)
            for i in range(len(order) // b):
                index = order[i * b : (i + 1) * b]
                yield self.images[index], self.labels[index]
            return
        for x, y in self.dm.train_dataloader():
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Augment + normalise, forward, loss, backward, optimiser and schedule: one step."""
        x = self.dm.transform_batch(images, train=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.mode in CUDA_GRAPH_MODES:
            torch.compiler.cudagraph_mark_step_begin()
        with self.autocast():
            loss = F.cross_entropy(self.forward(x), labels, label_smoothing=self.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None and self.step_scheduler_every_batch:
            self.scheduler.step()
        return loss

    def steps(self, count: int) -> Iterator[int]:
        """Run `count` steps over as many epochs as needed, yielding each step's images."""
        done = 0
        while done < count:
            for images, labels in self.batches():
                self.step(images, labels)
                done += 1
                yield len(labels)
                if done >= count:
                    return
            if self.scheduler is not None and not self.step_scheduler_every_batch:
                self.scheduler.step()
