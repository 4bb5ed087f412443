"""How every command runs: compose, validate, own the run folder, run, record.

    @command("train")
    def train(cfg, run): ...          # hwr/commands/train.py
    main = train.main                 # the command line (Hydra); train(cfg) runs a composed config

A command's life, in this order (`execute`):
1. Hydra composes the config from the command line; a composition error (a mistyped key, an
   option that does not exist) is one line with "did you mean" (`config_error`);
2. `hwr.validation.validate` checks every key's type and range;
3. `hwr.runs.resume.resolve` decides the folder (a new run, or the resumed one);
4. the folder is claimed (`RunFolder.claim`; a DDP rank joins its run's instead), the run's
   start is written (`Run.start`), and the command runs;
5. its end is recorded: completed by the command (`Run.finish`), or failed, diverged or
   interrupted here, with the exit status a shell or scheduler expects.

Importing this module changes nothing global: `prepare()` does the process-wide set-up when a
command starts.
"""

from __future__ import annotations

import difflib
import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import hydra
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from hwr.config import CONFIG_PATH, compose_config
from hwr.errors import Diverged, FolderTaken, HwrError, one_line
from hwr.runs import console, ddp
from hwr.runs.folder import RunFolder
from hwr.runs.record import Run
from hwr.runs.resume import LAST, Plan, resolve
from hwr.runs.sweep import in_multirun, objective_value, study_trial
from hwr.validation import validate

log = console.log
Task = Callable[..., Any]


def prepare() -> None:
    """The process-wide set-up of a command: Lightning's DDP children routed through this
    run's folder, the console. Safe to call more than once."""
    ddp.install()
    console.setup()


def open_folder(plan: Plan, cfg: DictConfig) -> RunFolder:
    """The run's folder: joined by a DDP rank, else claimed. A folder Hydra named by the
    clock that another run took in the same second becomes `<folder>_1`, `_2`, ..."""
    if ddp.is_child():
        return RunFolder.join(plan.folder)
    overwrite = bool(cfg.get("overwrite"))
    folder, n = plan.folder, 0
    while True:
        try:
            return RunFolder.claim(folder, resume=plan.resume, overwrite=overwrite)
        except FolderTaken:
            if plan.explicit or n >= 20:
                raise
            empty = folder.is_dir() and not any(folder.iterdir())
            if folder != plan.folder and empty:
                folder.rmdir()
            n += 1
            folder = plan.folder.with_name(f"{plan.folder.name}_{n}")


def interrupted(error: BaseException) -> int | None:
    """143 for SIGTERM, 130 for Ctrl-C, else None.

    Lightning turns SIGTERM into SIGTERMException, a SystemExit without a code (exit status 0:
    a preempted job would count as a success), and Ctrl-C into `sys.exit(1)` once it has shut
    down; its last.ckpt of the last finished epoch stays, so the run can be resumed.
    """
    if isinstance(error, SIGTERMException):
        return 143
    if isinstance(error, KeyboardInterrupt) or (isinstance(error, SystemExit) and error.code == 1):
        return 130
    return None


