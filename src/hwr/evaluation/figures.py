"""The report's figures besides the confusion matrices (hwr.evaluation.confusion): per-class
scores and the most confident mistakes, each at full size for `report/` and, where that is too
big for a TensorBoard image card (~340 px wide), at card size too.

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
CARD_MISTAKES = 12  # ... in the grid of a TensorBoard card (4 x 3, captions it can show)
SPLIT_OVER = 20  # a class list longer than this is also drawn in groups
GROUP_SIZE = 26  # the most classes one group holds (the alphabet)


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


def _compact(n: int) -> str:
    """A support count short enough to sit under a one-character tick: 950, 1135, 12k."""
    return str(n) if n < 10_000 else f"{n // 1000}k"


def class_groups(names: list[str]) -> list[tuple[str, list[int]]]:
    """The groups a large class list is shown in, each at most GROUP_SIZE classes, in class
    order: digits, capitals, small letters, then the rest in runs of GROUP_SIZE. One group of
    all classes for SPLIT_OVER classes or fewer."""
    if len(names) <= SPLIT_OVER:
        return [("all classes", list(range(len(names))))]
    kinds = (("digits", str.isdigit), ("capitals", str.isupper), ("small letters", str.islower))
    groups, left = [], list(range(len(names)))
    for label, test in kinds:
        members = [i for i in left if len(names[i]) == 1 and test(names[i])]
        if members and len(members) <= GROUP_SIZE:
            groups.append((label, members))
            left = [i for i in left if i not in members]
    for start in range(0, len(left), GROUP_SIZE):
        run = left[start : start + GROUP_SIZE]
        groups.append((f"classes {names[run[0]]} to {names[run[-1]]}", run))
    return groups


def score_floor(rows: list[dict[str, Any]]) -> float:
    """Where the per-class y-axis starts: 0, or, when every score is high, a round value a
    little under the lowest (differences of 0.01 must show). One value for all panels of a
    figure, so panels compare at a glance."""
    low = min((min(r["precision"], r["recall"], r["f1"]) for r in rows), default=0.0)
    bottom = math.floor((low - 0.15 * (1 - low) - 0.005) * 100) / 100
    return bottom if bottom >= 0.2 else 0.0


def _score_panel(
    ax: Axes, rows: list[dict[str, Any]], slots: int, bottom: float, supports: bool = True, size: float = 10
) -> None:
    """One panel of the per-class figure (`slots` places wide, as the others, whatever its
    length): a dot per score, a grey line from precision to recall; the y-axis from `bottom`
    (stated by the axis label and marked by two slashes on the axis when not 0)."""
    x = np.arange(len(rows))
    values = {key: np.array([r[key] for r in rows], dtype=float) for key in ("precision", "recall", "f1")}
    pr = np.stack([values["precision"], values["recall"]]) if rows else np.zeros((2, 0))
    ax.vlines(x, pr.min(axis=0), pr.max(axis=0), color="#bbbbbb", linewidth=1)
    styles = {"precision": ("^", "#4c72b0", 22), "recall": ("v", "#dd8452", 22), "f1": ("o", "#2a7d3f", 34)}
    for key, (marker, color, area) in styles.items():
        ax.scatter(x, values[key], marker=marker, color=color, s=area, label=key, zorder=3)
    labels = [f"{r['class']}\n{_compact(r['support'])}" if supports else r["class"] for r in rows]
    class_ticks(ax, "x", labels, fontsize=size)
    ax.set_xlim(-0.7, max(slots, 1) - 0.3)
    ax.grid(axis="y", color="#e5e5e5")
    ax.set_ylim(bottom, 1.0 + 0.04 * (1 - bottom) if bottom else 1.05)
    if bottom:
        for dy in (0.0, 0.03):
            ax.plot([-0.01, 0.01], [0.01 + dy, 0.04 + dy], transform=ax.transAxes, color="black",
                    linewidth=1, clip_on=False)  # fmt: skip
        ax.set_ylabel(f"score (axis starts\nat {bottom:.2f}, not 0)", fontsize=min(size, 10))
    else:
        ax.set_ylabel("score", fontsize=min(size, 10))


def plot_per_class(rows: list[dict[str, Any]]) -> Figure:
    """Precision, recall and F1 of every class, worst F1 first, its support under its name.
    A large class list gets one stacked panel per class group (digits, capitals, small
    letters: `class_groups`), all panels on one y-axis.

    Dots, not bars: when every score is 0.97-0.99 (MNIST) the y-axis zooms to the data, and a
    bar whose base is cut off would misstate its length; the cut is marked on the axis."""
    groups = class_groups([r["class"] for r in rows])
    slots = max(len(index) for _, index in groups) if rows else 0
    bottom = score_floor(rows)
    fig = new_figure(figsize=(max(6.0, 0.34 * slots + 1.6), 0.6 + 3.2 * len(groups)), layout="constrained")
    axes = fig.subplots(len(groups), 1, squeeze=False)[:, 0]
    for ax, (label, index) in zip(axes, groups, strict=True):
        _score_panel(ax, sorted((rows[i] for i in index), key=lambda r: r["f1"]), slots, bottom)
        if len(groups) > 1:
            ax.set_title(label, fontsize=10, loc="left")
    axes[-1].set_xlabel("class, with its number of test images (support) below")
    axes[0].legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False, fontsize=9)
    macro = sum(r["f1"] for r in rows) / max(len(rows), 1)
    fig.suptitle(f"per-class scores on the test set, worst F1 first (macro F1 {macro:.3f})")
    return fig


def plot_per_class_card(rows: list[dict[str, Any]], label: str, index: list[int], bottom: float) -> Figure:
    """The per-class scores of one class group (`label`), worst F1 first, at TensorBoard card
    size: class names only (the supports are in per_class.csv and per_class.png), large type,
    the y-axis from `bottom` (`score_floor` of all classes: the groups compare)."""
    chosen = sorted((rows[i] for i in index), key=lambda r: r["f1"])
    fig = new_figure(figsize=(max(4.2, 0.17 * len(chosen) + 1.2), 2.8), layout="constrained")
    ax = fig.subplots()
    _score_panel(ax, chosen, len(chosen), bottom, supports=False, size=11)
    ax.legend(
        loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False, fontsize=10, handletextpad=0
    )
    ax.set_title(f"{label}: per-class scores, worst F1 first", fontsize=11, pad=22)
    return fig


def mistake_caption(true: str, pred: str, p: float, names: dict[str, str], card: bool = False) -> str:
    """'3 → 5 (p=0.83)'; look-alike labels are named ('I (capital i) →\\nl (small L) (p=0.83)').
    `card`: two short lines for a TensorBoard card ('I (capital i) →\\nl (small L) 0.83')."""
    t, q = labelled(true, names), labelled(pred, names)
    if card:
        return f"{t} → {q}\np={p:.2f}" if len(t) + len(q) <= 8 else f"{t} →\n{q} {p:.2f}"
    return f"{t} → {q} (p={p:.2f})" if len(t) + len(q) <= 8 else f"{t} →\n{q} (p={p:.2f})"


def plot_mistakes(outputs: TestOutputs, names: list[str], card: bool = False) -> Figure:
    """Grid of the most confident misclassified test images, captioned 'true → pred (p=0.83)':
    SHOWN_MISTAKES of them, or at TensorBoard card size (`card`) CARD_MISTAKES with large type."""
    confidence = outputs.probs[outputs.mistake_index].amax(dim=1) if len(outputs.mistake_index) else None
    shown = CARD_MISTAKES if card else SHOWN_MISTAKES
    order = torch.argsort(confidence, descending=True)[:shown] if confidence is not None else []
    images, positions = outputs.mistake_images[order], outputs.mistake_index[order]
    n, cols, lookalikes = len(positions), 3 if card else 8, lookalike_names(names)
    rows = max(1, (n + cols - 1) // cols)
    width, height = (1.5, 1.9) if card else (1.5, 1.8)
    fig = new_figure(figsize=(cols * width, rows * height + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, i in zip(axes.flat, images, positions.tolist(), strict=False):
        p = outputs.probs[i]
        pred = int(p.argmax())
        ax.imshow(image[0].numpy(), cmap="gray")
        true = names[int(outputs.targets[i])]
        caption = mistake_caption(true, names[pred], float(p[pred]), lookalikes, card)
        ax.set_title(caption, fontsize=11 if card else 7 if "\n" in caption else 8)
    title = (
        f"the {n} most confident mistakes:\ntrue → predicted (probability)"
        if card
        else (f"the {n} most confident mistakes: true → predicted (model's probability)")
    )
    fig.suptitle(title if n else "no misclassified test images", fontsize=12 if card else None)
    return fig
