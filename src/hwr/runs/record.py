"""A run's record: what it writes when it starts and the metrics.json it leaves at its end.

`Run` is handed to a command (`hwr train`, `hwr eval`, `hwr baselines`, `hwr explore`) by
hwr.runs.entry once the run folder is claimed. At the start it writes the config that runs
(`.hydra/config.yaml`, `overrides.yaml`; a resumed session's under `.hydra/resumed_<time>/`),
the config tree, the git state and the log file; at the end `finish` writes `metrics.json`
(status, metrics, the report's summary, facts), ends the TensorBoard HPARAMS session and
prints the table and the pointers. Every file goes through the RunFolder: atomic, in the
manifest. A failure, divergence or interrupt is recorded by `fail` / `finish(status=...)`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from hwr.evaluation.report import TestReport
from hwr.runs import console, tables
from hwr.runs.folder import RunFolder
from hwr.runs.sweep import in_multirun
from hwr.runs.tensorboard import end_hparams_session

log = logging.getLogger("hwr")


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Tensors/numbers -> plain floats (NaN dropped), sorted by name."""
    out = {}
    for key, value in metrics.items():
        number = float(value)
        if not math.isnan(number):
            out[key] = number
    return dict(sorted(out.items()))


@functools.cache
def git_state() -> dict[str, Any]:
    """The commit of the hwr checkout this runs from, whether it has uncommitted changes, and
    those changes as a diff ({} for an installed hwr, or without git)."""

    def git(*args: str) -> str:
        here = Path(__file__).resolve().parent
        return subprocess.run(
            ["git", *args], cwd=here, capture_output=True, text=True, check=True, timeout=30
        ).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
        return {"commit": commit, "dirty": dirty, "diff": git("diff", "HEAD") if dirty else ""}
    except (OSError, subprocess.SubprocessError):
        return {}


