"""From checkpoint files back to a model and the data it expects (eval, predict, export).

A checkpoint carries the Classifier's config (network, classes, input shape) and the
DataModule's hyperparameters (dataset, split, preprocessing, normalisation), so nothing else
is needed to test it or to feed it new images the way it was trained.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from hwr.classifier import Classifier
from hwr.cli import CONFIG_DIR
from hwr.errors import HwrError
from hwr.models.ensemble import Ensemble

# DataModule options that decide which images are tested and how they are preprocessed.
SPLIT_KEYS = ("seed", "val_fraction", "test_fraction", "split_by", "margin", "min_box", "image_size", "split")
# DataModule options that are about this machine, not about the trained model.
LOCAL_KEYS = (
    "data_dir",
    "cache_dir",
    "num_workers",
    "pin_memory",
    "decode_workers",
    "batch_size",
    "eval_batch_size",
    "on_device",
)


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


def expand_paths(spec: str | Sequence[str]) -> list[str]:
    """A path, a glob pattern or a list of them -> the checkpoint files, in a stable order."""
    paths: list[str] = []
    for item in [spec] if isinstance(spec, str | Path) else list(spec):
        item = str(item)
        if glob.has_magic(item):
            found = sorted(glob.glob(item, recursive=True))
            if not found:
                raise HwrError(f"no checkpoint matches {item}")
            paths += found
        else:
            paths.append(item)
    if not paths:
        raise HwrError("ckpt_path is empty; pass a checkpoint, a list [a.ckpt,b.ckpt] or a glob")
    return paths


def load_models(spec: str | Sequence[str]) -> tuple[Classifier, dict[str, Any]]:
    """One checkpoint, or several averaged into an ensemble (a list or a glob pattern).

    Ensemble members must share classes, input shape and training data (split and
    normalisation): averaging models that saw different pixels would be silently wrong.
    """
    paths = expand_paths(spec)
    model, trained_on = load_checkpoint(paths[0])
    if len(paths) == 1:
        return model, trained_on
    members = [model.net]
    for path in paths[1:]:
        other, other_data = load_checkpoint(path)
        if other.class_names != model.class_names or other.hparams.input_shape != model.hparams.input_shape:
            raise HwrError(
                f"{path} has other classes or input shape than {paths[0]}; it cannot join the ensemble"
            )
        # A key only one of them has comes from an older hwr that did not record it: not a difference.
        keys = [k for k in (*SPLIT_KEYS, "dataset", "mean", "std") if k in other_data and k in trained_on]
        differs = [k for k in keys if other_data[k] != trained_on[k]]
        if differs:
            raise HwrError(f"{path} was trained on other data than {paths[0]} ({', '.join(differs)} differ)")
        members.append(other.net)
    # The first member's Classifier carries classes, loss settings and TTA; only the net changes.
    model.net = Ensemble(members)
    model.hparams["ensemble"] = paths
    return model, trained_on


def datamodule_config(
    trained_on: Mapping[str, Any], data_dir: str, cache_dir: str | None = None
) -> dict[str, Any]:
    """An instantiable config of the DataModule a checkpoint was trained with, on this machine's paths.

    The class comes from `configs/data/<dataset>.yaml`, so the checkpoint need not store code paths.
    """
    name = trained_on.get("dataset")
    config_file = CONFIG_DIR / "data" / f"{name}.yaml"
    if not name or not config_file.is_file():
        raise HwrError("the checkpoint does not say which data config it was trained with; pass data=<name>")
    cfg = {k: v for k, v in trained_on.items() if k not in (*LOCAL_KEYS, "dataset")}
    cfg["_target_"] = OmegaConf.load(config_file)["_target_"]
    cfg["data_dir"] = data_dir
    if cache_dir is not None and "cache_dir" in trained_on:
        cfg["cache_dir"] = cache_dir
    return cfg
