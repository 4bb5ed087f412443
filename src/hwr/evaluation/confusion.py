"""The report's confusion matrices: the whole matrix (a file in `report/`, full size) and the
views a TensorBoard image card shows legibly: one per class group of a large class list
(digits, capitals, small letters) and a zoom on the most-confused classes.

A view keeps a row whole: what the row's class was taken for outside the view is one "other"
column, so every row still adds up to the class's test images. Colours are a row's share of its
class on a log scale: one error in 1000 is a visible blue, an empty cell stays white.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hwr.evaluation.figures import SPLIT_OVER, class_ticks, new_figure
from hwr.evaluation.names import labelled, lookalike_names

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ZOOM_CLASSES = 8  # classes of the most-confused pairs in the zoomed matrix of a large class list
OTHER = "other"


def _log_floor(share: torch.Tensor) -> float:
    """Bottom of the log colour scale: half the smallest non-zero share (at most 1%), so even
    one error in a large class gets a colour of its own."""
    nonzero = share[share > 0]
    return min(0.01, 0.5 * float(nonzero.min())) if len(nonzero) else 0.01


def _shares(matrix: torch.Tensor) -> torch.Tensor:
    return matrix.float() / matrix.sum(dim=1, keepdim=True).clamp(min=1)


def _draw_matrix(
    fig: Figure,
    counts: torch.Tensor,
    share: torch.Tensor,
    rows: list[str],
    vmin: float,
    cols: list[str] | None = None,
    card: bool = False,
) -> None:
    """Draw `share` ([rows, cols]: shares of the row's class) on a log colour scale, empty cells
    white, with the counts in the cells while they fit; rows name look-alikes ("l (small L)").
    `cols` defaults to `rows`; an "other" column is set off by a line. `card`: large type for a
    small figure that TensorBoard's image card shows unscaled enough to read."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap, LogNorm
    from matplotlib.ticker import FuncFormatter, LogLocator
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    cols = cols or rows
    r, k = len(rows), len(cols)
    lookalikes = lookalike_names([*rows, *cols])
    cmap = ListedColormap(colormaps["Blues"](np.linspace(0.3, 1.0, 256))).with_extremes(bad="white")
    norm = LogNorm(vmin=vmin, vmax=1.0)
    ax = fig.subplots()
    im = ax.imshow(np.ma.masked_equal(share.numpy(), 0), cmap=cmap, norm=norm, interpolation="nearest")
    small = 12 if card and k <= 12 else 11 if card else None
    class_ticks(ax, "x", cols, fontsize=small)
    class_ticks(ax, "y", [labelled(name, lookalikes) for name in rows], fontsize=small)
    if cols[-1] == OTHER:
        ax.get_xticklabels()[-1].set_rotation(90)
        ax.axvline(k - 1.5, color="#555555", linewidth=1.2)
    if k > 20 and not card:  # a long row is easier to follow with its name at both ends
        ax.tick_params(labeltop=True, labelright=True, top=True, right=True)
    ax.set_xticks(np.arange(k + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(r + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="#dddddd", linewidth=0.4)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= (12 if card else 20):
        for i, j in torch.nonzero(counts).tolist():
            dark = norm(float(share[i, j])) > 0.6
            size = 11 if card else 7 if k > 12 else 8
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=size,
                    color="white" if dark else "black")  # fmt: skip
    # a colour bar beside the drawn matrix (not beside the box around it): no gap to trim
    pad = 0.15 + (0.1 * max(len(t.get_text()) for t in ax.get_yticklabels()) if k > 20 and not card else 0)
    bar = fig.colorbar(im, cax=make_axes_locatable(ax).append_axes("right", size=0.25, pad=pad))
    bar.ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}%"))
    if card:
        bar.ax.tick_params(labelsize=10)
        bar.set_label("share of true class (log)", fontsize=10 if k <= 12 else 9)
    else:
        bar.set_label("share of the true class's test images (log scale); white: none")


def plot_confusion(matrix: torch.Tensor, names: list[str]) -> Figure:
    """The whole confusion matrix coloured by row share (log scale): at TensorBoard card size up
    to SPLIT_OVER classes, else at full size (`report/` only); save it with bbox_inches="tight"
    (write_report does)."""
    c = len(names)
    share = _shares(matrix)
    if c <= SPLIT_OVER:  # the one view of a small class list: card size, counts in large type
        side = max(2.5, 0.42 * c if c <= 12 else 0.2 * c)  # counts fit in cells up to 12 classes
        fig = new_figure(figsize=(side + 2.2, side + 1.0))
        _draw_matrix(fig, matrix, share, names, _log_floor(share), card=True)
        numbers = "; numbers: image counts" if c <= 12 else ""
        fig.axes[0].set_title(f"confusion matrix: row = true class{numbers}", fontsize=11)
        return fig
    side = 0.3 * c  # 0.3 in a cell: 8 pt labels stay apart
    fig = new_figure(figsize=(1.3 * side + 3, 1.3 * side + 1.5))
    _draw_matrix(fig, matrix, share, names, _log_floor(share))
    fig.axes[0].set_title("confusion matrix: row = true class", fontsize=12)
    return fig


def _view(matrix: torch.Tensor, index: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and columns `index` of `matrix`, plus an "other" column: the rest of each row."""
    rows = matrix[index]
    inside = rows[:, index]
    counts = torch.cat([inside, (rows.sum(dim=1) - inside.sum(dim=1))[:, None]], dim=1)
    return counts, counts.float() / rows.sum(dim=1, keepdim=True).clamp(min=1)


def plot_confusion_group(matrix: torch.Tensor, names: list[str], label: str, index: list[int]) -> Figure:
    """The rows and columns of one class group (`label`: "digits"), with an "other" column for
    what the group's classes were taken for outside it: sized for a TensorBoard card."""
    counts, share = _view(matrix, index)
    cols = [*(names[i] for i in index), OTHER]
    side = 0.16 * len(cols)  # ~18 px a cell at 110 dpi: 10 pt labels stay apart
    fig = new_figure(figsize=(side + 2.2, side + 1.0))
    _draw_matrix(fig, counts, share, [names[i] for i in index], _log_floor(_shares(matrix)), cols, card=True)
    fig.axes[0].set_title(f"confusion, {label} ({len(index)} of {len(names)} classes)", fontsize=11)
    return fig


def plot_confusion_zoom(
    matrix: torch.Tensor, names: list[str], pairs: list[dict[str, Any]], top: int = ZOOM_CLASSES
) -> Figure | None:
    """The confusion matrix restricted to the (at most `top`) classes of the most-confused
    `pairs` (hwr.evaluation.report.confused_pairs), with counts, an "other" column (so each
    row adds up to its class's test images) and the colours of the full matrix. None without
    errors."""
    chosen: list[int] = []
    for pair in pairs:
        for name in (pair["true"], pair["predicted"]):
            if names.index(name) not in chosen and len(chosen) < top:
                chosen.append(names.index(name))
    if not chosen:
        return None
    index = sorted(chosen)
    counts, share = _view(matrix, index)
    sub_names = [names[i] for i in index]
    # ~530 px wide at 110 dpi with 11-12 pt type: a TensorBoard card shrinks it to ~60%
    fig = new_figure(figsize=(4.8, 3.9))
    _draw_matrix(fig, counts, share, sub_names, _log_floor(_shares(matrix)), [*sub_names, OTHER], card=True)
    fig.axes[0].set_title(f"most confused: {len(index)} of {len(names)} classes (counts)", fontsize=11)
    return fig
