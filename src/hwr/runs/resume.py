"""Resume, resolved once, after the config is composed.

`hwr train resume=<run dir>` (or `resume=true`: the newest run of this task; `ckpt_path=last`
is the same, and with an explicit `hydra.run.dir=<dir>` means that folder) continues a run in
its own folder from its `checkpoints/last.ckpt`. The config that runs is the run's own: the
overrides it last ran with, this command's on top, composed again. It is compared with the
config the run last recorded: a change to the network or the data (RESUME_REFUSES) is refused
with one line naming the keys, and nothing is written; a change that only extends the
schedule or says where and how the run executes (RESUME_ALLOWS) goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from hwr.config import compose_config
from hwr.errors import HwrError
from hwr.inference.checkpoint import read_checkpoint

LAST = Path("checkpoints") / "last.ckpt"
NEWEST = ("true", "last")
OFF = (None, "null", "false", "False", "", False)
# What a resumed run may change (docs/guide.md, "Resume"): it extends the schedule, or says where and
# how the run executes. Anything else that differs from the run's recorded config is refused.
RESUME_ALLOWS = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.max_time",
    "trainer.min_epochs",
    "trainer.min_steps",
    "trainer.limit_val_batches",
    "trainer.limit_test_batches",
    "trainer.check_val_every_n_epoch",
    "trainer.log_every_n_steps",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer.enable_progress_bar",
    "callbacks.progress_bar*",
    "callbacks.early_stopping*",
    "data.num_workers",
    "data.pin_memory",
    "data.on_device",
    "data.eval_batch_size",
    "data.decode_workers",
    "data.data_dir",
    "data.cache_dir",
    "data.sources.*.data_dir",
    "paths.*",
    "model.compile",
    "tags",
    "report",
    "test",
    "resume",
    "ckpt_path",
    "hydra.*",
)
# named in the refusal as what changes the network or the data
RESUME_REFUSES = ("model.net.*", "data._target_", "data.split", "data.classes", "data.image_size")


@dataclass
class Plan:
    """Where a run writes and how: a new run, or the resumed run in `folder`."""

    cfg: DictConfig
    folder: Path
    resume: bool = False
    explicit: bool = False  # the command named the folder (hydra.run.dir=...): it is never renamed
    overrides: list[str] = field(default_factory=list)
    checkpoint: Path | None = None
    state: dict[str, Any] | None = None  # the checkpoint, read once here


def schedule_fits(state: dict[str, Any], cfg: DictConfig, path: Path) -> None:
    """Refuse a resume that would train past the end of the checkpoint's one-cycle schedule,
    whose length was fixed when it began (more epochs cannot stretch it)."""
    schedulers = state.get("lr_schedulers") or []
    total = schedulers[0].get("total_steps") if schedulers else None
    epochs_done = int(state.get("epoch", 0)) + 1  # last.ckpt is saved after an epoch's validation
    max_epochs = cfg.trainer.get("max_epochs")
    if total is None or not isinstance(max_epochs, int) or max_epochs < 0 or not state.get("global_step"):
        return
    needed = int(state["global_step"]) // epochs_done * max_epochs
    if needed > total:
        raise HwrError(
            f"trainer.max_epochs={max_epochs} needs about {needed} steps but {path}'s one-cycle "
            f"schedule ends after {total}: a one-cycle run cannot be made longer; resume with its own "
            "trainer.max_epochs"
        )


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def command_overrides() -> tuple[list[str], list[str]]:
    """(this command's config overrides, its hydra.* overrides); empty outside a Hydra app."""
    if not HydraConfig.initialized():
        return [], []
    overrides = HydraConfig.get().overrides
    return list(overrides.task), list(overrides.hydra)


def latest_record(folder: Path, name: str) -> Path:
    """`.hydra/<name>` of the run's latest session: its latest resume's, else its own."""
    sessions = sorted((folder / ".hydra").glob(f"resumed_*/{name}"))
    return sessions[-1] if sessions else folder / ".hydra" / name


def recorded_overrides(folder: Path) -> list[str]:
    """The overrides the run in `folder` last ran with."""
    path = latest_record(folder, "overrides.yaml")
    return [str(o) for o in OmegaConf.load(path)] if path.is_file() else []


def recorded_config(folder: Path) -> DictConfig | None:
    """The config the run in `folder` last ran with."""
    path = latest_record(folder, "config.yaml")
    return OmegaConf.load(path) if path.is_file() else None


def newest_run(runs_dir: Path) -> Path | None:
    """The run folder under `runs_dir` whose checkpoints/last.ckpt was written last."""
    found = [p for p in runs_dir.glob(f"*/{LAST}") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime).parents[1] if found else None


def plain(cfg: DictConfig) -> dict[str, Any]:
    """A config as plain values, with what says where it runs (paths) left unresolved."""
    container = OmegaConf.to_container(cfg, resolve=False)
    return _flatten(container)


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out or {prefix: {}}
    return {prefix: node}


def _same(key: str, a: Any, b: Any) -> bool:
    if a == b:
        return True
    # a class that moved between modules (an hwr upgrade) is the same class
    return (
        key.endswith("_target_")
        and isinstance(a, str)
        and isinstance(b, str)
        and a.split(".")[-1] == b.split(".")[-1]
    )


def changed_keys(before: DictConfig, after: DictConfig) -> list[str]:
    """The keys whose value differs between two configs (added and removed ones too)."""
    a, b = plain(before), plain(after)
    return sorted(k for k in set(a) | set(b) if not _same(k, a.get(k, "<absent>"), b.get(k, "<absent>")))


def refused(keys: list[str]) -> list[str]:
    return [k for k in keys if not any(fnmatchcase(k, pattern) for pattern in RESUME_ALLOWS)]


def resolve(cfg: DictConfig, config_name: str) -> Plan:
    """The plan of a command: a new run in Hydra's folder, or a resume (see module docstring)."""
    task, hydra = command_overrides()
    output_dir = Path(cfg.paths.output_dir)
    # a folder the command named is never renamed when taken: it is refused
    named = any(_key(o) in ("hydra.run.dir", "hydra.sweep.dir") for o in hydra)
    explicit = named or not HydraConfig.initialized()
    resume = cfg.get("resume")
    if resume in OFF and cfg.get("ckpt_path") == "last":
        resume = "true"  # ckpt_path=last is resume=true
    if resume in OFF:
        return Plan(cfg, output_dir, explicit=explicit, overrides=task)
    try:
        spelled = str(resume).lower() if isinstance(resume, bool) else str(resume)  # true, not True
        return _resumed(cfg, config_name, spelled, output_dir, explicit, task)
    finally:  # the fresh folder Hydra made for this command: the run goes on elsewhere, or not at all
        if not explicit and output_dir.is_dir() and not any(output_dir.iterdir()):
            output_dir.rmdir()


def _resumed(
    cfg: DictConfig, config_name: str, resume: str, output_dir: Path, explicit: bool, task: list[str]
) -> Plan:
    """The plan of a resume: its folder, and the config it continues with (checked)."""
    if HydraConfig.initialized() and HydraConfig.get().mode.name == "MULTIRUN":
        raise HwrError("resume= continues one run; an Optuna study continues by rerunning its command")
    if resume in NEWEST:
        if explicit:
            folder = output_dir  # ckpt_path=last hydra.run.dir=<dir>: that folder
        else:
            runs = output_dir.parent
            folder = newest_run(runs)
            if folder is None:
                raise HwrError(
                    f"resume={resume}: no run under {runs} has {LAST}; "
                    "pass resume=<run dir> of a run that saved one"
                )
    else:
        folder = Path(resume)
        if not folder.is_dir():
            raise HwrError(
                f"resume={resume}: there is no such folder; pass a run folder (outputs/<task>/runs/<ts>)"
            )
    if not (folder / LAST).is_file():
        raise HwrError(f"resume={folder}: no {LAST} there; pass the folder of a run that saved one")
    if HydraConfig.initialized():  # a command line: the run's own, this command's on top
        mine = [o for o in task if _key(o) not in ("resume", "ckpt_path")]
        merged = {_key(o): o for o in recorded_overrides(folder) if _key(o) not in ("resume", "ckpt_path")}
        merged.update({_key(o): o for o in mine})  # this command wins
        overrides = [*merged.values(), f"resume={folder}"]
        resumed = compose_config(config_name, overrides)
    else:  # a config composed by the caller (tests, notebooks) is the whole request
        overrides, resumed = [], cfg.copy()
    with open_dict(resumed):
        resumed.paths.output_dir = str(folder.absolute())
        resumed.resume = str(folder)
        if resumed.get("ckpt_path") == "last":
            resumed.ckpt_path = None
    before = recorded_config(folder)
    if before is not None:
        with open_dict(before):
            before.paths.output_dir = str(folder.absolute())
        bad = refused(changed_keys(before, resumed))
        if bad:
            shown = ", ".join(bad[:6]) + (" ..." if len(bad) > 6 else "")
            raise HwrError(
                f"resume={folder} would change {shown}, which the run was not trained with; a resume "
                "continues the same run (it may only extend the schedule: docs/guide.md, Resume). "
                "Drop those, "
                f"or start a new run from its weights with ckpt_path={folder / LAST}"
            )
    folder = folder.absolute()
    state = read_checkpoint(folder / LAST, "resume")
    schedule_fits(state, resumed, folder / LAST)
    return Plan(resumed, folder, True, True, overrides, folder / LAST, state)
