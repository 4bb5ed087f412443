"""`python eval.py ckpt_path=... [data=...] [tta_shift=1]`: test trained checkpoints on any test split.

`ckpt_path` may be one checkpoint, a list `[a.ckpt,b.ckpt]` or a glob pattern: several
checkpoints are tested as one ensemble (their probabilities averaged). Without `data=`,
the data the checkpoint was trained on is used, with its split and preprocessing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from hwr.checkpoint import SPLIT_KEYS, datamodule_config, expand_paths, load_models
from hwr.cli import hydra_main
from hwr.data.base import CharDataModule
from hwr.errors import HwrError
from hwr.utils.config import flat_hparams
from hwr.utils.run import build_trainer, finish_run, log_hparams, scalar_metrics, start_run

log = logging.getLogger("hwr")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test `cfg.ckpt_path` on `cfg.data`'s test split; write metrics.json; return the metrics."""
    started = time.time()
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise HwrError("eval.py needs ckpt_path=<run dir>/checkpoints/best.ckpt")
    start_run(cfg)
    model, trained_on = load_models(cfg.ckpt_path)
    if cfg.get("tta_shift") is not None:
        model.hparams.tta_shift = int(cfg.tta_shift)
    if cfg.get("data") is None:
        dm: CharDataModule = hydra.utils.instantiate(
            datamodule_config(trained_on, cfg.paths.data_dir, cfg.paths.get("cache_dir"))
        )
    else:
        dm = hydra.utils.instantiate(cfg.data)
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
    hparams = (
        flat_hparams(cfg, groups=("data",)) if cfg.get("data") is not None else {"data/dataset": dm.name}
    )
    members = model.hparams.get("ensemble") or expand_paths(cfg.ckpt_path)
    hparams.update(
        {
            "model/net/class": type(model.net).__name__,
            "ckpt_path": ",".join(map(str, members)),
            "tta_shift": int(model.hparams.get("tta_shift") or 0),
        }
    )
    log_hparams(trainer.loggers, hparams)
    results = trainer.test(model, datamodule=dm)
    metrics: dict[str, Any] = scalar_metrics(results[0] if results else {})
    test_ckpt = [str(p) for p in members] if len(members) > 1 else str(members[0])
    return finish_run(cfg, dm.name, model, trainer, metrics, started, test_ckpt=test_ckpt)


# the command line; returns the config's `objective` (test/acc): eval.py -m sweeps checkpoints or data
main = hydra_main("eval")(evaluate)
