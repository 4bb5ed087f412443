"""Evaluation report: confusion matrix, per-class scores, most-confused pairs, mistakes.

`TestReport`, a callback that train.py and eval.py add to their Trainer, keeps the one pass
of test predictions, so nothing is predicted twice, and writes the report when testing ends:
files under `<run_dir>/report/` and the same images in TensorBoard, at the run's last step.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rich
import rich.table
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from torchmetrics.functional.classification import (
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from hwr.casefold import fold_error_share, fold_members, grouped_accuracy
from hwr.names import labelled, lookalike_names
from hwr.report_figures import plot_confusion, plot_confusion_zoom, plot_mistakes, plot_per_class

TOP_PAIRS = 20
MAX_MISTAKES = 512  # mistakes whose images the test pass keeps


@dataclass
class TestOutputs:
    """What a test pass leaves for the report: probabilities [N, C], targets [N], and the
    images of the first mistakes (as the model saw them), with their positions."""

    probs: torch.Tensor
    targets: torch.Tensor
    mistake_images: torch.Tensor
    mistake_index: torch.Tensor


def per_class_table(probs: torch.Tensor, targets: torch.Tensor, names: list[str]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support of every class, in class order (the order of
    confusion_matrix.csv, so runs diff line by line); `plot_per_class` sorts by F1."""
    c = len(names)
    scores = {
        "precision": multiclass_precision(probs, targets, c, average=None),
        "recall": multiclass_recall(probs, targets, c, average=None),
        "f1": multiclass_f1_score(probs, targets, c, average=None),
    }
    support = torch.bincount(targets, minlength=c)
    return [
        {"class": name, **{k: round(float(v[i]), 4) for k, v in scores.items()}, "support": int(support[i])}
        for i, name in enumerate(names)
    ]


def confused_pairs(matrix: torch.Tensor, names: list[str], top: int = TOP_PAIRS) -> list[dict[str, Any]]:
    """The `top` most frequent (true -> predicted) mistakes, with their share of the true class."""
    off = matrix.clone()
    off.fill_diagonal_(0)
    support = matrix.sum(dim=1)
    order = torch.argsort(off.flatten(), descending=True)[:top]
    rows = []
    for flat in order.tolist():
        t, p = divmod(flat, matrix.shape[1])
        count = int(off[t, p])
        if count == 0:
            break
        share = count / max(int(support[t]), 1)
        rows.append({"true": names[t], "predicted": names[p], "count": count, "share": round(share, 4)})
    return rows


def summary_metrics(probs: torch.Tensor, targets: torch.Tensor, c: int) -> dict[str, float]:
    """Macro and micro precision/recall/F1 over the test set."""
    out = {}
    for average in ("macro", "micro"):
        out[f"test/precision_{average}"] = float(multiclass_precision(probs, targets, c, average=average))
        out[f"test/recall_{average}"] = float(multiclass_recall(probs, targets, c, average=average))
        out[f"test/f1_{average}"] = float(multiclass_f1_score(probs, targets, c, average=average))
    return out


