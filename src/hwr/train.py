"""`python train.py [overrides]`: build data, model and trainer from config; fit, test, report."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig

from hwr.callbacks import TrainingClock
from hwr.checkpoint import check_checkpoint
from hwr.classifier import Classifier
from hwr.cli import hydra_main
from hwr.data.base import CharDataModule
from hwr.errors import HwrError
from hwr.utils.config import flat_hparams
from hwr.utils.resume import claim_run_dir, last_checkpoint, relaunch_argv
from hwr.utils.run import build_trainer, finish_run, interruptible, scalar_metrics, start_run
from hwr.utils.tensorboard import log_hparams

log = logging.getLogger("hwr")


def build_model(model_cfg: DictConfig, dm: CharDataModule) -> Classifier:
    """Instantiate the model config for this DataModule's input shape and classes."""
    return hydra.utils.instantiate(
        model_cfg,
        input_shape=list(dm.input_shape),
        num_classes=dm.num_classes,
        class_names=dm.class_names,
        _recursive_=False,  # the Classifier builds net/optimizer/scheduler from their configs
    )


def run_facts_of(trainer: L.Trainer, model: Classifier) -> dict[str, Any]:
    """What the training did: epochs, steps, last checkpoint, training time."""
    clock = next((c for c in trainer.callbacks if isinstance(c, TrainingClock)), None)
    facts = {
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "last_ckpt": getattr(trainer.checkpoint_callback, "last_model_path", None) or None,
        # training only (no start-up, validation, testing or compilation), beside wall_time_s
        "train_time_s": round(clock.seconds, 3) if clock is not None and clock.seconds is not None else None,
    }
    if model.compile_mode:
        facts["compile_warmup_s"] = round(model.compile_warmup_s, 3)
    return facts


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (if cfg.train) and test (if cfg.test); write metrics.json; return the metrics."""
    started = time.time()
    # resume=<run dir>: the command line was relaunched into that folder (hwr.utils.resume)
    ckpt_path = last_checkpoint(cfg) if cfg.get("resume") else cfg.get("ckpt_path")
    if ckpt_path:
        check_checkpoint(ckpt_path)
    if cfg.get("test") and not cfg.get("train") and not ckpt_path:
        raise HwrError("train=false test=true needs ckpt_path=<checkpoint> (or use eval.py)")
    seed = cfg.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise HwrError(f"seed={seed!r} must be an integer (e.g. seed=12345), or seed=null for none")
    start_run(cfg)
    if seed is not None:
        L.seed_everything(seed, workers=True)

    dm: CharDataModule = hydra.utils.instantiate(cfg.data)
    model = build_model(cfg.model, dm)
    trainer = build_trainer(cfg)
    if cfg.get("train") and cfg.get("test"):
        dm.setup("test")  # a missing or broken test file fails now, not after the training
    log_hparams(trainer.loggers, flat_hparams(cfg), dm.name, type(model.net).__name__)

    def record_interrupted() -> None:
        if trainer.global_rank == 0:
            metrics = scalar_metrics(trainer.callback_metrics)
            facts = run_facts_of(trainer, model)
            finish_run(cfg, dm.name, model, trainer, metrics, started, status="interrupted", **facts)

    def resume_hint() -> str:
        if Path(cfg.paths.output_dir, "checkpoints", "last.ckpt").is_file():
            return f"resume with resume={cfg.paths.output_dir}"
        return "no checkpoint was saved yet (last.ckpt comes after the first epoch): run it again"

    with interruptible(record_interrupted, resume_hint):
        return fit_and_test(cfg, dm, model, trainer, ckpt_path, started)


def fit_and_test(
    cfg: DictConfig,
    dm: CharDataModule,
    model: Classifier,
    trainer: L.Trainer,
    ckpt_path: str | None,
    started: float,
) -> dict[str, Any]:
    """`trainer.fit` (if cfg.train), then `trainer.test` of the best checkpoint (if cfg.test)
    in rank 0 alone; the run record."""
    metrics: dict[str, Any] = {}
    if cfg.get("train"):
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
        metrics.update(scalar_metrics(trainer.callback_metrics))
    facts = run_facts_of(trainer, model)
    if trainer.global_rank != 0:
        return metrics  # rank 0 tests and writes the run's files

    test_ckpt = None
    if cfg.get("test"):
        checkpoint = trainer.checkpoint_callback
        if checkpoint is not None and checkpoint.best_model_path:
            test_ckpt = checkpoint.best_model_path
        elif not cfg.get("train"):
            test_ckpt = ckpt_path  # test only: the checkpoint given
        elif not trainer.fast_dev_run:
            log.warning("no best checkpoint was saved: testing the weights as they are")
        if trainer.world_size > 1:
            # Test in this process alone: a distributed test pads the shards with repeated
            # images and leaves each rank only part of the predictions the report needs.
            torch.distributed.destroy_process_group()
            trainer = build_trainer(cfg, strategy="auto", devices=1, num_nodes=1)
        results = trainer.test(model, datamodule=dm, ckpt_path=test_ckpt, verbose=False)  # printed below
        metrics.update(scalar_metrics(results[0] if results else {}))

    # a run that took no training step (trainer.max_epochs=0, an empty resume) is not a trained model
    status = "untrained" if cfg.get("train") and facts["global_step"] == 0 else "completed"
    return finish_run(cfg, dm.name, model, trainer, metrics, started, status, **facts, test_ckpt=test_ckpt)


# the command line; returns the config's `objective` (val/acc_best) to sweepers. A resume
# (resume=true|<run dir>, or ckpt_path=last) is relaunched as the run's own command line first.
main = hydra_main("train", argv=lambda argv: claim_run_dir(relaunch_argv(argv)))(train)
