"""`hwr eval ckpt_path=... [data=...] [data.test_on=all] [tta_shift=1]` (or `python eval.py`): test
trained checkpoints on any test split, or on a whole dataset.

`ckpt_path` may be one checkpoint, a list `[a.ckpt,b.ckpt]` or a glob pattern: several
checkpoints are tested as one ensemble (their probabilities averaged). Without `data=`,
the data the checkpoint was trained on is used, with its split and preprocessing.
"""

from __future__ import annotations

from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from hwr.data.base import CharDataModule, build_datamodule
from hwr.data.sets import LabelledImages
from hwr.errors import HwrError
from hwr.evaluation.tester import Tester
from hwr.inference.model import TrainedModel
from hwr.runs.console import log
from hwr.runs.entry import command
from hwr.runs.record import Run, scalar_metrics
from hwr.runs.tensorboard import flat_hparams, log_hparams
from hwr.runs.trainer import build_trainer


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
    return build_datamodule(cfg.data, **same, mean=prep.mean, std=prep.std)


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


@command("eval")
def evaluate(cfg: DictConfig, run: Run) -> dict[str, Any]:
    """Test `cfg.ckpt_path` on `cfg.data`'s test split; the run record."""
    trained = TrainedModel.load(cfg.ckpt_path, device="cpu", tta_shift=cfg.get("tta_shift"))
    dm = eval_datamodule(cfg, trained)
    align_classes(dm, trained.class_names)
    if list(trained.input_shape) != list(dm.input_shape):
        raise HwrError(
            f"the checkpoint expects images {list(trained.input_shape)} but "
            f"data={dm.name} gives {list(dm.input_shape)}; set data.image_size to match"
        )
    trainer = build_trainer(cfg, run.folder)
    tester = Tester(trained)
    run.trainer, run.data, run.model = trainer, dm.name, type(tester.net).__name__
    run.num_params = sum(p.numel() for p in tester.parameters())
    hparams = (
        flat_hparams(cfg, groups=("data",)) if cfg.get("data") is not None else {"data/dataset": dm.name}
    )
    hparams.update(
        {"model/net/class": run.model, "ckpt_path": ",".join(trained.sources), "tta_shift": trained.tta_shift}
    )
    log_hparams(trainer.loggers, hparams, dm.name, run.model)
    run.folder.adopt()
    members = list(trained.sources)
    test_ckpt = members if len(members) > 1 else members[0]
    run.progress = lambda: {**scalar_metrics(trainer.callback_metrics), "test_ckpt": test_ckpt}
    results = trainer.test(tester, datamodule=dm, verbose=False)  # the end table shows them
    return run.finish(scalar_metrics(results[0] if results else {}), test_ckpt=test_ckpt)


# the command line; returns the config's `objective` (test/acc): `hwr eval -m` sweeps checkpoints or data
main = evaluate.main
