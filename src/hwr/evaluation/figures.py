"""The report's figures: confusion matrix (and a zoom on its most-confused classes for large
class lists), per-class scores, the most confident mistakes.

Drawn for people: class names on ticks are upright and monospaced, look-alike characters
are named ("l (small L)"), and every colour or axis that is not the obvious one (a log
colour scale, a y-axis that starts above 0) says so on the figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hwr.evaluation.names import labelled, lookalike_names

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@dataclass
class TestOutputs:
    """What a test pass leaves for the report: probabilities [N, C], targets [N], and the
    images of the first mistakes (as the model saw them), with their positions."""

    probs: torch.Tensor
    targets: torch.Tensor
    mistake_images: torch.Tensor
    mistake_index: torch.Tensor


SHOWN_MISTAKES = 64  # the most confident mistakes go in the grid
ZOOM_CLASSES = 8  # classes of the most-confused pairs in the zoomed matrix of a large class list
PANEL_CLASSES = 32  # classes per panel of the per-class figure


def new_figure(**kwargs: Any) -> Figure:
    """A matplotlib Figure drawn off-screen (Agg), without pyplot: no window, no global backend
    switch (a notebook that imports hwr keeps its own), and matplotlib is imported only here,
    when a report is drawn, not by every process that imports hwr."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def class_ticks(ax: Axes, axis: str, labels: list[str], fontsize: float | None = None) -> None:
    """Class names as ticks of `axis` ("x" or "y"): upright while they are one or two characters
    (a rotated "l" is unreadable), in DejaVu Sans Mono, which draws I, l, 1 and O, 0 apart."""
    fontsize = fontsize or (8 if len(labels) > 20 else 10)
    longest = max((len(label.split("\n")[0]) for label in labels), default=0)  # the name; line 2 is a support
    rotation = 90 if axis == "x" and longest > 2 and len(labels) > 20 else 0
    set_ticks = ax.set_xticks if axis == "x" else ax.set_yticks
    set_ticks(range(len(labels)), labels, fontsize=fontsize, family="monospace", rotation=rotation)


def _log_floor(share: torch.Tensor) -> float:
    """Bottom of the log colour scale: half the smallest non-zero share (at most 1%), so even
    one error in a large class gets a colour of its own."""
    nonzero = share[share > 0]
    return min(0.01, 0.5 * float(nonzero.min())) if len(nonzero) else 0.01


