"""Case-aware metrics: how much of a model's error no single crop could settle.

A lone "o" could be o, O or 0; an "s" drawn large could be S. EMNIST ByMerge merges the 15
letters whose cases are written alike; `fold_groups` merges those (among the classes a model
knows) plus the look-alikes 0/O/o and 1/I/l. `acc_casefold` counts a prediction right when it
falls in the true class's group, so `acc` vs `acc_casefold` separates case ambiguity from
errors of shape.

`GroupedMetrics`, a callback `hwr train` and `hwr eval` add to every Trainer, logs
`val/acc_casefold` and `test/acc_casefold` (for class sets that have such groups) and, for a
DataModule drawn from several sources (`data=mix`), the same per source:
`test/<source>/acc`, `test/<source>/acc_casefold`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from hwr.evaluation.names import LOOKALIKE_GROUPS

# The letters EMNIST ByMerge merges: their lower and upper case differ in size alone.
CASE_LETTERS = "cijklmopsuvwxyz"
# The characters drawn alike (one table: hwr.evaluation.names): 0/O/o and 1/I/l
LOOKALIKES = tuple("".join(group) for group in LOOKALIKE_GROUPS)


def fold_groups(classes: Sequence[str]) -> list[int]:
    """A group number per class: classes that are case pairs or look-alikes (both present)
    share one, merged transitively (i-I, I-1, 1-l, l-L in ByClass: one group)."""
    index = {name: i for i, name in enumerate(classes)}
    parent = list(range(len(classes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = [(c, c.upper()) for c in CASE_LETTERS]
    pairs += [(a, b) for group in LOOKALIKES for a in group for b in group if a < b]
    for a, b in pairs:
        if a in index and b in index:
            parent[root(index[a])] = root(index[b])
    roots = [root(i) for i in range(len(classes))]
    numbers = {r: n for n, r in enumerate(dict.fromkeys(roots))}
    return [numbers[r] for r in roots]


def has_folds(classes: Sequence[str]) -> bool:
    """Whether any two of `classes` fold together (MNIST's digits: no)."""
    groups = fold_groups(classes)
    return len(set(groups)) < len(groups)


def fold_members(classes: Sequence[str]) -> list[list[str]]:
    """The groups of more than one class, for docs and reports: [['C', 'c'], ...]."""
    by_group: dict[int, list[str]] = {}
    for name, group in zip(classes, fold_groups(classes), strict=True):
        by_group.setdefault(group, []).append(name)
    return [members for members in by_group.values() if len(members) > 1]


def counts(
    preds: torch.Tensor,
    targets: torch.Tensor,
    groups: torch.Tensor,
    spans: Sequence[tuple[str, int, int]] = (),
) -> dict[str, torch.Tensor]:
    """{"": [right, right folded, total]} and the same per source span (name, start, stop)."""
    right = preds == targets
    folded = groups[preds] == groups[targets]
    out = {"": torch.stack([right.sum(), folded.sum(), torch.tensor(len(targets), device=right.device)])}
    for name, start, stop in spans:
        part = slice(start, stop)
        total = torch.tensor(stop - start, device=right.device)
        out[name] = torch.stack([right[part].sum(), folded[part].sum(), total])
    return out


def grouped_accuracy(
    preds: torch.Tensor,
    targets: torch.Tensor,
    classes: Sequence[str],
    stage: str,
    spans: Sequence[tuple[str, int, int]] = (),
) -> dict[str, float]:
    """`<stage>/acc_casefold` (when `classes` fold) and `<stage>/<source>/acc[_casefold]` per span."""
    folds = has_folds(classes)
    groups = torch.tensor(fold_groups(classes), device=preds.device)
    out: dict[str, float] = {}
    for name, (right, folded, total) in counts(preds, targets, groups, spans).items():
        prefix = f"{stage}/{name}/" if name else f"{stage}/"
        n = max(int(total), 1)
        if name:
            out[f"{prefix}acc"] = int(right) / n
        if folds:
            out[f"{prefix}acc_casefold"] = int(folded) / n
    return out


def fold_error_share(matrix: torch.Tensor, classes: Sequence[str]) -> float | None:
    """Of the errors in a confusion matrix, the share that stays inside a fold group (a case
    or look-alike confusion); None when there is no error or no group."""
    if not has_folds(classes):
        return None
    groups = torch.tensor(fold_groups(classes))
    off = matrix.clone()
    off.fill_diagonal_(0)
    errors = int(off.sum())
    if errors == 0:
        return None
    same = groups[:, None] == groups[None, :]
    return int(off[same].sum()) / errors


class GroupedMetrics(Callback):
    """Log case-folded accuracy, and accuracy per source of a mixed DataModule, for
    validation and test (see module docstring).

    The step's predictions (the scores `validation_step`/`test_step` return) stay on the
    device until the epoch ends. Per-source figures need the evaluation order of one process
    (batches in dataset order): under DDP validation they are left out, case-folded accuracy
    is summed over the processes.
    """

    def __init__(self) -> None:
        self._preds: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []

    def _start(self, *_: Any) -> None:
        self._preds, self._targets = [], []

    on_validation_epoch_start = on_test_epoch_start = _start

    def _keep(self, trainer: Trainer, outputs: Any, batch: Any) -> None:
        if trainer.sanity_checking or not isinstance(outputs, torch.Tensor):
            return
        self._preds.append(outputs.detach().argmax(dim=1))
        self._targets.append(batch[1])

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._keep(trainer, outputs, batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._keep(trainer, outputs, batch)

    def _log(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not self._preds:
            return
        classes = list(getattr(pl_module, "class_names", []) or [])
        preds, targets = torch.cat(self._preds), torch.cat(self._targets)
        self._preds, self._targets = [], []
        spans_of = getattr(trainer.datamodule, "source_spans", None)
        spans = spans_of(stage) if spans_of is not None and trainer.world_size == 1 else []
        if trainer.world_size > 1:
            groups = torch.tensor(fold_groups(classes), device=preds.device)
            totals = trainer.strategy.reduce(counts(preds, targets, groups)[""].float(), reduce_op="sum")
            if has_folds(classes):
                pl_module.log(f"{stage}/acc_casefold", totals[1] / totals[2].clamp_min(1), sync_dist=True)
            return
        for key, value in grouped_accuracy(preds, targets, classes, stage, spans).items():
            pl_module.log(key, value)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._log(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module, "test")


# Shapes hands draw alike beyond case pairs and 0/O/o, 1/I/l (hwr.evaluation.casefold): a near
# tie inside a group is an ambiguity the drawing itself cannot settle, so the page names both.
DRAWN_ALIKE = ("9gq", "5Ss", "2Zz", "6b", "8B", "uv")


def confusable_groups(classes: Sequence[str]) -> list[list[str]]:
    """Groups of `classes` a drawing may not tell apart: case pairs and look-alikes
    (`fold_members`) merged with DRAWN_ALIKE; only members the model knows, groups of two or more."""
    groups = [set(g) for g in fold_members(classes)]
    known = set(classes)
    for extra in DRAWN_ALIKE:
        merged = set(extra) & known
        for group in [g for g in groups if g & merged]:
            merged |= group
            groups.remove(group)
        if len(merged) > 1:
            groups.append(merged)
    order = {name: i for i, name in enumerate(classes)}
    return sorted((sorted(g, key=order.__getitem__) for g in groups), key=lambda g: order[g[0]])
