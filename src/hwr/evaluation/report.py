"""Evaluation report: confusion matrix, per-class scores, most-confused pairs, mistakes,
learning curves and the model card.

`TestReport`, a callback that `hwr train` and `hwr eval` add to their Trainer, keeps the
metrics of every training epoch and the one pass of test predictions, so nothing is predicted
twice, and writes the report when testing ends: files under `<run>/report/` (each written
atomically through a `hwr.files.Folder`) and images in TensorBoard, at the run's last step.

A TensorBoard image card is ~340 px wide: it gets the views drawn for that size. For more than
20 classes those are the confusion matrix and the per-class scores of each class group
(digits, capitals, small letters), the zoom on the most-confused classes, and 12 mistakes;
the full-size confusion_matrix.png, per_class.png and misclassified.png (64 mistakes) stay in
`report/`. It prints nothing: the run's end (hwr.runs.console) shows the confused pairs.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from torchmetrics.functional.classification import (
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from hwr.evaluation.casefold import fold_error_share, grouped_accuracy
from hwr.evaluation.confusion import plot_confusion, plot_confusion_group, plot_confusion_zoom
from hwr.evaluation.curves import EpochHistory, plot_learning_curves
from hwr.evaluation.figures import (
    SPLIT_OVER,
    TestOutputs,
    class_groups,
    plot_mistakes,
    plot_per_class,
    plot_per_class_card,
    score_floor,
)
from hwr.evaluation.model_card import CARD, CardFacts, card_facts, model_card
from hwr.files import Folder

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TOP_PAIRS = 20
MAX_MISTAKES = 512  # mistakes whose images the test pass keeps


@dataclass
class Report:
    """What a written report returns: the summary metrics for metrics.json and the most-confused
    pairs (printed at the run's end)."""

    metrics: dict[str, float] = field(default_factory=dict)
    pairs: list[dict[str, Any]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)


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


def _csv(rows: list[dict[str, Any]] | list[list[Any]], header: list[str] | None = None) -> str:
    """CSV text of dict rows (with `header`) or of plain rows."""
    buffer = io.StringIO()
    if header is not None:
        writer = csv.DictWriter(buffer, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    else:
        csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def _figures(
    matrix: torch.Tensor,
    names: list[str],
    table: list[dict[str, Any]],
    pairs: list[dict[str, Any]],
    outputs: TestOutputs,
    history: EpochHistory | None,
    tensorboard: bool,
) -> list[tuple[str, Figure | None, str]]:
    """(name, figure, where) of the report's figures; where: "both" (a file and a TensorBoard
    image), "file" (full size, `report/` only) or "tensorboard" (the card-size mistakes)."""
    c = len(names)
    split = c > SPLIT_OVER
    full = "file" if split else "both"
    figures: list[tuple[str, Figure | None, str]] = [
        ("confusion_matrix", plot_confusion(matrix, names), full),
        ("per_class", plot_per_class(table), full),
        ("misclassified", plot_mistakes(outputs, names), "file"),
    ]
    if tensorboard:
        figures.append(("misclassified", plot_mistakes(outputs, names, card=True), "tensorboard"))
    if split:
        figures.append(("confusion_zoom", plot_confusion_zoom(matrix, names, pairs), "both"))
        bottom = score_floor(table)
        for label, index in class_groups(names):
            slug = re.sub(r"\W+", "_", label)
            figures.append((f"confusion_{slug}", plot_confusion_group(matrix, names, label, index), "both"))
            figures.append((f"per_class_{slug}", plot_per_class_card(table, label, index, bottom), "both"))
    if history is not None:
        figures.append(("learning_curves", plot_learning_curves(history), "both"))
    return figures


def write_report(
    outputs: TestOutputs,
    names: list[str],
    out: Folder,
    loggers: Sequence[Logger] = (),
    step: int = 0,
    spans: Sequence[tuple[str, int, int]] = (),
    history: EpochHistory | None = None,
    card: CardFacts | None = None,
) -> Report:
    """Write the report files into `out` (a run's `report/` folder), log the card-size figures
    to TensorBoard at `step` (the run's last global step); return the summary metrics for
    metrics.json and the confused pairs. CSV files keep bare class labels; the figures name
    look-alikes. `spans` (name, start, stop): the test set's sources, each scored in
    `sources.csv`. `history`: the training epochs, drawn as learning_curves.png. `card`: what
    MODEL_CARD.md says of the model; the report adds its metrics and confusions."""
    from PIL import Image

    c = len(names)
    matrix = multiclass_confusion_matrix(outputs.probs, outputs.targets, c)
    rows = [["true \\ predicted", *names]] + [
        [n, *map(int, row)] for n, row in zip(names, matrix, strict=True)
    ]
    out.write_text("confusion_matrix.csv", _csv(rows), "the confusion matrix")
    table = per_class_table(outputs.probs, outputs.targets, names)
    out.write_text(
        "per_class.csv", _csv(table, ["class", "precision", "recall", "f1", "support"]), "a report table"
    )
    pairs = confused_pairs(matrix, names)
    out.write_text("confusions.csv", _csv(pairs, ["true", "predicted", "count", "share"]), "a report table")

    tensorboards = [lg for lg in loggers if isinstance(lg, TensorBoardLogger)]
    for name, fig, where in _figures(matrix, names, table, pairs, outputs, history, bool(tensorboards)):
        if fig is None:
            continue
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=110, bbox_inches="tight")
        if where != "tensorboard":
            out.write_bytes(f"{name}.png", png.getvalue(), "a report figure")
        if where == "file":
            continue
        # TensorBoard gets the saved PNG itself: the same pixels, margins trimmed, full size
        # (add_figure would redraw it untrimmed at the figure's own dpi)
        image = np.asarray(Image.open(png).convert("RGB"))
        for logger in tensorboards:
            logger.experiment.add_image(f"report/{name}", image, global_step=step, dataformats="HWC")
    for logger in tensorboards:
        logger.experiment.flush()

    summary = summary_metrics(outputs.probs, outputs.targets, c)
    share = fold_error_share(matrix, names)
    if share is not None:  # how much of the error no crop could settle: case pairs and 0/O/o, 1/I/l
        summary["test/error_share_casefold"] = share
    if spans:
        preds = outputs.probs.argmax(dim=1)
        scores = grouped_accuracy(preds, outputs.targets, names, "test", spans)
        per_source = [
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
        columns = ["source", "images", "acc", "acc_casefold"]
        out.write_text("sources.csv", _csv(per_source, columns), "a report table")
    if card is not None:
        card.metrics = {**card.metrics, **summary}
        card.pairs = pairs
        out.write_text(CARD, model_card(card), "the model card")
    return Report(summary, pairs, list(names))


class TestReport(Callback):
    """Keep the training epochs' metrics and the test pass's predictions; write the report when
    testing ends.

    The Tester's `test_step` returns its log-probabilities (`TrainedModel.log_probs`: with
    test-time shifts and ensembles folded in), so softmax gives the probabilities. `report`
    holds what `write_report` returned after `trainer.test`.

    Args:
        out: the folder the report goes to (a run's `report/`).
    """

    def __init__(self, out: Folder) -> None:
        self.out = out
        self.outputs: TestOutputs | None = None
        self.report: Report | None = None
        self.history = EpochHistory()
        self._parts: dict[str, list[torch.Tensor]] = {}

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.history.fill_train(trainer.callback_metrics)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # before the module's own hook: this epoch's validation is logged, its training not yet
        self.history.end_epoch(trainer.current_epoch, trainer.callback_metrics)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.history.fill_train(trainer.callback_metrics)

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._parts = {k: [] for k in ("probs", "targets", "images", "index")}
        self.outputs, self.report = None, None

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
            self.report = write_report(
                self.outputs,
                pl_module.class_names,
                self.out,
                trainer.loggers,
                step,
                spans,
                self.history if self.history.rows else None,
                card_facts(trainer, pl_module, self.history, self.out.path.parent),
            )
