"""Run bookkeeping shared by train.py and eval.py: build the trainer, claim the run folder,
write metrics.json and print the run's summary."""

from __future__ import annotations

import functools
import json
import logging
import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import rich
import rich.table
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from hwr.casefold import GroupedMetrics
from hwr.errors import FolderTaken, HwrError
from hwr.report import TestReport
from hwr.utils.config import print_config_tree
from hwr.utils.resume import previous_run, remove_run
from hwr.utils.tensorboard import end_hparams_session

log = logging.getLogger("hwr")
run_log = logging.getLogger("hwr.run")  # the run's log file only (log_to_run_file)
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def instantiate_group(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a config group dict (callbacks/loggers); null entries are skipped."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if c and "_target_" in c]


def build_trainer(cfg: DictConfig, **overrides: Any) -> L.Trainer:
    """The Trainer of `cfg.trainer` (with `overrides`) and the callbacks and loggers of `cfg`;
    GroupedMetrics (case-folded and per-source accuracy) and, with `report` on (the default),
    a TestReport that writes the report of `trainer.test`."""
    accelerator = str(overrides.get("accelerator") or cfg.trainer.get("accelerator") or "auto")
    if accelerator not in ("auto", "cpu", "gpu", "cuda", "mps"):
        raise HwrError(f"trainer.accelerator={accelerator} is not one hwr runs on; use auto, cpu or gpu")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise HwrError(
            f"trainer.accelerator={accelerator} but torch sees no CUDA GPU on this machine; "
            "use trainer=default (a GPU when there is one, else the CPU) or trainer=cpu"
        )
    callbacks = [*instantiate_group(cfg.get("callbacks")), GroupedMetrics()]
    if cfg.get("report", True):
        callbacks.append(TestReport(cfg.paths.output_dir))
    return hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=instantiate_group(cfg.get("logger")) or False, **overrides
    )


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Tensors/numbers -> plain floats (NaN dropped), sorted by name."""
    out = {}
    for key, value in metrics.items():
        number = float(value)
        if not math.isnan(number):
            out[key] = number
    return dict(sorted(out.items()))


def hydra_overrides() -> list[str]:
    """The command-line overrides of this run (empty outside a Hydra app)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


@functools.cache
def git_state() -> dict[str, Any]:
    """The commit of the hwr checkout this runs from, whether it has uncommitted changes, and
    those changes as a diff ({} when it is not a git checkout or git is missing)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=30
        ).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
        return {"commit": commit, "dirty": dirty, "diff": git("diff", "HEAD") if dirty else ""}
    except (OSError, subprocess.SubprocessError):
        return {}


# Loggers whose records the run's log file (Hydra's `<run>/<task>.log`) also gets: Lightning's
# (it stops them at its own terminal handler) and hwr's file-only one (epoch lines, the record).
RUN_FILE_LOGGERS = ("lightning.pytorch", "lightning.fabric", "hwr.run")


def log_to_run_file() -> None:
    """Attach the root logger's file handlers (this job's log file) to RUN_FILE_LOGGERS, in
    place of a previous multirun job's, so `train.log` holds more than an empty file."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    for name in RUN_FILE_LOGGERS:
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
            logger.removeHandler(handler)  # a closed file would reopen and take this job's lines
        for handler in files:
            logger.addHandler(handler)
        logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
    run_log.propagate = False  # the terminal shows the same in the progress bar and the table


def start_run(cfg: DictConfig) -> Path:
    """Create the run folder, print the config tree and save it there with the git state
    (`git.json`, plus `git.diff` when the checkout has uncommitted changes); return the folder.

    Hydra saves the composed config (`.hydra/config.yaml`); together they reproduce the run.
    """
    output_dir = Path(cfg.paths.output_dir)
    if rank_zero_only.rank != 0:  # DDP ranks 1..N-1 share rank 0's folder and leave it to it
        return output_dir
    if "overwrite" in cfg and not cfg.get("resume"):
        # Two runs in one folder (two commands in the same second, or one pointed at another's
        # folder): the second would replace the first's metrics and mix their checkpoints.
        found = [name for name in previous_run(output_dir) if name != ".hydra"]  # Hydra's is ours
        if found and not cfg.overwrite:
            raise FolderTaken(
                f"{output_dir} holds another run ({', '.join(found)}); use another folder, "
                "resume=<that folder> to continue it, or overwrite=true to replace it"
            )
        if found:
            remove_run(output_dir, keep=(".hydra",), logs=False)  # Hydra's and this run's own
    output_dir.mkdir(parents=True, exist_ok=True)
    log_to_run_file()
    print_config_tree(cfg, save_to=output_dir / "config_tree.log")
    state = git_state()
    if state:
        info = {"commit": state["commit"], "dirty": state["dirty"]}
        (output_dir / "git.json").write_text(json.dumps(info, indent=2) + "\n")
        if state["dirty"]:
            (output_dir / "git.diff").write_text(state["diff"])
    return output_dir


