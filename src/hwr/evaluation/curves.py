"""Learning curves without TensorBoard: loss and accuracy per epoch, training and validation,
as `report/learning_curves.png`.

`EpochHistory` keeps one row per training epoch from the Trainer's logged metrics (the report
callback, hwr.evaluation.report.TestReport, feeds it while fitting); `plot_learning_curves`
draws it. A resumed run's curves start at the epoch it resumed from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hwr.evaluation.figures import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TRAIN_KEYS = ("train/loss", "train/acc")
VAL_KEYS = ("val/loss", "val/acc")


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN: not a point


@dataclass
class EpochHistory:
    """Per-epoch metrics: `rows[i]` is {"epoch": n (from 1), "train/loss": ..., "val/acc": ...}.

    Lightning runs validation before the module's end-of-epoch hook that logs train/loss and
    train/acc, so an epoch's row is opened with its validation metrics (`end_epoch`) and gets
    its training metrics at the start of the next epoch or at the end of fitting (`fill_train`).
    """

    rows: list[dict[str, float]] = field(default_factory=list)

    def end_epoch(self, epoch: int, metrics: Mapping[str, Any]) -> None:
        """Open the row of `epoch` (counted from 0, as Lightning does) with its validation metrics."""
        row: dict[str, float] = {"epoch": float(epoch + 1)}
        row.update({k: v for k in VAL_KEYS if (v := _number(metrics.get(k))) is not None})
        self.rows.append(row)

    def fill_train(self, metrics: Mapping[str, Any]) -> None:
        """Give the last row the training metrics it lacks (those of its epoch, logged since)."""
        if self.rows and not any(k in self.rows[-1] for k in TRAIN_KEYS):
            self.rows[-1].update({k: v for k in TRAIN_KEYS if (v := _number(metrics.get(k))) is not None})

    def series(self, key: str) -> tuple[list[float], list[float]]:
        """(epochs, values) of one metric, skipping epochs without it."""
        points = [(r["epoch"], r[key]) for r in self.rows if key in r]
        return [p[0] for p in points], [p[1] for p in points]


def plot_learning_curves(history: EpochHistory) -> Figure | None:
    """Loss (left) and accuracy (right) per epoch, training and validation; the best
    validation accuracy marked. None without a finished epoch."""
    if not history.rows:
        return None
    fig = new_figure(figsize=(5.4, 2.9), layout="constrained")  # ~600 px: a card shows it at ~55%
    axes = fig.subplots(1, 2)
    styles = {"train": ("#4c72b0", "o", "-"), "val": ("#dd8452", "s", "-")}
    for ax, metric, label in ((axes[0], "loss", "loss"), (axes[1], "acc", "accuracy")):
        for stage, (color, marker, line) in styles.items():
            epochs, values = history.series(f"{stage}/{metric}")
            if epochs:
                name = "training" if stage == "train" else "validation"
                ax.plot(epochs, values, line, color=color, marker=marker, markersize=4, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(color="#e5e5e5")
        ax.xaxis.get_major_locator().set_params(integer=True)
    epochs, acc = history.series("val/acc")
    if acc:
        best = max(range(len(acc)), key=acc.__getitem__)
        point, text = (epochs[best], acc[best]), f"best {100 * acc[best]:.2f}%"
        axes[1].annotate(text, point, textcoords="offset points", xytext=(0, -16), ha="center", fontsize=9)
        axes[1].yaxis.set_major_formatter(lambda v, _: f"{100 * v:g}%")
    axes[0].legend(frameon=False, fontsize=9)
    first = int(history.rows[0]["epoch"])
    since = f" (from epoch {first}: resumed)" if first > 1 else ""
    fig.suptitle(f"learning curves, {len(history.rows)} epochs{since}", fontsize=11)
    return fig
