"""Run folders on the command line: resume as a relaunch, and no run written over another.

Resume: `train.py resume=true` (the newest run of this task) or
`resume=<run dir>` continues a run in its own folder, from its `last.ckpt`, with its own config.

`ckpt_path=last` is an alias of `resume=true`. Before Hydra starts, `relaunch_argv` turns the
command line into the run's own: its recorded overrides (`.hydra/overrides.yaml`, or those of
its latest resumed session), this command's on top, `resume=<run dir>`, and
`hydra.run.dir=<run dir>` with `hydra.output_subdir=.hydra/resumed_<timestamp>`. So logs,
checkpoints and TensorBoard events continue where they were, Hydra records the config that
actually runs, and the original `.hydra/` stays intact: the same way DDP children are told
their folder (`hwr.utils.ddp.child_command`).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from hwr.errors import HwrError

LAST = Path("checkpoints") / "last.ckpt"
# what `resume=` and `ckpt_path=` say when they ask for the newest run
_NEWEST = ("true", "True", "last")
_OFF = ("null", "false", "False", "")


def newest_run(runs_dir: Path) -> Path | None:
    """The run folder under `runs_dir` whose checkpoints/last.ckpt was written last."""
    found = [p for p in runs_dir.glob(f"*/{LAST}") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime).parents[1] if found else None


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _value(override: str) -> str:
    return override.split("=", 1)[1].strip("'\"") if "=" in override else ""


def _overrides(argv: list[str]) -> list[str]:
    """The `key=value` overrides of a command line (flags such as `--cfg job` left out)."""
    return [a for a in argv if "=" in a and not a.startswith("-")]


def recorded_overrides(folder: Path) -> list[str]:
    """The overrides the run in `folder` last ran with: its latest resumed session's, else its own."""
    sessions = sorted((folder / ".hydra").glob("resumed_*/overrides.yaml"))
    path = sessions[-1] if sessions else folder / ".hydra" / "overrides.yaml"
    return [str(o) for o in OmegaConf.load(path)] if path.is_file() else []


def _runs_dir(config_name: str, overrides: list[str]) -> Path:
    """Where this task's runs are: `<paths.log_dir>/<task_name>/runs`, from the overrides
    that decide it (an experiment sets task_name; a search path may hold it)."""
    from hwr.cli import compose_config  # imported here: hwr.cli imports this module's users

    deciding = [
        o
        for o in overrides
        if _key(o) in ("experiment", "task_name", "hydra.searchpath") or _key(o).startswith("paths.")
    ]
    try:
        cfg = compose_config(config_name, deciding)
    except Exception as e:  # noqa: BLE001 - a bad experiment name: one line, not Hydra's traceback
        raise HwrError(f"resume: cannot compose the config to find the runs ({type(e).__name__}: {e})") from e
    return Path(cfg.paths.log_dir) / str(cfg.task_name) / "runs"


def relaunch_argv(argv: list[str], config_name: str = "train") -> list[str]:
    """`argv` (without the program) as the resumed run's command line; unchanged without resume.

    Raises HwrError when there is nothing to resume, or for a multirun.
    """
    overrides = _overrides(argv)
    asked = {_key(o): _value(o) for o in overrides}
    resume = asked.get("resume")
    if resume in _OFF:
        resume = None
    ckpt_path = asked.get("ckpt_path")
    if resume is None and ckpt_path == "last":
        resume = "true"  # the alias
    if resume is None or "hydra.run.dir" in asked:
        return argv  # no resume, or one already relaunched (a DDP child of a resumed run)
    if ckpt_path not in (None, "last", *_OFF):
        raise HwrError("pass resume=... or ckpt_path=..., not both")
    multirun = any(a in ("-m", "--multirun") for a in argv) or "hparams_search" in asked
    if multirun or asked.get("hydra.mode") == "MULTIRUN":
        raise HwrError("resume= continues one run; an Optuna sweep continues by rerunning its command")
    mine = [o for o in overrides if _key(o) not in ("resume", "ckpt_path")]
    if resume in _NEWEST:
        folder = newest_run(_runs_dir(config_name, mine))
        if folder is None:
            raise HwrError(
                f"resume={resume}: no run under {_runs_dir(config_name, mine)} has {LAST}; "
                "pass resume=<run dir> of a run that saved one"
            )
    else:
        folder = Path(resume)
        if not folder.is_dir():
            raise HwrError(
                f"resume={resume}: there is no such folder; pass a run folder (outputs/<task>/runs/<ts>)"
            )
        if not (folder / LAST).is_file():
            raise HwrError(f"resume={resume}: no {LAST} in {folder}; pass the folder of a run that saved one")
    if any(c in str(folder) for c in "'\\$"):
        raise HwrError(
            f"resume={folder}: a run folder whose path holds ', \\ or $ cannot be resumed; rename it"
        )
    merged = {_key(o): o for o in recorded_overrides(folder) if _key(o) not in ("resume", "ckpt_path")}
    merged.update({_key(o): o for o in mine})  # this command wins
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    others = [a for a in argv if a not in overrides]
    return [
        *others,
        *merged.values(),
        f"resume='{folder}'",
        f"hydra.run.dir='{folder}'",
        f"hydra.output_subdir=.hydra/resumed_{stamp}",
    ]


