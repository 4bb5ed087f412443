"""What every command-line entry point shares: the configs folder and one way to run a main.

Importing an hwr module changes nothing global. The process-wide set-up a run needs (the
OmegaConf resolvers that hwr's configs name, Lightning's DDP child command) happens in
`prepare()`, which `hydra_main` calls when the command starts, before Hydra composes the
config: `hydra.run.dir` goes through the `hwr_run_dir` resolver and is resolved before the
task runs. Code that composes hwr's configs itself (tests, notebooks, the benchmark) uses
`compose_config`, which does the same.

    main = hydra_main("train")(train)   # in hwr/train.py
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from hwr.errors import user_errors
from hwr.utils import ddp
from hwr.utils.resume import register_resolvers
from hwr.utils.sweep import run_task

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"

Task = Callable[[DictConfig], Any]


def prepare() -> None:
    """Register the resolvers hwr's configs use and route Lightning's DDP children through
    this run's folder (`hwr.utils.ddp`). Safe to call more than once."""
    register_resolvers()
    ddp.install()


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """`configs/<name>.yaml` with `overrides`, composed as the command line would (without
    starting a Hydra run: `paths.output_dir` should be among the overrides)."""
    prepare()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


def run(cfg: DictConfig, task: Task) -> Any:
    """`task(cfg)` as an entry point runs it: an HwrError becomes `error: ...` and exit status
    1, and DDP state is cleared after the job. A config with an `objective` key (train, eval)
    makes it a sweep job: the task's metrics.json value of that metric is returned to the
    sweeper, and in a multirun a failure is recorded instead of stopping the sweep."""
    with user_errors(), ddp.job_scope():
        if cfg.get("objective") is None:
            return task(cfg)
        return run_task(cfg, task, objective=cfg.objective)


def hydra_main(config_name: str) -> Callable[[Task], Callable[[], Any]]:
    """Decorator: `task(cfg)` becomes a Hydra command-line main on `configs/<config_name>.yaml`,
    run by `run` (`config_name` is the primary config: train, eval, predict, ...)."""

    def decorate(task: Task) -> Callable[[], Any]:
        @functools.wraps(task)  # Hydra names the job after the task's module (train, eval, ...)
        def job(cfg: DictConfig) -> Any:
            return run(cfg, task)

        hydra_job = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)(job)

        @functools.wraps(task)
        def main() -> Any:
            prepare()
            return hydra_job()

        return main

    return decorate