def _write_csv(path: Path, rows: list[dict[str, Any]], header: list[str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def write_report(
    outputs: TestOutputs,
    names: list[str],
    output_dir: str | Path,
    loggers: list[Logger] = (),
    step: int = 0,
    spans: Sequence[tuple[str, int, int]] = (),
) -> dict[str, float]:
    """Write the report files to `<output_dir>/report/`, log the figures to TensorBoard at
    `step` (the run's last global step), print the confused pairs; return the summary
    metrics for metrics.json. CSV files keep bare class labels; people-facing text names
    look-alikes. `spans` (name, start, stop): the test set's sources, each scored in
    `sources.csv`."""
    from PIL import Image

    folder = Path(output_dir) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    c = len(names)
    matrix = multiclass_confusion_matrix(outputs.probs, outputs.targets, c)
    with open(folder / "confusion_matrix.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *names])
        writer.writerows([name, *map(int, row)] for name, row in zip(names, matrix, strict=True))
    table = per_class_table(outputs.probs, outputs.targets, names)
    _write_csv(folder / "per_class.csv", table, ["class", "precision", "recall", "f1", "support"])
    pairs = confused_pairs(matrix, names)
    _write_csv(folder / "confusions.csv", pairs, ["true", "predicted", "count", "share"])

    figures = {
        "confusion_matrix": plot_confusion(matrix, names),
        "confusion_zoom": plot_confusion_zoom(matrix, names, pairs) if c > 20 else None,
        "per_class": plot_per_class(table),
        "misclassified": plot_mistakes(outputs, names),
    }
    tensorboards = [lg for lg in loggers if isinstance(lg, TensorBoardLogger)]
    for name, fig in figures.items():
        if fig is None:
            continue
        fig.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
        # TensorBoard gets the saved PNG itself: the same pixels, margins trimmed, full size
        # (add_figure would redraw it untrimmed at the figure's own dpi)
        image = np.asarray(Image.open(folder / f"{name}.png").convert("RGB"))
        for logger in tensorboards:
            logger.experiment.add_image(f"report/{name}", image, global_step=step, dataformats="HWC")
    for logger in tensorboards:
        logger.experiment.flush()

    print_pairs(pairs, names)
    summary = summary_metrics(outputs.probs, outputs.targets, c)
    share = fold_error_share(matrix, names)
    if share is not None:
        # how much of the error no crop could settle: case pairs and 0/O/o, 1/I/l
        summary["test/error_share_casefold"] = share
        groups = " ".join("/".join(m) for m in fold_members(names))
        print(f"{share:.1%} of the errors are case or look-alike confusions ({groups})")
    if spans:
        preds = outputs.probs.argmax(dim=1)
        scores = grouped_accuracy(preds, outputs.targets, names, "test", spans)
        rows = [
            {
                "source": name,
                "images": stop - start,
                **{
                    k: round(scores[f"test/{name}/{k}"], 4)
                    for k in ("acc", "acc_casefold")
                    if f"test/{name}/{k}" in scores
                },
            }
            for name, start, stop in spans
        ]
        _write_csv(folder / "sources.csv", rows, ["source", "images", "acc", "acc_casefold"])
    return summary


def print_pairs(pairs: list[dict[str, Any]], classes: list[str] | None = None) -> None:
    """The most-confused pairs as a table, look-alike labels named ("l (small L)") among
    `classes` (default: the labels in `pairs`)."""
    names = lookalike_names(classes or [row[k] for row in pairs for k in ("true", "predicted")])
    table = rich.table.Table(title=f"most confused pairs (top {TOP_PAIRS})")
    for column in ("true", "predicted", "count", "share of true class"):
        table.add_column(column, justify="right" if column != "true" else "left")
    for row in pairs:
        true, pred = labelled(row["true"], names), labelled(row["predicted"], names)
        table.add_row(true, pred, str(row["count"]), f"{row['share']:.1%}")
    rich.print(table)


class TestReport(Callback):
    """Keep the test pass's predictions and write the report when testing ends.

    The Classifier's `test_step` returns its log-probabilities (`predict_log_probs`: with
    test-time shifts and ensembles folded in), so softmax gives the probabilities. `metrics`
    holds the report's summary for metrics.json after `trainer.test`.

    Args:
        output_dir: the run folder; the report goes to `<output_dir>/report/`.
    """

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir)
        self.outputs: TestOutputs | None = None
        self.metrics: dict[str, float] = {}
        self._parts: dict[str, list[torch.Tensor]] = {}

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._parts = {k: [] for k in ("probs", "targets", "images", "index")}
        self.outputs, self.metrics = None, {}

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        x, y = batch
        probs = outputs.detach().float().softmax(dim=-1).cpu()
        parts = self._parts
        seen = sum(len(t) for t in parts["targets"])  # position of this batch in the test set
        parts["probs"].append(probs)
        parts["targets"].append(y.cpu())
        room = MAX_MISTAKES - sum(len(i) for i in parts["index"])
        if room > 0:
            wrong = torch.nonzero(probs.argmax(dim=1) != y.cpu()).flatten()[:room]
            parts["images"].append(x[wrong.to(x.device)].detach().cpu())
            parts["index"].append(wrong + seen)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        parts = self._parts
        self.outputs = TestOutputs(
            probs=torch.cat(parts["probs"]),
            targets=torch.cat(parts["targets"]),
            mistake_images=torch.cat(parts["images"]) if parts["images"] else torch.empty(0),
            mistake_index=torch.cat(parts["index"]) if parts["index"] else torch.empty(0, dtype=torch.long),
        )

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero and self.outputs is not None:
            step = trainer.global_step  # TensorBoard shows the report beside the run's last scalars
            spans_of = getattr(trainer.datamodule, "source_spans", None)
            spans = spans_of("test") if spans_of is not None else []
            self.metrics = write_report(
                self.outputs, pl_module.class_names, self.output_dir, trainer.loggers, step, spans
            )
