"""`python eval.py ckpt_path=... [data=...] [data.test_on=all] [tta_shift=1]`: test trained checkpoints
on any test split, or on a whole dataset.

`ckpt_path` may be one checkpoint, a list `[a.ckpt,b.ckpt]` or a glob pattern: several
checkpoints are tested as one ensemble (their probabilities averaged). Without `data=`,
the data the checkpoint was trained on is used, with its split and preprocessing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from hwr.classifier import build_metrics, log_eval_batch
from hwr.cli import hydra_main
from hwr.data.base import CharDataModule
from hwr.data.sets import LabelledImages
from hwr.errors import HwrError
from hwr.inference import TrainedModel
from hwr.utils.config import flat_hparams
from hwr.utils.resume import claim_run_dir
from hwr.utils.run import build_trainer, finish_run, interruptible, scalar_metrics, start_run
from hwr.utils.tensorboard import log_hparams

log = logging.getLogger("hwr")


class Evaluator(L.LightningModule):
    """The test pass of a `TrainedModel`: the same metrics and report as train.py's test.

    `test_step` returns the model's log-probabilities (test-time shifts and ensemble folded
    in) for hwr.report.TestReport; the loss uses the checkpoint's label smoothing, so
    test/loss matches the training run's.
    """

    def __init__(self, trained: TrainedModel):
        super().__init__()
        self.trained = trained
        self.net = trained.net  # a submodule, so the Trainer moves it to its device
        self.metrics = build_metrics(len(trained.classes))

    @property
    def class_names(self) -> list[str]:
        return self.trained.class_names

    def test_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        log_probs = self.trained.log_probs(x)
        smoothing = float(self.trained.hparams.get("label_smoothing") or 0.0)
        log_eval_batch(self, "test", self.metrics, log_probs, y, smoothing)
        return log_probs


def eval_datamodule(cfg: DictConfig, trained: TrainedModel) -> CharDataModule:
    """The DataModule to test on: the training one (same class, split and normalisation) when
    `cfg.data` is null, else `cfg.data` normalised as in training and, when it is the training
    class, with the training split (so no training image is tested)."""
    trained_on, prep = trained.trained_on, trained.preprocessing
    if cfg.get("data") is None:
        return trained_on.datamodule(cfg.paths.data_dir, cfg.paths.get("cache_dir"))
    try:
        same_class = hydra.utils.get_class(cfg.data._target_) is trained_on.datamodule_class()
    except HwrError:  # the training class is not importable here: another dataset, then
        same_class = False
    same = {}
    if same_class:
        same = dict(trained_on.split)
        changed = {k: v for k, v in same.items() if k in cfg.data and cfg.data[k] != v}
        if changed:
            log.info("testing on the checkpoint's own split: %s", changed)
        if cfg.data.get("test_on") == "all":
            log.warning(
                "data.test_on=all tests on the data the model was trained on, its training images too"
            )
    return hydra.utils.instantiate(cfg.data, **same, mean=prep.mean, std=prep.std)


def align_classes(dm: CharDataModule, model_classes: list[str]) -> None:
    """Number `dm`'s test labels as the model numbers its classes, matched by name: a model
    trained on English Hnd tests on EMNIST ByClass (the same 62 characters), a 62-class model
    on EMNIST Digits (10 of its classes). Loads the test set."""
    if dm.class_names == model_classes:
        return
    unknown = [c for c in dm.class_names if c not in model_classes]
    if unknown:
        shown = ", ".join(unknown[:8]) + (" ..." if len(unknown) > 8 else "")
        raise HwrError(
            f"data={dm.name} has {len(unknown)} classes the checkpoint does not predict ({shown}); "
            f"it knows {len(model_classes)}: evaluate on a dataset/split with classes it was trained on"
        )
    log.info(
        "data=%s: its %d classes matched by name to the model's %d",
        dm.name,
        dm.num_classes,
        len(model_classes),
    )
    index = torch.tensor([model_classes.index(c) for c in dm.class_names])
    dm.setup("test")
    test = dm.test_set
    dm.test_set = LabelledImages(test.images, index.to(test.labels.device)[test.labels], test.groups)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test `cfg.ckpt_path` on `cfg.data`'s test split; write metrics.json; return the metrics."""
    started = time.time()
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise HwrError("eval.py needs ckpt_path=<run dir>/checkpoints/best.ckpt")
    start_run(cfg)
    trained = TrainedModel.load(cfg.ckpt_path, device="cpu", tta_shift=cfg.get("tta_shift"))
    dm = eval_datamodule(cfg, trained)
    align_classes(dm, trained.class_names)
    if list(trained.input_shape) != list(dm.input_shape):
        raise HwrError(
            f"the checkpoint expects images {list(trained.input_shape)} but "
            f"data={dm.name} gives {list(dm.input_shape)}; set data.image_size to match"
        )

    trainer = build_trainer(cfg)
    hparams = (
        flat_hparams(cfg, groups=("data",)) if cfg.get("data") is not None else {"data/dataset": dm.name}
    )
    hparams.update(
        {
            "model/net/class": type(trained.net).__name__,
            "ckpt_path": ",".join(trained.sources),
            "tta_shift": trained.tta_shift,
        }
    )
    module = Evaluator(trained)
    log_hparams(trainer.loggers, hparams, dm.name, type(module.net).__name__)
    members = list(trained.sources)
    test_ckpt = members if len(members) > 1 else members[0]

    def record_interrupted() -> None:
        metrics = scalar_metrics(trainer.callback_metrics)
        finish_run(cfg, dm.name, module, trainer, metrics, started, "interrupted", test_ckpt=test_ckpt)

    with interruptible(record_interrupted):
        results = trainer.test(module, datamodule=dm, verbose=False)  # hwr prints them
    metrics: dict[str, Any] = scalar_metrics(results[0] if results else {})
    return finish_run(cfg, dm.name, module, trainer, metrics, started, test_ckpt=test_ckpt)


# the command line; returns the config's `objective` (test/acc): eval.py -m sweeps checkpoints or data
main = hydra_main("eval", argv=claim_run_dir)(evaluate)
