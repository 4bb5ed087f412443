"""`hwr train [overrides]` (or `python train.py`): fit a model, test its best checkpoint, report.

The DataModule, the Classifier and the Trainer come from the config; the run folder, its
record and what the terminal shows come from hwr.runs. After fitting, the best checkpoint is
tested through `TrainedModel`, the path that eval, predict, export and serve use.
"""

from __future__ import annotations

import copy
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from hwr.data.base import CharDataModule, build_datamodule
from hwr.errors import HwrError
from hwr.evaluation.tester import Tester, score
from hwr.inference.checkpoint import TrainedOn, differing_keys, hyper_parameters, read_checkpoint
from hwr.inference.model import TrainedModel
from hwr.runs.console import log
from hwr.runs.entry import command
from hwr.runs.record import Run, scalar_metrics
from hwr.runs.tensorboard import flat_hparams, log_hparams
from hwr.runs.trainer import build_trainer, preload
from hwr.training.callbacks import TrainingClock
from hwr.training.classifier import Classifier
from hwr.training.init_from import check_start, init_from, normalisation
from hwr.training.pruning import TrialPruning


def build_model(model_cfg: DictConfig, dm: CharDataModule) -> Classifier:
    """Instantiate the model config for this DataModule's input shape and classes."""
    return hydra.utils.instantiate(
        model_cfg,
        input_shape=list(dm.input_shape),
        num_classes=dm.num_classes,
        class_names=dm.class_names,
        _recursive_=False,  # the Classifier builds net/optimizer/scheduler from their configs
    )


def facts(trainer: L.Trainer, model: Classifier) -> dict[str, Any]:
    """What the training did: epochs, steps, last checkpoint, training time."""
    clock = next((c for c in trainer.callbacks if isinstance(c, TrainingClock)), None)
    out = {
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "last_ckpt": getattr(trainer.checkpoint_callback, "last_model_path", None) or None,
        # training only (no start-up, validation, testing or compilation), beside wall_time_s
        "train_time_s": round(clock.seconds, 3) if clock is not None and clock.seconds is not None else None,
    }
    if model.compile_mode:
        out["compile_warmup_s"] = round(model.compile_warmup_s, 3)
    return out


def start_checkpoint(cfg: DictConfig, run: Run) -> tuple[str | None, dict[str, Any] | None]:
    """The checkpoint training starts from (a resume's last.ckpt, read by hwr.runs.resume, or
    ckpt_path=), read once and checked against this run's network: (path, checkpoint) or
    (None, None). Without training, ckpt_path= is what is tested (TrainedModel reads it)."""
    if run.start_from is not None:
        path, ckpt = run.start_from
    else:
        path = cfg.get("ckpt_path")
        if not path or not cfg.get("train"):
            return path, None
        ckpt = read_checkpoint(path)
    theirs = hyper_parameters(ckpt, path)["net"]
    ours = OmegaConf.to_container(cfg.model.net, resolve=True)
    differ = differing_keys(theirs, ours)
    if differ:
        shown = ", ".join(f"model.net.{k}={theirs.get(k)} (this run: {ours.get(k)})" for k in differ[:4])
        raise HwrError(f"{path} holds a network built with {shown}; use its model settings to start from it")
    return path, ckpt


