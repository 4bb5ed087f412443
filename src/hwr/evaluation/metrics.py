"""The one registry of metrics: what each is called, which way is better, how it is shown, and
where it appears (the end-of-run table, TensorBoard's HPARAMS tab, the sweep summary and the
results table all read `METRICS`).

Adding a metric is one `Metric` entry here plus its computation: `build_metrics` for the
torchmetrics of validation and test, `hwr.evaluation.casefold` for case-folded accuracy,
`hwr.evaluation.report.summary_metrics` for what the report adds.

    lookup("test/english/acc")   # a per-source key reads as test/acc
    lookup("start/acc")          # what init_from started from: test/acc at the start
    show("test/acc", 0.8802)     # "88.02%"
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score


@dataclass(frozen=True)
class Metric:
    """One metric and where it appears.

    name: the key in metrics.json and TensorBoard (`test/acc`).
    display: what a person reads (`test accuracy`).
    direction: "max" or "min" (which way is better), None for facts such as epochs.
    fmt: "percent" (a fraction shown as 88.02%), "float", "int", "seconds" or "sci".
    hparams: one of the HPARAMS tab's metrics (after the run's objective; the tab shows five).
    summary: a column of the sweep summary. results: a column of `scripts/results.py`.
    optional: such a column is shown only when some row has a value (MNIST has no casefold).
    """

    name: str
    display: str
    direction: str | None = "max"
    fmt: str = "percent"
    hparams: bool = False
    summary: bool = False
    results: bool = False
    optional: bool = False


METRICS: tuple[Metric, ...] = (
    Metric("val/acc_best", "best validation accuracy", summary=True, results=True),
    Metric("test/acc", "test accuracy", hparams=True, summary=True, results=True),
    Metric("test/f1", "test macro F1", results=True),
    Metric(
        "test/acc_casefold",
        "test accuracy, case-folded",
        hparams=True,
        summary=True,
        results=True,
        optional=True,
    ),
    Metric("test/acc_top5", "test top-5 accuracy"),
    Metric("test/f1_macro", "test macro F1 (report)", hparams=True),
    Metric("test/loss", "test loss", "min", "float"),
    Metric("train/loss", "training loss", "min", "float", hparams=True),
    Metric("train/acc", "training accuracy"),
    Metric("val/acc", "validation accuracy"),
    Metric("val/acc_casefold", "validation accuracy, case-folded"),
    Metric("val/f1", "validation macro F1"),
    Metric("val/acc_top5", "validation top-5 accuracy"),
    Metric("val/loss", "validation loss", "min", "float"),
    Metric("test/precision_macro", "test macro precision"),
    Metric("test/recall_macro", "test macro recall"),
    Metric("test/precision_micro", "test micro precision"),
    Metric("test/recall_micro", "test micro recall"),
    Metric("test/f1_micro", "test micro F1"),
    Metric("test/error_share_casefold", "share of errors that are case or look-alike confusions", "min"),
    Metric("train_time_s", "training seconds", "min", "seconds", hparams=True),
    Metric("epochs", "epochs", None, "int", summary=True, results=True),
    Metric("wall_time_s", "wall seconds", "min", "seconds", summary=True, results=True),
)
BY_NAME = {m.name: m for m in METRICS}
_PER_SOURCE = re.compile(r"^(val|test)/[^/]+/(.+)$")  # test/english/acc -> test/acc


def lookup(name: str) -> Metric | None:
    """The registry entry of a metric name; per-source keys (`test/<source>/acc`) read as the
    plain one, and lr-* keys (LearningRateMonitor) as a learning rate."""
    if name in BY_NAME:
        return BY_NAME[name]
    if match := _PER_SOURCE.match(name):
        plain = BY_NAME.get(f"{match[1]}/{match[2]}")
        if plain is not None:
            return Metric(name, f"{plain.display}, {name.split('/')[1]}", plain.direction, plain.fmt)
    if name.startswith("lr-"):
        return Metric(name, "learning rate", None, "sci")
    if name.startswith("start/"):  # the weights init_from started from, on the same test split
        plain = lookup("test/" + name.removeprefix("start/"))
        if plain is not None:
            return Metric(name, f"{plain.display} at the start (init_from)", plain.direction, plain.fmt)
    return None


def show(name: str, value: Any) -> str:
    """A value as a person reads it: fractions as percentages, seconds to 0.1 s."""
    metric = lookup(name)
    fmt = metric.fmt if metric is not None else ("int" if isinstance(value, int) else "float")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if fmt == "percent":
        return f"{100 * value:.2f}%"
    if fmt == "seconds":
        return f"{value:.1f} s"
    if fmt == "sci":
        return f"{value:.2e}"
    if fmt == "int":
        return str(int(value))
    return f"{value:.4f}"


def columns(where: str) -> list[str]:
    """The metric columns of a table: `summary` (sweep) or `results`."""
    return [m.name for m in METRICS if getattr(m, where)]


def optional_columns() -> set[str]:
    return {m.name for m in METRICS if m.optional}


def hparams_metrics() -> list[str]:
    """The metrics of a run's HPARAMS session, after its objective, in this order."""
    return [m.name for m in METRICS if m.hparams]


def build_metrics(num_classes: int) -> MetricCollection:
    """The torchmetrics of validation and test: accuracy, macro F1 and (over 5 classes) top-5.

    `validate_args=False`: the checks read two values back to the host on every update, and
    the inputs here are always logits and in-range targets.
    """
    options: dict[str, Any] = {"validate_args": False}
    metrics: dict[str, Any] = {
        "acc": MulticlassAccuracy(num_classes, average="micro", **options),
        "f1": MulticlassF1Score(num_classes, average="macro", **options),
    }
    if num_classes > 5:
        metrics["acc_top5"] = MulticlassAccuracy(num_classes, top_k=5, average="micro", **options)
    return MetricCollection(metrics)


def log_eval_batch(
    module: L.LightningModule,
    stage: str,
    metrics: MetricCollection,
    scores: torch.Tensor,
    y: torch.Tensor,
    label_smoothing: float = 0.0,
) -> None:
    """Update `metrics` with one batch's scores (logits or log-probabilities) and log
    `<stage>/loss` and the metrics as epoch values (validation, and the test pass)."""
    loss = F.cross_entropy(scores, y, label_smoothing=label_smoothing)
    metrics.update(scores, y)
    # Epoch means under plain names (val/loss, test/loss), comparable across runs; under DDP
    # averaged over the processes once per epoch (metrics objects sync themselves).
    module.log(
        f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True
    )
    # Logging the MetricCollection lets Lightning compute + reset it once per epoch. The bar
    # shows accuracy alone beside the losses: a line longer than the terminal is redrawn twice.
    for key, metric in metrics.items():
        module.log(f"{stage}/{key}", metric, on_step=False, on_epoch=True, prog_bar=key == "acc")


def numbers(record: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of a record (bools left out)."""
    return {k: v for k, v in record.items() if isinstance(v, int | float) and not isinstance(v, bool)}
