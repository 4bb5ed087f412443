"""The sweeper class Hydra's plugin scan finds. It imports only Hydra: every hwr command scans
the plugins, and optuna (the `sweeps` extra) is loaded only when a study runs."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class HwrOptunaSweeper(Sweeper):
    """hydra-optuna-sweeper's OptunaSweeper (the same options), safe for parallel workers:
    see `hydra_plugins.hwr_optuna_sweeper._impl.HwrOptunaSweeperImpl`."""

    def __init__(self, **options: Any) -> None:
        from ._impl import HwrOptunaSweeperImpl

        self.sweeper = HwrOptunaSweeperImpl(**options)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