@command("train")
def train(cfg: DictConfig, run: Run) -> dict[str, Any]:
    """Fit (if cfg.train) and test (if cfg.test); the run record."""
    check_start(cfg)
    ckpt_path, checkpoint = start_checkpoint(cfg, run)
    if cfg.get("test") and not cfg.get("train") and not ckpt_path:
        raise HwrError("train=false test=true needs ckpt_path=<checkpoint> (or use hwr eval)")
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    start = read_checkpoint(cfg.init_from, key="init_from") if cfg.get("init_from") else None
    dm = build_datamodule(cfg.data, **(normalisation(cfg.data, start, cfg.init_from) if start else {}))
    model = build_model(cfg.model, dm)
    if start is not None:
        net_cfg = OmegaConf.to_container(cfg.model.net, resolve=True)
        log.info("%s", init_from(model.net, start, cfg.init_from, net_cfg, dm.class_names))
    trainer = build_trainer(cfg, run.folder)
    if checkpoint is not None:
        preload(trainer, ckpt_path, checkpoint)
    run.trainer, run.data, run.model = trainer, dm.name, type(model.net).__name__
    run.num_params = sum(p.numel() for p in model.parameters())
    if cfg.get("train") and cfg.get("test"):
        dm.setup("test")  # a missing or broken test file fails now, not after the training
    if run.writes:
        log_hparams(trainer.loggers, flat_hparams(cfg), dm.name, run.model)
        run.folder.adopt()
    run.progress = lambda: {**scalar_metrics(trainer.callback_metrics), **facts(trainer, model)}

    metrics: dict[str, Any] = {}
    if start is not None and cfg.get("test") and trainer.global_rank == 0:
        metrics.update(start_scores(model, dm))
    if cfg.get("train"):
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
        metrics.update(scalar_metrics(trainer.callback_metrics))
    done = facts(trainer, model)
    if trainer.global_rank != 0:
        return metrics  # rank 0 tests and writes the run's files
    pruned_at = next((c.pruned_at for c in trainer.callbacks if isinstance(c, TrialPruning)), None)
    if pruned_at is not None:  # a study's trial stopped early: not worth a test
        return run.finish(metrics, "pruned", **done, pruned_at=pruned_at)

    test_ckpt = None
    if cfg.get("test"):
        test_ckpt, results = test(cfg, run, trainer, model, dm, ckpt_path)
        metrics.update(results)
    # a run that took no training step (trainer.max_epochs=0, an empty resume) is not a trained model
    status = "untrained" if cfg.get("train") and done["global_step"] == 0 else "completed"
    return run.finish(metrics, status, **done, test_ckpt=test_ckpt)


def start_scores(model: Classifier, dm: CharDataModule) -> dict[str, float]:
    """The test accuracy of the weights a fine-tuning starts from (`start/...`), said at once:
    with the run's own `test/...` they show what the fine-tuning changed."""
    on = TrainedOn.from_record(dm.describe())
    scores = score(TrainedModel.from_network(copy.deepcopy(model.net), dict(model.hparams), on), dm)
    per_source = {k.split("/")[1]: v for k, v in scores.items() if k.count("/") == 2 and k.endswith("/acc")}
    parts = [f"{name} {100 * v:.1f}%" for name, v in per_source.items()]
    said = f" ({', '.join(parts)})" if parts else ""
    log.info("the starting weights on the test split: %.1f%%%s", 100 * scores["start/acc"], said)
    return scores


def test(
    cfg: DictConfig,
    run: Run,
    trainer: L.Trainer,
    model: Classifier,
    dm: CharDataModule,
    ckpt_path: str | None,
) -> tuple[str | None, dict[str, float]]:
    """Test the best checkpoint (the given one when not training; the weights as they are when
    none was saved) through TrainedModel, in this process alone; (what was tested, metrics)."""
    best = getattr(trainer.checkpoint_callback, "best_model_path", None)
    tested = best or (ckpt_path if not cfg.get("train") else None)
    if tested:
        trained = TrainedModel.load(tested, device="cpu")
    else:
        if not trainer.fast_dev_run:
            log.warning("no best checkpoint was saved: testing the weights as they are")
        on = TrainedOn.from_record(dm.describe())
        trained = TrainedModel.from_network(model.net, dict(model.hparams), on)
    if trainer.world_size > 1:
        # Test in this process alone: a distributed test pads the shards with repeated
        # images and leaves each rank only part of the predictions the report needs.
        torch.distributed.destroy_process_group()
        trainer = build_trainer(cfg, run.folder, strategy="auto", devices=1, num_nodes=1)
        run.trainer = trainer
    results = trainer.test(Tester(trained), datamodule=dm, verbose=False)  # the end table shows them
    return tested, scalar_metrics(results[0] if results else {})


main = train.main