class Run:
    """One run of a command in its claimed folder (see module docstring).

    A command sets `trainer` (its loggers and test report end the record), `data` and `model`
    (names for the record and the HPARAMS session), and `progress` (what an interrupted run
    records: metrics and facts so far) as it gets them.
    """

    def __init__(
        self, cfg: DictConfig, folder: RunFolder, command: str, overrides: list[str], resumed: bool = False
    ):
        self.cfg, self.folder, self.command, self.overrides = cfg, folder, command, overrides
        self.resumed = resumed
        self.started = time.time()
        self.trainer: Any = None
        self.data: str | None = None
        self.model: str | None = None
        self.num_params: int | None = None
        self.progress: Callable[[], dict[str, Any]] = dict
        self.start_from: tuple[str, dict[str, Any]] | None = None  # a resume's last.ckpt, read once
        self._log_file: logging.Handler | None = None

    @property
    def path(self) -> Path:
        return self.folder.path

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files (not a run's other DDP ranks)."""
        return self.folder.owner

    def start(self) -> None:
        """Write what the run starts from: its config, the config tree, the git state; open the
        log (`train.log`; a DDP rank's own `train_rank<N>.log`, its only file)."""
        name = HydraConfig.get().job.name if HydraConfig.initialized() else self.command
        self._log_file = console.log_to(self.folder, name)
        if not self.writes:
            return
        sub = f".hydra/resumed_{time.strftime('%Y-%m-%d_%H-%M-%S')}" if self.resumed else ".hydra"
        hydra = self.folder.sub(sub)
        hydra.write_text("config.yaml", OmegaConf.to_yaml(self.cfg), "the run's config")
        hydra.write_text(
            "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(self.overrides)), "the run's overrides"
        )
        if HydraConfig.initialized():
            hydra.write_text("hydra.yaml", OmegaConf.to_yaml({"hydra": HydraConfig.get()}), "Hydra's config")
        console.print_config_tree(self.cfg, self.folder, show=bool(self.cfg.get("print_config", False)))
        state = git_state()
        if state:
            info = {"commit": state["commit"], "dirty": state["dirty"]}
            self.folder.write_text("git.json", json.dumps(info, indent=2) + "\n", "the git state")
            if state["dirty"]:
                self.folder.write_text("git.diff", state["diff"], "the uncommitted changes")

    def facts(self, status: str) -> dict[str, Any]:
        """What the record says besides metrics: status, task, tags, data, model, seed, git, overrides."""
        state = git_state()
        return {
            "status": status,
            "task": self.cfg.get("task_name"),
            "tags": list(self.cfg.get("tags") or []),
            "data": self.data,
            "model": self.model,
            "num_params": self.num_params,
            "seed": self.cfg.get("seed"),
            "git_commit": state.get("commit"),
            "git_dirty": state.get("dirty"),
            "overrides": list(self.overrides),
            "output_dir": str(self.path),
            "wall_time_s": round(time.time() - self.started, 1),
        }

    def write_record(self, record: Mapping[str, Any], folder: Any = None) -> Path:
        """Write a record as metrics.json (atomically) into the run folder, or `folder` inside it."""
        out = folder or self.folder
        return out.write_text("metrics.json", json.dumps(dict(record), indent=2) + "\n", "the run record")

    def report(self) -> Any:
        """What the trainer's test report wrote, if it did."""
        callbacks = getattr(self.trainer, "callbacks", [])
        return next((c.report for c in callbacks if isinstance(c, TestReport) and c.report), None)

    def finish(self, metrics: Mapping[str, Any], status: str = "completed", **details: Any) -> dict[str, Any]:
        """The run record: `metrics`, the report's summary, the command's `details` (epochs,
        test_ckpt, ...) and the facts, `status` among them; written to metrics.json, printed
        as a table with the confused pairs and pointers (one line in a multirun), and returned."""
        report = self.report()
        record = {**metrics, **(report.metrics if report else {}), **details, **self.facts(status)}
        if not self.writes:
            return record
        path = self.write_record(record)
        loggers = getattr(self.trainer, "loggers", [])
        objective = self.cfg.get("objective")
        if objective is not None and not isinstance(objective, str):  # two (a study's): the first leads
            objective = str(objective[0])
        if self.data and self.model:
            end_hparams_session(loggers, record, objective, getattr(self.trainer, "global_step", 0))
        self.folder.adopt()
        if in_multirun():  # one line per job: the sweep's summary is the table, at its end
            tables.print_job_line(record, objective, self.path)
        else:
            self.print_end(record, report, objective)
        shown = " ".join(
            f"{k}={v:g}" for k, v in record.items() if isinstance(v, int | float) and not isinstance(v, bool)
        )
        log.info("%s: %s", status, shown, extra=console.FILE_ONLY)
        log.info("run record: %s", path, extra=console.FILE_ONLY)
        return record

    def print_end(self, record: Mapping[str, Any], report: Any, objective: str | None) -> None:
        """The end of a single run on the terminal: confused pairs, metrics, where to look next."""
        if report is not None:
            tables.print_report(report)
        title = f"{self.cfg.get('task_name')}: {self.data} / {self.model}"
        tables.print_metrics(record, title=title, first=objective)
        report_dir = self.path / "report" if (self.path / "report").is_dir() else None
        # the folder of this task's runs (TensorBoard compares them); a folder named on the
        # command line (hydra.run.dir=/tmp/x) is shown alone, not with everything beside it
        runs = self.path.parent if self.path.parent.name in ("runs", "multiruns") else self.path
        tensorboard = runs if (self.path / "tensorboard").is_dir() else None
        tables.print_pointers(self.path / "metrics.json", report_dir, tensorboard)

    def fail(self, message: str, status: str = "failed") -> None:
        """Record a run that ended in an error (`failed`) or a diverged training (`diverged`):
        its status and one-line reason in metrics.json and the log, beside what it got done."""
        if not self.writes:
            return
        log.error("%s: %s", status, message, extra=console.FILE_ONLY)
        earlier: dict[str, Any] = {}  # a resumed run's record: its figures stay beside the failure
        with contextlib.suppress(OSError, ValueError):
            earlier = json.loads((self.path / "metrics.json").read_text()) if self.resumed else {}
        try:
            record = {**earlier, **self.progress(), **self.facts(status), "error": message}
        except Exception:  # noqa: BLE001 - the record of a failure must not fail on the progress
            record = {**earlier, **self.facts(status), "error": message}
        try:
            self.write_record(record)
            self.folder.adopt()
        except Exception as e:  # noqa: BLE001 - a full disk: the error line says what happened
            log.error("the failure could not be recorded in %s (%s)", self.path / "metrics.json", e)

    def close(self) -> None:
        if self._log_file is not None:
            console.close_log(self._log_file)
            self._log_file = None