# What a run leaves in its folder (hwr.utils.run.start_run, Lightning, Hydra)
RUN_FILES = (
    ".hydra",
    "checkpoints",
    "report",
    "tensorboard",
    "metrics.json",
    "config_tree.log",
    "git.json",
    "git.diff",
)


def previous_run(folder: Path) -> list[str]:
    """The signs of a run already in `folder`: its metrics.json, checkpoints or Hydra config."""
    return [name for name in ("metrics.json", "checkpoints", ".hydra") if (folder / name).exists()]


def remove_run(folder: Path, keep: tuple[str, ...] = (), logs: bool = True) -> None:
    """Delete the run files of `folder` (RUN_FILES, and `*.log` with `logs`, but not `keep`);
    nothing else in it."""
    for path in [*(folder / name for name in RUN_FILES), *(folder.glob("*.log") if logs else [])]:
        if path.name in keep or not path.exists():
            continue
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def claim_run_dir(argv: list[str]) -> list[str]:
    """Refuse an explicit `hydra.run.dir=` that holds another run before Hydra writes into it
    (its `.hydra/` would be replaced first), unless the command resumes that run or passes
    `overwrite=true`, which removes the old run's files. `argv` is returned as it is."""
    asked = {_key(o): _value(o) for o in _overrides(argv)}
    folder = asked.get("hydra.run.dir")
    child = asked.get("hydra.output_subdir") == "null" or os.environ.get("LOCAL_RANK", "0") != "0"
    if folder is None or child or asked.get("resume") not in (None, *_OFF):
        return argv  # a new folder, a DDP child of this run, or a resume of it
    found = previous_run(Path(folder))
    if found and asked.get("overwrite") in ("true", "True"):
        remove_run(Path(folder))
    elif found:
        raise HwrError(
            f"hydra.run.dir={folder} holds another run ({', '.join(found)}); use another folder, "
            f"resume={folder} to continue it, or overwrite=true to replace it"
        )
    return argv


def last_checkpoint(cfg: DictConfig) -> str:
    """The `last.ckpt` a resumed run (`cfg.resume`, set by `relaunch_argv`) continues from."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized() and HydraConfig.get().mode.name == "MULTIRUN":
        raise HwrError("resume= continues one run; an Optuna sweep continues by rerunning its command")
    folder, output_dir = Path(str(cfg.resume)), Path(cfg.paths.output_dir)
    if str(cfg.resume) in _NEWEST:
        raise HwrError("resume=true is resolved by train.py's command line; pass resume=<run dir>")
    if cfg.get("ckpt_path") is not None:
        raise HwrError("pass resume=... or ckpt_path=..., not both")
    if folder.resolve() != output_dir.resolve():
        raise HwrError(
            f"resume={folder} continues that folder but this run writes to {output_dir}; "
            f"run `train.py resume={folder}`, which relaunches into it"
        )
    last = folder / LAST
    if not last.is_file():
        raise HwrError(f"resume={folder}: no {LAST} there; pass the folder of a run that saved one")
    return str(last)
