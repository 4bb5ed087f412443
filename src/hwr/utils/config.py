"""Config helpers: print the composed config as a tree, flatten it into hparams."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rich
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf

PRINT_ORDER = ("data", "model", "callbacks", "logger", "trainer", "paths")


def print_config_tree(cfg: DictConfig, save_to: str | Path | None = None) -> None:
    """Print the composed config as a Rich tree, main groups first; optionally save it."""
    tree = rich.tree.Tree("CONFIG", style="bold", guide_style="dim")
    fields = [f for f in PRINT_ORDER if f in cfg] + [f for f in cfg if f not in PRINT_ORDER]
    for field in fields:
        branch = tree.add(str(field), style="bold")
        value = cfg[field]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml", theme="ansi_dark"))
    rich.print(tree)
    if save_to:
        with open(save_to, "a") as f:  # a resumed run adds its config below the original
            rich.print(tree, file=f)


def _short(value: Any) -> Any:
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def flat_hparams(cfg: DictConfig, groups: Sequence[str] = ("data", "model")) -> dict[str, Any]:
    """Flatten the training-relevant part of `cfg` into `{"model/net/channels": "[32, 64]", ...}`.

    `_target_` becomes the class name; `_partial_` flags and the values taken from `paths`
    (where things are on this machine, not how the model was trained) are dropped. Also adds
    seed, max_epochs and precision. Values are TensorBoard-friendly scalars or strings.
    """
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any, raw: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "_partial_" or (isinstance(raw[key], str) and "${paths." in raw[key]):
                    continue
                name = "class" if key == "_target_" else key
                walk(f"{prefix}/{name}", value.rsplit(".", 1)[-1] if key == "_target_" else value, raw[key])
        else:
            out[prefix] = _short(node)

    container = OmegaConf.to_container(cfg, resolve=True)
    unresolved = OmegaConf.to_container(cfg, resolve=False)
    for group in groups:
        if group in container:
            walk(group, container[group], unresolved[group])
    for key in ("seed",):
        if key in container:
            out[key] = _short(container[key])
    for key in ("max_epochs", "precision"):
        if key in container.get("trainer", {}):
            out[f"trainer/{key}"] = _short(container["trainer"][key])
    return out
