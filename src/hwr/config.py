"""Where hwr's configs live and how to compose them outside a command (tests, notebooks).

The YAML ships inside the package (`hwr/configs`, found by Hydra as `pkg://hwr.configs`), so an
installed hwr needs no checkout. A `configs/` folder in the working directory comes before it
(`hydra_plugins.hwr_searchpath`): a file there adds an option (`configs/model/mynet.yaml`) or
replaces a shipped one of the same name; `hydra.searchpath=[file:///a/folder]` adds options too.

    cfg = compose_config("train", ["model=mlp", "paths.output_dir=/tmp/run"])
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

CONFIG_MODULE = "hwr.configs"
CONFIG_PATH = f"pkg://{CONFIG_MODULE}"


def config_dir() -> Path:
    """The folder of the shipped YAML (a real folder: wheels install files)."""
    return Path(str(resources.files(CONFIG_MODULE)))


def group_options(group: str) -> list[str]:
    """The options of a config group a user may pick (`model` -> cnn, cnn_deep, mlp, resnet);
    `_base` and other private files left out."""
    folder = config_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("_"))


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """`<name>.yaml` (train, eval, predict, ...) with `overrides`, composed as the command line
    would, without starting a run: pass `paths.output_dir=...` among the overrides."""
    if GlobalHydra.instance().is_initialized():  # inside a running command: its search path
        return compose(name, overrides=overrides)
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        return compose(name, overrides=overrides)
