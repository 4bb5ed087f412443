"""The LightningModule that trains: loss, optimiser/scheduler from config, validation metrics.

It knows nothing about the dataset beyond `num_classes` and the class names, and it only
trains: the test pass and every later use of a checkpoint go through
`hwr.inference.model.TrainedModel`. The network, optimiser and scheduler arrive as Hydra
config dicts (`_target_`, `_partial_`), so a checkpoint carries everything needed to rebuild
the network (`hwr.inference.checkpoint.network`).

The training step does what a plain PyTorch loop does and one op more: the argmax that
training accuracy needs. Predictions, targets and Lightning's own detached copy of the loss
are kept on the device and reduced once per epoch, so a step never waits for the host and a
GPU step is not paced by Python bookkeeping (docs/benchmarks.md counts the ops). F1 and
top-5 accuracy are torchmetrics metrics of validation (and of the test pass) only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import hydra
import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchmetrics import MaxMetric

from hwr.errors import HwrError
from hwr.evaluation.metrics import build_metrics, log_eval_batch
from hwr.inference.checkpoint import TRAINED_ON
from hwr.training.compiled import CompiledNet, compile_mode


def _plain(cfg: Any) -> Any:
    """DictConfig -> plain dict (checkpoints then load with torch.load(weights_only=True))."""
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


class Classifier(L.LightningModule):
    """Image classifier around any network built from `net`.

    Args:
        net: config of the network (`_target_` + options); `input_shape` and `num_classes`
            are filled in here.
        optimizer: partial optimiser config (`_partial_: true`), called with the parameters.
        scheduler: optional partial LR scheduler config, called with the optimiser. OneCycleLR
            gets `total_steps` from the trainer when it is not set.
        scheduler_interval: "epoch" or "step".
        input_shape, num_classes, class_names: from the DataModule.
        label_smoothing: cross-entropy label smoothing.
        tta_shift: test-time augmentation, recorded for the test pass and every later use of
            the checkpoint (TrainedModel): predictions averaged over the image shifted by
            -tta_shift, 0, +tta_shift pixels each way (9 views); 0 is off.
        channels_last: keep conv weights and 4-D input batches in channels_last memory
            format (faster convolutions on tensor-core GPUs; a no-op for the MLP).
        compile: `torch.compile` the network for training and validation steps: false, true
            (= "default"), "reduce-overhead" (CUDA graphs), "max-autotune" or
            "max-autotune-no-cudagraphs". Compilation happens on the first training batch, in
            warm-up steps whose effect on weights, BatchNorm statistics and random state is
            undone, so it stays off the training clock. Checkpoints keep plain parameter names.
    """

    def __init__(
        self,
        net: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        input_shape: Sequence[int],
        num_classes: int,
        class_names: Sequence[str] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        scheduler_interval: str = "step",
        label_smoothing: float = 0.0,
        tta_shift: int = 0,
        channels_last: bool = False,
        compile: bool | str = False,
    ):
        super().__init__()
        self.compile_mode = compile_mode(compile)
        net, optimizer, scheduler = _plain(net), _plain(optimizer), _plain(scheduler)
        input_shape, class_names = list(input_shape), list(class_names or range(num_classes))
        class_names = [str(c) for c in class_names]
        self.save_hyperparameters(logger=False)
        self.net: nn.Module = hydra.utils.instantiate(
            net, input_shape=input_shape, num_classes=num_classes, _convert_="all"
        )
        if channels_last:
            self.net.to(memory_format=torch.channels_last)  # only 4-D (conv) weights change
        self._compiled: CompiledNet | None = None  # set in on_fit_start when `compile`
        self._train_epoch: dict[str, list[torch.Tensor]] = {"preds": [], "targets": [], "losses": []}
        self.val_metrics = build_metrics(num_classes)
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # saved in checkpoints: a resumed run keeps its best
        # One image for the model summary's forward pass (in eval mode): it fills the FLOPs and
        # in/out size columns, which are zeros and blanks without it.
        self.example_input_array = torch.zeros(1, *input_shape)

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets `_current_fx_name` (a string) around every hook, about 40 times a
        # training step. nn.Module.__setattr__ checks each value against Parameter, Module and
        # buffers first (Parameter's isinstance is slow): for a plain string that only costs time.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    @property
    def class_names(self) -> list[str]:
        return list(self.hparams.class_names)

    @property
    def compile_warmup_s(self) -> float:
        """Seconds spent compiling before training (TrainingClock leaves them out)."""
        return self._compiled.warmup_s if self._compiled is not None else 0.0

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """The batch in the memory format the network was set up for."""
        if self.hparams.get("channels_last") and x.ndim == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self._compiled if self._compiled is not None else self.net
        return net(self._input(x))

    def on_fit_start(self) -> None:
        if self.compile_mode and self._compiled is None:
            self._compiled = CompiledNet(self.net, self.compile_mode)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The DataModule says what it is (class path, split, preprocessing, classes); the
        # Classifier only carries that into every checkpoint it saves.
        describe = getattr(self._trainer.datamodule if self._trainer else None, "describe", None)
        if describe is not None:
            checkpoint[TRAINED_ON] = describe()

    def _mark_step(self) -> None:
        if self._compiled is not None:
            self._compiled.mark_step()

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        compiled = self._compiled
        if compiled is None or compiled.warm:
            return
        if self.trainer.world_size > 1:
            # Under DDP a backward outside the DDP wrapper would upset its gradient
            # bookkeeping: compile in the first steps instead.
            compiled.warm = True
            return
        x, y = batch

        def loss() -> torch.Tensor:
            with self.trainer.precision_plugin.train_step_context():
                return F.cross_entropy(self(x), y)

        compiled.warm_up(loss, x.device)

    def on_train_epoch_start(self) -> None:
        self._train_epoch = {"preds": [], "targets": [], "losses": []}

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        self._mark_step()
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)
        # The only op a plain loop would not run. Accuracy is counted at the epoch's end.
        self._train_epoch["preds"].append(logits.argmax(dim=1))
        self._train_epoch["targets"].append(y)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        # Lightning's detached copy of the loss (divided by accumulate_grad_batches): free to keep.
        if outputs and outputs.get("loss") is not None:
            self._train_epoch["losses"].append(outputs["loss"])

    def on_train_epoch_end(self) -> None:
        """train/loss (mean over images) and train/acc of the epoch, in one reduction."""
        kept = self._train_epoch
        if not kept["losses"]:
            return
        self._train_epoch = {"preds": [], "targets": [], "losses": []}
        sizes = [len(t) for t in kept["targets"][: len(kept["losses"])]]
        weights = torch.tensor(sizes, device=kept["losses"][0].device, dtype=torch.float32)
        loss_sum = (
            torch.stack(kept["losses"]).float() * weights
        ).sum() * self.trainer.accumulate_grad_batches
        correct = (torch.cat(kept["preds"]) == torch.cat(kept["targets"])).sum()
        totals = torch.stack([loss_sum, correct.float(), weights.sum()])
        distributed = self.trainer.world_size > 1
        if distributed:
            totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
        # Summed over processes above, so every rank logs the same value; sync_dist (a mean of
        # equal values) only tells Lightning that it is a global figure.
        self.log("train/loss", totals[0] / totals[2], prog_bar=True, sync_dist=distributed)
        self.log("train/acc", totals[1] / totals[2], sync_dist=distributed)

    def running_train_metrics(self) -> tuple[float, float] | None:
        """This epoch's training loss (mean of its batches) and accuracy so far, this process
        only: what the progress bar shows. One read from the device, so the bar calls it only
        when it redraws (about twice a second), never per step."""
        kept = getattr(self, "_train_epoch", None)
        if not kept or not kept["losses"]:
            return None
        n = len(kept["losses"])
        loss = torch.stack(kept["losses"]).float().mean() * self.trainer.accumulate_grad_batches
        correct = (torch.cat(kept["preds"][:n]) == torch.cat(kept["targets"][:n])).float().mean()
        values = torch.stack([loss, correct]).tolist()
        return values[0], values[1]

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Loss and metrics of one validation batch; the logits go to
        hwr.evaluation.casefold.GroupedMetrics (case-folded, per-source accuracy)."""
        x, y = batch
        self._mark_step()
        logits = self(x)
        log_eval_batch(self, "val", self.val_metrics, logits, y, self.hparams.label_smoothing)
        return logits

    def on_train_start(self) -> None:
        # After a resume the restored OneCycle schedule keeps its old length; training past it
        # would crash mid-epoch, so say so now.
        for config in self.trainer.lr_scheduler_configs:
            total = getattr(config.scheduler, "total_steps", None)
            if total is not None and total < self.trainer.estimated_stepping_batches:
                raise HwrError(
                    f"the checkpoint's OneCycle schedule ends after {total} steps but this run needs "
                    f"{self.trainer.estimated_stepping_batches}; resume with the original "
                    "trainer.max_epochs, or start a new run from the weights"
                )

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        acc = self.val_metrics["acc"]
        if acc.update_called:
            self.val_acc_best.update(acc.compute())
            self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def configure_optimizers(self):
        for key, value in self.hparams.optimizer.items():
            if key in ("lr", "weight_decay", "momentum") and (isinstance(value, bool | str)):
                raise HwrError(
                    f"model.optimizer.{key}={value!r} must be a number (e.g. model.optimizer.{key}=0.001)"
                )
        try:  # torch's own checks (a negative lr, an unknown option) become one line naming the key
            optimizer = hydra.utils.instantiate(self.hparams.optimizer)(params=self.parameters())
        except (TypeError, ValueError) as e:
            raise HwrError(f"model.optimizer: {e}") from e
        if not self.hparams.scheduler:
            return optimizer
        try:
            make_scheduler = hydra.utils.instantiate(self.hparams.scheduler)
            if getattr(make_scheduler, "func", None) is torch.optim.lr_scheduler.OneCycleLR and (
                "total_steps" not in make_scheduler.keywords
            ):
                steps = self.trainer.estimated_stepping_batches
                scheduler = make_scheduler(optimizer=optimizer, total_steps=steps)
            else:
                scheduler = make_scheduler(optimizer=optimizer)
        except (TypeError, ValueError) as e:
            raise HwrError(f"model.scheduler: {e}") from e
        return {
            "optimizer": optimizer,
            # monitor is what ReduceLROnPlateau-style schedulers step on; others ignore it
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": self.hparams.scheduler_interval,
                "monitor": "val/loss",
                # LearningRateMonitor's tag: among the training curves, not an "lr-AdamW" group
                # of its own ahead of them in TensorBoard
                "name": "train/lr",
            },
        }