def _draw_matrix(
    fig: Figure, counts: torch.Tensor, share: torch.Tensor, names: list[str], vmin: float, card: bool = False
):
    """Draw `share` (row shares of the true class) on a log colour scale, empty cells white.

    On a linear scale an MNIST error (1 image in 1000) is as pale as no error at all; on a log
    scale down to `vmin` every error is a visible blue, and the palest blue used is kept well
    away from the white of an empty cell. Counts are written in the cells while they fit
    (<= 20 classes); rows are named with look-alikes spelled out ("l (small L)"). `card`: large
    type for a small figure that TensorBoard's ~300 px image card shows unscaled enough to read."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap, LogNorm
    from matplotlib.ticker import FuncFormatter, LogLocator
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    c, lookalikes = len(names), lookalike_names(names)
    cmap = ListedColormap(colormaps["Blues"](np.linspace(0.3, 1.0, 256))).with_extremes(bad="white")
    norm = LogNorm(vmin=vmin, vmax=1.0)
    ax = fig.subplots()
    im = ax.imshow(np.ma.masked_equal(share.numpy(), 0), cmap=cmap, norm=norm, interpolation="nearest")
    class_ticks(ax, "x", names, fontsize=12 if card else None)
    class_ticks(ax, "y", [labelled(name, lookalikes) for name in names], fontsize=11 if card else None)
    if c > 20:  # a long row is easier to follow with its name at both ends
        ax.tick_params(labeltop=True, labelright=True, top=True, right=True)
    ax.set_xticks(np.arange(c + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(c + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="#dddddd", linewidth=0.4)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if c <= 20:
        for i, j in torch.nonzero(counts).tolist():
            dark = norm(float(share[i, j])) > 0.6
            size = 11 if card else 7 if c > 12 else 8
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=size,
                    color="white" if dark else "black")  # fmt: skip
    # a colour bar beside the drawn matrix (not beside the box around it): no gap to trim
    pad = 0.15 + (0.1 * max(len(t.get_text()) for t in ax.get_yticklabels()) if c > 20 else 0)
    bar = fig.colorbar(im, cax=make_axes_locatable(ax).append_axes("right", size=0.25, pad=pad))
    bar.ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}%"))
    if card:
        bar.ax.tick_params(labelsize=10)
        bar.set_label("share of true class (log)", fontsize=10)
    else:
        bar.set_label("share of the true class's test images (log scale); white: none")


def plot_confusion(matrix: torch.Tensor, names: list[str]) -> Figure:
    """Confusion matrix coloured by row share (log scale), sized to the class count; save it
    with bbox_inches="tight" (write_report does)."""
    c = len(names)
    share = matrix.float() / matrix.sum(dim=1, keepdim=True).clamp(min=1)
    side = max(3.5, (0.3 if c > 20 else 0.5) * c)  # 0.3 in a cell: 8 pt labels stay apart
    fig = new_figure(figsize=(1.3 * side + 3, 1.3 * side + 1.5))
    _draw_matrix(fig, matrix, share, names, _log_floor(share))
    numbers = "; numbers: image counts" if c <= 20 else ""
    fig.axes[0].set_title(f"confusion matrix: row = true class{numbers}", fontsize=12 if c > 20 else 10)
    return fig


def plot_confusion_zoom(
    matrix: torch.Tensor, names: list[str], pairs: list[dict[str, Any]], top: int = ZOOM_CLASSES
) -> Figure | None:
    """The confusion matrix restricted to the (at most `top`) classes of the most-confused
    `pairs` (hwr.evaluation.report.confused_pairs), with counts and the colours of the full matrix: the
    part of a 62-class matrix that a TensorBoard card shows legibly. None without errors."""
    chosen: list[int] = []
    for pair in pairs:
        for name in (pair["true"], pair["predicted"]):
            if names.index(name) not in chosen and len(chosen) < top:
                chosen.append(names.index(name))
    if not chosen:
        return None
    index = torch.tensor(sorted(chosen))
    share = matrix.float() / matrix.sum(dim=1, keepdim=True).clamp(min=1)  # of the whole row
    # ~480 px wide at 110 dpi with 11-12 pt type: a TensorBoard card shrinks it to ~60%
    fig = new_figure(figsize=(4.4, 3.9))
    sub_names = [names[i] for i in index]
    _draw_matrix(
        fig, matrix[index][:, index], share[index][:, index], sub_names, _log_floor(share), card=True
    )
    fig.axes[0].set_title(f"most confused: {len(index)} of {len(names)} classes (counts)", fontsize=11)
    return fig


def _compact(n: int) -> str:
    """A support count short enough to sit under a one-character tick: 950, 1135, 12k."""
    return str(n) if n < 10_000 else f"{n // 1000}k"


def _score_panel(ax: Axes, rows: list[dict[str, Any]], slots: int) -> None:
    """One row of the per-class figure (`slots` places wide, as the others, whatever its
    length): a dot per score, a grey line from precision to recall.
    When every score is high the y-axis zooms to them (differences of 0.01 must show), down
    to a round value that the axis label states and two slashes on the axis mark."""
    x = np.arange(len(rows))
    values = {key: np.array([r[key] for r in rows], dtype=float) for key in ("precision", "recall", "f1")}
    low = float(min(v.min() for v in values.values())) if len(rows) else 0.0
    bottom = math.floor((low - 0.15 * (1 - low) - 0.005) * 100) / 100
    pr = np.stack([values["precision"], values["recall"]])
    ax.vlines(x, pr.min(axis=0), pr.max(axis=0), color="#bbbbbb", linewidth=1)
    styles = {"precision": ("^", "#4c72b0", 22), "recall": ("v", "#dd8452", 22), "f1": ("o", "#2a7d3f", 34)}
    for key, (marker, color, size) in styles.items():
        ax.scatter(x, values[key], marker=marker, color=color, s=size, label=key, zorder=3)
    class_ticks(ax, "x", [f"{r['class']}\n{_compact(r['support'])}" for r in rows])
    ax.set_xlim(-0.7, max(slots, 1) - 0.3)
    ax.grid(axis="y", color="#e5e5e5")
    if bottom >= 0.2:
        ax.set_ylim(bottom, 1.0 + 0.04 * (1 - bottom))
        for dy in (0.0, 0.03):
            ax.plot([-0.01, 0.01], [0.01 + dy, 0.04 + dy], transform=ax.transAxes, color="black",
                    linewidth=1, clip_on=False)  # fmt: skip
        ax.set_ylabel(f"score (axis starts\nat {bottom:.2f}, not 0)")
    else:
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("score")


def plot_per_class(rows: list[dict[str, Any]]) -> Figure:
    """Precision, recall and F1 of every class, worst F1 first, its support under its name;
    more than `PANEL_CLASSES` classes wrap onto stacked panels (a 62-class strip would be 2000
    px wide and 400 high: unreadable once a TensorBoard card shrinks it), each panel with its
    own y-range.

    Dots, not bars: when every score is 0.97-0.99 (MNIST) the y-axis zooms to the data, and a
    bar whose base is cut off would misstate its length; the cut is marked on the axis."""
    order = sorted(rows, key=lambda r: r["f1"])  # stable: ties stay in class order
    c = len(order)
    panels = max(1, math.ceil(c / PANEL_CLASSES))
    per = math.ceil(c / panels) if c else 0
    fig = new_figure(figsize=(max(6.0, 0.34 * per + 1.6), 0.6 + 3.2 * panels), layout="constrained")
    axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
    for k, ax in enumerate(axes):
        _score_panel(ax, order[k * per : (k + 1) * per], per)
    axes[-1].set_xlabel("class, with its number of test images (support) below")
    axes[0].legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False, fontsize=9)
    macro = sum(r["f1"] for r in order) / max(c, 1)
    axes[0].set_title(f"per-class scores on the test set, worst F1 first (macro F1 {macro:.3f})", pad=24)
    return fig


def mistake_caption(true: str, pred: str, p: float, names: dict[str, str]) -> str:
    """'3 → 5 (p=0.83)'; look-alike labels are named ('I (capital i) →\\nl (small L) (p=0.83)')."""
    t, q = labelled(true, names), labelled(pred, names)
    return f"{t} → {q} (p={p:.2f})" if len(t) + len(q) <= 8 else f"{t} →\n{q} (p={p:.2f})"


def plot_mistakes(outputs: TestOutputs, names: list[str]) -> Figure:
    """Grid of the most confident misclassified test images, captioned 'true → pred (p=0.83)'."""
    confidence = outputs.probs[outputs.mistake_index].amax(dim=1) if len(outputs.mistake_index) else None
    order = torch.argsort(confidence, descending=True)[:SHOWN_MISTAKES] if confidence is not None else []
    images, positions = outputs.mistake_images[order], outputs.mistake_index[order]
    n, cols, lookalikes = len(positions), 8, lookalike_names(names)
    rows = max(1, (n + cols - 1) // cols)
    fig = new_figure(figsize=(cols * 1.5, rows * 1.8 + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, i in zip(axes.flat, images, positions.tolist(), strict=False):
        p = outputs.probs[i]
        pred = int(p.argmax())
        ax.imshow(image[0].numpy(), cmap="gray")
        caption = mistake_caption(names[int(outputs.targets[i])], names[pred], float(p[pred]), lookalikes)
        ax.set_title(caption, fontsize=7 if "\n" in caption else 8)
    fig.suptitle(f"the {n} most confident mistakes: true → predicted (model's probability)" if n
                 else "no misclassified test images")  # fmt: skip
    return fig
