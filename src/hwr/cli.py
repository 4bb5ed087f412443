"""What every command-line entry point shares: the configs folder and one way to run a main.

Importing an hwr module changes nothing global. The process-wide set-up a run needs (the
OmegaConf resolver that hwr's Optuna configs name, Lightning's DDP child command) happens in
`prepare()`, which `hydra_main` calls when the command starts, before Hydra composes the
config. Code that composes hwr's configs itself (tests, notebooks, the benchmark) uses
`compose_config`, which does the same.

    main = hydra_main("eval")(evaluate)                       # in hwr/eval.py
    main = hydra_main("train", argv=relaunch_argv)(train)     # a command line rewritten first
"""

from __future__ import annotations

import functools
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from hwr.errors import HwrError, user_errors
from hwr.utils import ddp
from hwr.utils.sweep import run_task

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"

Task = Callable[[DictConfig], Any]


def sqlite_url(path: str) -> str:
    """Resolver `hwr_sqlite` for an Optuna storage: `sqlite:///<absolute path>`, its folder
    created first (the study is opened before Hydra creates the sweep folder)."""
    file = Path(path).absolute()
    file.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{file}"


# Lightning's messages that say nothing about the run: an advertisement, a note that hwr set
# its own model summary, why fit stopped (printed into the live progress bar, which is then
# drawn twice; the epochs are in train.log and metrics.json), and (as warnings) a
# torch-internal deprecation and the logging interval of sets smaller than one interval.
NOISE_LOGS = ("💡 Tip:", "Trainer already configured with model summary callbacks", "`Trainer.fit` stopped:")
NOISE_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)",
    r"The number of training batches \(\d+\) is smaller than the logging",
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(noise in record.getMessage() for noise in NOISE_LOGS)


def quiet_lightning() -> None:
    """Keep the terminal to what concerns the run (NOISE_LOGS, NOISE_WARNINGS)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())
    for message in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def prepare() -> None:
    """Register the resolver hwr's configs use, route Lightning's DDP children through this
    run's folder (`hwr.utils.ddp`) and quiet Lightning's noise. Safe to call more than once."""
    OmegaConf.register_new_resolver("hwr_sqlite", sqlite_url, use_cache=True, replace=True)
    ddp.install()
    quiet_lightning()


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
    try:
        with user_errors(), ddp.job_scope():
            if cfg.get("objective") is None:
                return task(cfg)
            return run_task(cfg, task, objective=cfg.objective)
    finally:
        remove_empty_logs()


def remove_empty_logs() -> None:
    """Delete this job's log file (Hydra's `<run>/<task>.log`) when nothing was logged to it:
    an empty file beside the run's outputs only suggests something is missing."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            path = Path(handler.baseFilename)
            handler.flush()
            if path.is_file() and path.stat().st_size == 0:
                path.unlink()


def check_group_options(argv: list[str]) -> None:
    """`model=nope`: one line naming the options there are, instead of Hydra's 13 lines that
    list `_base` among them. Sweeps (`a,b`, `choice(...)`), nulls, `+`/`~` overrides and
    command lines that add a search path or a config folder (their options live elsewhere) are
    left to Hydra."""
    elsewhere = ("hydra.searchpath", "+hydra.searchpath", "--config-dir", "-cd", "--config-path", "-cp")
    if any(arg.startswith(elsewhere) for arg in argv):
        return
    for arg in argv:
        key, _, value = arg.partition("=")
        folder = CONFIG_DIR / key
        if (
            not value
            or key == "hydra"
            or key.startswith(("-", "+", "~"))
            or "." in key
            or not folder.is_dir()
        ):
            continue
        if value == "null" or any(c in value for c in ",*()[]"):
            continue
        if not (folder / f"{value}.yaml").is_file():
            options = sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("_"))
            raise HwrError(f"{key}={value} is not an option; choose from {', '.join(options)}")


def hydra_main(
    config_name: str, argv: Callable[[list[str]], list[str]] | None = None
) -> Callable[[Task], Callable[[], Any]]:
    """Decorator: `task(cfg)` becomes a Hydra command-line main on `configs/<config_name>.yaml`,
    run by `run` (`config_name` is the primary config: train, eval, predict, ...). `argv`, when
    given, rewrites the command line's arguments before Hydra reads them (train.py's resume)."""

    def decorate(task: Task) -> Callable[[], Any]:
        @functools.wraps(task)  # Hydra names the job after the task's module (train, eval, ...)
        def job(cfg: DictConfig) -> Any:
            return run(cfg, task)

        hydra_job = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)(job)

        @functools.wraps(task)
        def main() -> Any:
            prepare()
            with user_errors():
                check_group_options(sys.argv[1:])
                if argv is not None:
                    sys.argv[1:] = argv(sys.argv[1:])
            return hydra_job()

        return main

    return decorate
