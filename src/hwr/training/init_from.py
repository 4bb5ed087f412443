"""`init_from=<checkpoint>`: a new training that starts from another run's network weights.

Only the weights come over: the optimiser, the schedule and the epoch start afresh (that is
`ckpt_path=` / `resume=`). The network must be built the same way (its `model.net` settings);
the classes may differ: the output layer's rows are matched by class name, so a 62-class
model fine-tuned on digits keeps its rows for 0-9, and a class the checkpoint never saw
starts from a fresh row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from hwr.errors import HwrError
from hwr.inference.checkpoint import NET_PREFIX, differing_keys, hyper_parameters, trained_on

log = logging.getLogger("hwr")


def net_differences(theirs: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """The `model.net` settings that differ, as overrides that would match the checkpoint."""
    return [f"model.net.{k}={theirs.get(k)}".replace(" ", "") for k in differing_keys(theirs, ours)]


def normalisation(data_cfg: Any, ckpt: dict[str, Any], path: str | Path) -> dict[str, float]:
    """The checkpoint's input normalisation (mean, std), for a data config that sets none: its
    weights expect inputs scaled as in its own training, whatever this set's statistics."""
    if data_cfg.get("mean") is not None or data_cfg.get("std") is not None:
        return {}
    prep = trained_on(ckpt, path).preprocessing
    return {"mean": prep.mean, "std": prep.std}


def init_from(
    net: nn.Module, ckpt: dict[str, Any], path: str | Path, net_cfg: dict[str, Any], classes: Sequence[str]
) -> str:
    """Load the network weights of checkpoint `ckpt` (read from `path`, read_checkpoint) into
    `net` (built from `net_cfg` for `classes`); a line saying what was kept."""
    hparams = hyper_parameters(ckpt, path)
    differ = net_differences(hparams["net"], net_cfg)
    if differ:
        raise HwrError(
            f"init_from={path} holds a network built otherwise: add {' '.join(differ[:6])} "
            "(the checkpoint's settings) to start from it"
        )
    theirs_classes = list(hparams["class_names"])
    weights = {k[len(NET_PREFIX) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(NET_PREFIX)}
    state = net.state_dict()
    # the output layer: the last weight and bias, one row per class (every hwr network ends so)
    head = [
        k
        for k in list(state)[-2:]
        if len(state[k]) == len(classes) and len(weights.get(k, [])) == len(theirs_classes)
    ]
    rows = [theirs_classes.index(c) if c in theirs_classes else None for c in classes]
    for key, target in state.items():
        source = weights.get(key)
        if source is None:
            raise HwrError(f"init_from={path} has no weights for {key}: it is not this network's checkpoint")
        if key in head:  # copied row by row, by class name; unknown classes keep their fresh row
            fresh = target.clone()
            for row, theirs in enumerate(rows):
                if theirs is not None:
                    fresh[row] = source[theirs]
            state[key] = fresh
        elif source.shape == target.shape:
            state[key] = source.to(target.dtype)
        else:
            raise HwrError(
                f"init_from={path}: {key} is {tuple(source.shape)} there and {tuple(target.shape)} here; "
                "the networks differ"
            )
    net.load_state_dict(state)
    shared = sum(r is not None for r in rows)
    if theirs_classes == list(classes):
        return f"weights from {path} (the same {len(classes)} classes)"
    return (
        f"weights from {path}; the output layer matched by class name: {shared} of this set's "
        f"{len(classes)} classes known to it, {len(classes) - shared} start fresh"
    )


def check_start(cfg: Any) -> None:
    """init_from starts a new training: with ckpt_path or resume (which continue one) it is refused."""
    if cfg.get("init_from") and (cfg.get("ckpt_path") or cfg.get("resume")):
        raise HwrError(
            "init_from= starts a new training from a checkpoint's weights; ckpt_path= and resume= continue "
            "one (weights, optimiser, epoch): give one of them"
        )
