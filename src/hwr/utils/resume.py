"""`train.py resume=true` (the newest run of this task; `ckpt_path=last` says the same) or
`resume=<run dir>`: continue a run in its own folder, from its `last.ckpt`, with its own config.

The run folder is decided before Hydra creates one: `hydra.run.dir` in configs/hydra/default.yaml
goes through the `hwr_run_dir` resolver, which returns the folder being resumed. So logs,
checkpoints and TensorBoard events continue where they were, and Hydra's files for the
resumed session go to `.hydra/resumed_<timestamp>/`, leaving the original `.hydra/` intact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from hwr.errors import HwrError

LAST = Path("checkpoints") / "last.ckpt"


def _wants_resume(resume: Any) -> bool:
    return resume not in (None, False, "", "null", "false", "False")


def newest_run(runs_dir: Path) -> Path | None:
    """The run folder under `runs_dir` whose checkpoints/last.ckpt was written last."""
    found = [p for p in runs_dir.glob(f"*/{LAST}") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime).parents[1] if found else None


def run_dir(new_dir: str, resume: Any, ckpt_path: Any = None) -> str:
    """Resolver for hydra.run.dir: `new_dir` for a new run, else the folder to continue."""
    if ckpt_path == "last":
        resume = True
    if not _wants_resume(resume):
        return new_dir
    if resume is True or str(resume).lower() == "true":
        found = newest_run(Path(new_dir).parent)
        return str(found) if found else new_dir  # train() then says nothing can be resumed
    return str(resume)


def output_subdir(resume: Any, stamp: str, ckpt_path: Any = None) -> str:
    """Resolver for hydra.output_subdir: a resumed session does not overwrite the original's files."""
    return f".hydra/resumed_{stamp}" if _wants_resume(resume) or ckpt_path == "last" else ".hydra"


def sqlite_url(path: str) -> str:
    """Resolver for an Optuna storage: `sqlite:///<absolute path>`, its folder created first
    (the study is opened before Hydra creates the sweep folder)."""
    file = Path(path).absolute()
    file.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{file}"


def register_resolvers() -> None:
    """The resolvers hwr's configs use for run folders (call before Hydra composes a config)."""
    OmegaConf.register_new_resolver("hwr_sqlite", sqlite_url, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("hwr_run_dir", run_dir, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("hwr_output_subdir", output_subdir, use_cache=True, replace=True)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def resume_config(cfg: DictConfig) -> tuple[DictConfig, str]:
    """(config of the run being resumed with this command's overrides on top, its last.ckpt).

    Without Hydra running (tests composing a config) the config is returned as it is.
    """
    folder = Path(cfg.paths.output_dir)
    last = folder / LAST
    if not last.is_file():
        raise HwrError(
            f"resume={cfg.resume}: no {LAST} in {folder}; pass resume=<run dir> of a run that saved "
            f"one (runs are under {Path(cfg.paths.log_dir) / cfg.task_name / 'runs'})"
        )
    if cfg.get("ckpt_path") not in (None, "last"):
        raise HwrError("pass resume=... or ckpt_path=..., not both")
    if not HydraConfig.initialized():
        return cfg, str(last)
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode.name == "MULTIRUN":
        raise HwrError("resume= continues one run; an Optuna sweep continues by rerunning its command")
    original_file = folder / ".hydra" / "overrides.yaml"
    original = list(OmegaConf.load(original_file)) if original_file.is_file() else []
    merged = {_key(o): o for o in original if _key(o) not in ("resume", "ckpt_path")}
    merged["resume"] = f"resume={cfg.resume}"
    merged.update({_key(o): o for o in hydra_cfg.overrides.task})  # this command wins
    resumed = compose(config_name=hydra_cfg.job.config_name, overrides=list(merged.values()))
    # Hydra saved the config of this command line; record the one that actually runs.
    saved = Path(hydra_cfg.runtime.output_dir) / str(hydra_cfg.output_subdir)
    if saved.is_dir():
        OmegaConf.save(resumed, saved / "config.yaml")
        OmegaConf.save(OmegaConf.create(list(merged.values())), saved / "overrides.yaml")
    return resumed, str(last)
