"""A `configs/` folder in the working directory comes before the configs shipped with hwr.

Hydra finds this plugin by its namespace package (`hydra_plugins`). For an hwr command (whose
primary configs are `pkg://hwr.configs`) it puts `./configs`, when there is one, first in the
search path: a file there adds an option (`configs/model/mynet.yaml` -> `model=mynet`) or
replaces the shipped one of the same name. Other Hydra apps are left alone.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

HWR_CONFIGS = "pkg://hwr.configs"


class HwrSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if not any(entry.path == HWR_CONFIGS for entry in search_path.get_path()):
            return
        local = Path.cwd() / "configs"
        if local.is_dir():
            search_path.prepend(provider="hwr-local", path=f"file://{local}")