def execute(name: str, cfg: DictConfig, task: Task, run_folder: bool = True) -> Any:
    """Run `task` on a composed config as the command line does (see module docstring)."""
    validate(cfg)
    if not run_folder:
        return task(cfg)
    plan = resolve(cfg, name)
    cfg = plan.cfg
    folder = open_folder(plan, cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(folder.path)
    run = Run(cfg, folder, name, plan.overrides, resumed=plan.resume)
    if plan.state is not None:
        run.start_from = (str(plan.checkpoint), plan.state)
    with folder, ddp.job_scope(name, plan.overrides, folder.path):
        try:
            run.start()
            return task(cfg, run)
        except Diverged as e:
            run.fail(str(e), "diverged")
            raise
        except (SystemExit, KeyboardInterrupt) as e:
            code = interrupted(e)
            if code is None:
                raise
            run.finish(run.progress(), status="interrupted")
            if name == "train" and (folder.path / LAST).is_file():
                hint = f"resume with resume={folder.path}"
            elif name == "train":
                hint = "no checkpoint was saved yet (last.ckpt comes after the first epoch): run it again"
            else:
                hint = "run it again"
            console.note(f"interrupted ({'SIGTERM' if code == 143 else 'Ctrl-C'}); {hint}")
            raise SystemExit(code) from None
        except Exception as e:
            run.fail(one_line(e))
            raise
        finally:
            run.close()
            try:
                folder.adopt()  # the log file, TensorBoard's files: whatever appeared
            except HwrError as e:  # a full disk: the error that ended the run is the one to show
                log.warning("%s", e)


def config_error(error: BaseException, name: str, argv: list[str]) -> str | None:
    """One line for Hydra's composition errors: an option that does not exist (with the ones
    that do), a key that does not exist (with the closest that does)."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

    if isinstance(error, MissingConfigException):
        group = str(error.missing_cfg_file or "").rsplit("/", 1)
        options = [o for o in (error.options or []) if not o.startswith("_")]
        if len(group) == 2 and options:
            return f"{group[0]}={group[1]} is not an option; choose from {', '.join(options)}"
        return str(error).splitlines()[0]
    if isinstance(error, OverrideParseException):
        return f"cannot read the command line: {str(error).splitlines()[0]}"
    if isinstance(error, ConfigCompositionException):
        cause = error.__cause__
        key = getattr(cause, "full_key", None)
        if key and "not in struct" in str(cause):
            parent, _, leaf = str(key).rpartition(".")
            known = _keys_beside(name, parent, argv)
            close = difflib.get_close_matches(leaf, known, n=1)
            hint = (
                f"did you mean {parent + '.' if parent else ''}{close[0]}?" if close else "check the spelling"
            )
            return f"{key} is not a key of the config; {hint} (+{key}=... adds a new one)"
        return str(error).splitlines()[0]
    return None


def _keys_beside(name: str, parent: str, argv: list[str]) -> list[str]:
    """The keys of the config node `parent` of `<name>.yaml`, composed with the command line's
    group choices."""
    groups = [
        a for a in argv if "=" in a and "." not in a.split("=", 1)[0] and not a.startswith(("-", "+", "~"))
    ]
    try:
        cfg = compose_config(name, [*groups, "paths.output_dir=."])
        node = OmegaConf.select(cfg, parent) if parent else cfg
    except Exception:  # noqa: BLE001 - a suggestion is a nicety
        return []
    return [str(k) for k in node] if isinstance(node, DictConfig) else []


def command(name: str, run_folder: bool = True) -> Callable[[Task], Any]:
    """Decorator: `task(cfg, run)` (or `task(cfg)` without a run folder) becomes a command.

    The decorated function runs a composed config as the command line does (tests, notebooks);
    its `.main` is the command line's entry, Hydra composing `<name>.yaml` from sys.argv.
    """

    def decorate(task: Task) -> Any:
        @functools.wraps(task)
        def call(cfg: DictConfig) -> Any:
            return execute(name, cfg, task, run_folder)

        @functools.wraps(task)  # Hydra names the job after the task's module (train, eval, ...)
        def job(cfg: DictConfig) -> Any:
            objective = cfg.get("objective")
            with console.user_errors(), study_trial() as trial:
                try:
                    record = call(cfg)
                except Exception as e:
                    if not in_multirun() or isinstance(e, FolderTaken):
                        raise
                    log.error(
                        "job failed (%s): %s", " ".join(a for a in sys.argv[1:] if "=" in a), one_line(e)
                    )
                    if trial is not None:
                        trial.finish(None, objective, one_line(e))
                    return None  # the sweep goes on; its summary lists the failure
                if trial is not None:
                    trial.finish(record, objective)
            return objective_value(record, objective) if objective else record

        hydra_job = hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=name)(job)

        def main() -> Any:
            prepare()
            os.environ["HYDRA_FULL_ERROR"] = (
                "1"  # composition errors reach config_error, not Hydra's printout
            )
            try:
                with console.user_errors():  # a sweeper's (a study's storage): one line too
                    return hydra_job()
            except Exception as e:  # noqa: BLE001 - composition errors become one line
                message = config_error(e, name, sys.argv[1:])
                if message is None:
                    raise
                console.print_error(message)
                raise SystemExit(1) from None

        call.main = main
        call.command_name = name
        return call

    return decorate
