"""The sweeper class Hydra's plugin scan finds (Hydra looks for sweepers only in the
`hydra_plugins` namespace package). It imports only Hydra: every hwr command scans the
plugins, and Optuna (the `sweeps` extra) is loaded only when a study runs."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class HwrOptunaSweeper(Sweeper):
    """An Optuna study as a multirun: see `hwr.studies.sweeper.StudySweeper`. The options
    (`hydra.sweeper`, hwr/configs/hydra/sweeper/optuna.yaml) are read from the config in
    `setup`, uninstantiated (`_recursive_: false`)."""

    def __init__(self, **options: Any) -> None:
        self.sweeper: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hwr.studies.sweeper import StudySweeper

        self.sweeper = StudySweeper(config.hydra.sweeper, hydra_context, task_function, config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