def report_summary(trainer: L.Trainer) -> dict[str, float]:
    """The test report's summary (macro F1 of the report, worst classes, ...) when `trainer` tested."""
    summary: dict[str, float] = {}
    for callback in trainer.callbacks:
        if isinstance(callback, TestReport):
            summary.update(callback.metrics)
    return summary


def run_facts(
    cfg: DictConfig, data_name: str, model: L.LightningModule, started: float, status: str = "completed"
) -> dict[str, Any]:
    """What the run record says besides metrics: status, task, tags, data, model, seed, git, overrides."""
    state = git_state()
    return {
        "status": status,
        "task": cfg.task_name,
        "tags": list(cfg.get("tags") or []),
        "data": data_name,
        "model": type(model.net).__name__,
        "num_params": sum(p.numel() for p in model.parameters()),
        "seed": cfg.get("seed"),
        "git_commit": state.get("commit"),
        "git_dirty": state.get("dirty"),
        "overrides": hydra_overrides(),
        "output_dir": str(cfg.paths.output_dir),
        "wall_time_s": round(time.time() - started, 1),
    }


def finish_run(
    cfg: DictConfig,
    data_name: str,
    model: L.LightningModule,
    trainer: L.Trainer,
    metrics: dict[str, Any],
    started: float,
    status: str = "completed",
    **details: Any,
) -> dict[str, Any]:
    """The run record: `metrics`, the test report's summary, the entry point's `details`
    (epochs, test_ckpt, ...) and the run's facts, `status` among them (completed,
    interrupted, untrained); written to metrics.json, printed as a table and returned."""
    facts = run_facts(cfg, data_name, model, started, status)
    record = {**metrics, **report_summary(trainer), **details, **facts}
    path = write_metrics(cfg.paths.output_dir, record)
    end_hparams_session(trainer.loggers, record, cfg.get("objective"), trainer.global_step)
    print_metrics(
        record, title=f"{cfg.task_name}: {data_name} / {record['model']}", first=cfg.get("objective")
    )
    output_dir = Path(cfg.paths.output_dir)
    numbers = {k: v for k, v in record.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    run_log.info("%s: %s", record["status"], " ".join(f"{k}={v:g}" for k, v in numbers.items()))
    run_log.info("run record: %s", path)
    # plain print, not rich: a long path must stay one line a terminal can copy
    print(f"run record: {path}")
    if (output_dir / "report").is_dir():
        print(f"report:     {output_dir / 'report'}/")
    if (output_dir / "tensorboard").is_dir():
        print(f"tensorboard --logdir {output_dir.parent}")
    return record


@contextmanager
def interruptible(
    record: Callable[[], Any], hint: Callable[[], str] = lambda: "run it again"
) -> Iterator[None]:
    """Exit 143 on SIGTERM and 130 on Ctrl-C after `record()` (which writes the run's
    metrics.json with status `interrupted`), as shells, SLURM and job schedulers expect, and
    print `hint()`: what to do next (train.py: the resume command, when there is a last.ckpt).

    Lightning turns SIGTERM into SIGTERMException, a SystemExit without a code (exit status 0:
    a preempted job would count as a success), and Ctrl-C into `sys.exit(1)` once it has shut
    down. Its last.ckpt of the last finished epoch stays, so the run can be resumed.
    """
    try:
        yield
    except (SystemExit, KeyboardInterrupt) as e:
        if isinstance(e, SIGTERMException):
            code = 143
        elif isinstance(e, KeyboardInterrupt) or e.code == 1:
            code = 130
        else:
            raise
        record()
        print(f"interrupted ({'SIGTERM' if code == 143 else 'Ctrl-C'}); {hint()}", file=sys.stderr)
        raise SystemExit(code) from None


def write_metrics(output_dir: str | Path, metrics: Mapping[str, Any]) -> Path:
    """Write `<output_dir>/metrics.json`, the file scripts and sweeps read results from."""
    path = Path(output_dir) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    return path


def print_metrics(metrics: Mapping[str, Any], title: str, first: str | None = None) -> None:
    """Print the numeric metrics as a table: `first` (the objective) and test/acc at the top,
    accuracies and F1 scores as percentages."""
    order = [k for k in (first, "test/acc") if k and k in metrics]
    order += [k for k in metrics if k not in order]
    table = rich.table.Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in order:
        value = metrics[key]
        if isinstance(value, bool):
            continue
        if isinstance(value, float) and any(k in key for k in ("acc", "f1", "precision", "recall")):
            table.add_row(key, f"{100 * value:.2f}%")
        elif isinstance(value, float) and key.startswith("lr"):
            table.add_row(key, f"{value:.2e}")
        elif isinstance(value, float):
            table.add_row(key, f"{value:.4f}")
        elif isinstance(value, int):
            table.add_row(key, str(value))
    rich.print(table)
