"""Run bookkeeping shared by train.py and eval.py: build the trainer, log hparams, write
metrics.json, and turn user errors into one-line messages."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import rich
import rich.table
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from omegaconf import DictConfig
from torch.utils.tensorboard.summary import hparams as hparams_summary

from hwr.errors import HwrError

log = logging.getLogger("hwr")

# The metrics the HPARAMS tab shows next to each run's hyperparameters.
HPARAM_METRICS = ("val/acc_best", "test/acc", "test/f1")


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn HwrError into a one-line message on stderr and exit status 1."""
    try:
        yield
    except HwrError as e:
        raise SystemExit(f"error: {e}") from None


def instantiate_group(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a config group dict (callbacks/loggers); null entries are skipped."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if c and "_target_" in c]


def build_trainer(cfg: DictConfig) -> L.Trainer:
    """The Trainer of `cfg.trainer` with the callbacks and loggers of `cfg`."""
    return hydra.utils.instantiate(
        cfg.trainer,
        callbacks=instantiate_group(cfg.get("callbacks")),
        logger=instantiate_group(cfg.get("logger")) or False,
    )


def log_hparams(loggers: list[Logger], params: Mapping[str, Any]) -> None:
    """Declare the run's hyperparameters and its result metrics to TensorBoard's HPARAMS tab.

    Only the metric names are written here; their values come from the scalars the run logs
    (val/acc_best, test/acc, ...), so a run never shows a placeholder such as hp_metric = -1.
    """
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            writer = logger.experiment._get_file_writer()
            for summary in hparams_summary(dict(params), dict.fromkeys(HPARAM_METRICS, 0.0)):
                writer.add_summary(summary)
            writer.flush()


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Tensors/numbers -> plain floats (NaN dropped), sorted by name."""
    out = {}
    for key, value in metrics.items():
        number = float(value)
        if not math.isnan(number):
            out[key] = number
    return dict(sorted(out.items()))


def write_metrics(output_dir: str | Path, metrics: Mapping[str, Any]) -> Path:
    """Write `<output_dir>/metrics.json`, the file scripts and sweeps read results from."""
    path = Path(output_dir) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    return path


def print_metrics(metrics: Mapping[str, Any], title: str) -> None:
    """Print the numeric metrics as a table."""
    table = rich.table.Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.4f}")
        elif isinstance(value, int):
            table.add_row(key, str(value))
    rich.print(table)
