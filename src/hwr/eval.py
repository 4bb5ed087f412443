"""`python eval.py ckpt_path=... [data=...]`: test a trained checkpoint on any test split."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from hwr.classifier import Classifier
from hwr.data.base import CharDataModule
from hwr.errors import HwrError
from hwr.train import CONFIG_DIR
from hwr.utils.config import flat_hparams
from hwr.utils.run import build_trainer, finish_run, log_hparams, scalar_metrics, start_run, user_errors

log = logging.getLogger("hwr")
# DataModule options that decide which images are tested and how they are preprocessed.
SPLIT_KEYS = ("seed", "val_fraction", "test_fraction", "split_by", "margin", "min_box", "image_size")


def load_checkpoint(path: str | Path) -> tuple[Classifier, dict[str, Any]]:
    """Load a Classifier and the hyperparameters of the DataModule it was trained with."""
    path = Path(path)
    if not path.is_file():
        raise HwrError(f"checkpoint not found: {path}; pass ckpt_path=<run dir>/checkpoints/best.ckpt")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model = Classifier.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file: say which
        raise HwrError(f"cannot load checkpoint {path}: {type(e).__name__}: {e}") from e
    return model, dict(ckpt.get("datamodule_hyper_parameters") or {})


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test `cfg.ckpt_path` on `cfg.data`'s test split; write metrics.json; return the metrics."""
    started = time.time()
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise HwrError("eval.py needs ckpt_path=<run dir>/checkpoints/best.ckpt")
    start_run(cfg)
    model, trained_on = load_checkpoint(cfg.ckpt_path)
    dm: CharDataModule = hydra.utils.instantiate(cfg.data)
    if trained_on.get("dataset") == dm.name:
        # Same dataset: rebuild the training run's split, so no training image is tested.
        same_split = {k: trained_on[k] for k in SPLIT_KEYS if k in trained_on}
        dm = hydra.utils.instantiate(cfg.data, **same_split)
    if model.hparams.num_classes != dm.num_classes:
        raise HwrError(
            f"the checkpoint predicts {model.hparams.num_classes} classes but data={dm.name} has "
            f"{dm.num_classes}; evaluate on a dataset/split with the same classes"
        )
    if model.class_names != dm.class_names:
        log.warning("class names differ: checkpoint %s, data %s", model.class_names, dm.class_names)
    if list(model.hparams.input_shape) != list(dm.input_shape):
        raise HwrError(
            f"the checkpoint expects images {list(model.hparams.input_shape)} but "
            f"data={dm.name} gives {list(dm.input_shape)}; set data.image_size to match"
        )
    # Inputs must be normalised exactly as in training, whatever the eval data config says.
    if trained_on.get("mean") is not None and trained_on.get("std") is not None:
        dm.mean, dm.std = float(trained_on["mean"]), float(trained_on["std"])

    trainer = build_trainer(cfg)
    hparams = flat_hparams(cfg, groups=("data",))
    hparams.update({"model/net/class": type(model.net).__name__, "ckpt_path": str(cfg.ckpt_path)})
    log_hparams(trainer.loggers, hparams)
    results = trainer.test(model, datamodule=dm)
    metrics: dict[str, Any] = scalar_metrics(results[0] if results else {})
    return finish_run(cfg, dm.name, model, trainer.loggers, metrics, started, test_ckpt=str(cfg.ckpt_path))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns test/acc."""
    with user_errors():
        return evaluate(cfg).get("test/acc")
