"""The in-memory form of a dataset and the two ways of cutting and drawing from it: a
stratified (or writer-disjoint) split, and sampling weights for class-balanced draws."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from hwr.errors import HwrError


@dataclass
class LabelledImages:
    """Images (uint8 [N, H, W], ink white on black), labels (int64 [N]) and optional groups
    (int64 [N], e.g. the writer of each image, used for writer-disjoint splits)."""

    images: torch.Tensor
    labels: torch.Tensor
    groups: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> LabelledImages:
        groups = None if self.groups is None else self.groups[index]
        return LabelledImages(self.images[index], self.labels[index], groups)

    def to(self, device: torch.device) -> LabelledImages:
        """The same data on `device` (itself when it is already there)."""
        if self.images.device == device:
            return self
        groups = None if self.groups is None else self.groups.to(device)
        return LabelledImages(self.images.to(device), self.labels.to(device), groups)

    @property
    def nbytes(self) -> int:
        return self.images.nbytes + self.labels.nbytes

    @staticmethod
    def concat(parts: Sequence[LabelledImages]) -> LabelledImages:
        """The parts one after another (groups kept only when every part has them)."""
        groups = None
        if all(p.groups is not None for p in parts):
            groups = torch.cat([p.groups for p in parts])
        return LabelledImages(
            torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]), groups
        )


def split_indices(
    labels: torch.Tensor, fraction: float, seed: int, groups: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split positions 0..N-1 into (kept, held-out) with `fraction` held out.

    Stratified by label: each class gives fraction * its count images (rounded half up). With `groups`,
    whole groups (writers) are held out instead, so no group is on both sides.
    """
    if not 0 <= fraction < 1:
        raise HwrError(f"split fraction must be in [0, 1), got {fraction}")
    gen = torch.Generator().manual_seed(seed)
    if groups is not None:
        unique = torch.unique(groups)
        n_held = int(fraction * len(unique) + 0.5)  # half up: tiny sets still get one
        held_groups = unique[torch.randperm(len(unique), generator=gen)[:n_held]]
        held = torch.isin(groups, held_groups)
    else:
        held = torch.zeros(len(labels), dtype=torch.bool)
        for c in torch.unique(labels):
            members = torch.nonzero(labels == c).flatten()
            members = members[torch.randperm(len(members), generator=gen)]
            held[members[: int(fraction * len(members) + 0.5)]] = True
    return torch.nonzero(~held).flatten(), torch.nonzero(held).flatten()


def balanced_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A sampling weight per image, 1 / (its class's count): every class is drawn equally often
    (ByClass's 317 'j' as often as its 4,156 'O')."""
    count = torch.bincount(labels, minlength=num_classes).clamp_min(1)
    return 1.0 / count[labels].double()


def per_class(index: torch.Tensor, labels: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """At most `k` of `index` per class (`labels[index]`), drawn with `seed`: few-shot training."""
    gen = torch.Generator().manual_seed(seed)
    index = index[torch.randperm(len(index), generator=gen)]
    kept, seen = [], {}
    for i in index.tolist():
        label = int(labels[i])
        if seen.get(label, 0) < k:
            seen[label] = seen.get(label, 0) + 1
            kept.append(i)
    return torch.tensor(sorted(kept), dtype=torch.long)


def fingerprints(images: torch.Tensor) -> list[int]:
    """One 64-bit hash per image of its exact pixels: equal images, equal fingerprints."""
    rows = images.reshape(len(images), -1).cpu().numpy()
    return [hash(row.tobytes()) for row in rows]


def exact_repeats(parts: dict[str, LabelledImages]) -> dict[str, int]:
    """Exact repeats (pixel for pixel) within each part and across train, val and test: across
    them a repeated image scores what the model memorised, not what it learned. Each part's
    images are hashed once."""
    prints = {name: fingerprints(data.images) for name, data in parts.items()}
    out = {f"within {name}": len(p) - len(set(p)) for name, p in prints.items()}
    for part, reference in (("test", "train"), ("val", "train"), ("test", "val")):
        if part in prints and reference in prints:
            seen = set(prints[reference])
            out[f"{part} in {reference}"] = sum(f in seen for f in prints[part])
    return out


def split_overlaps(train: LabelledImages, val: LabelledImages | None, test: LabelledImages) -> dict[str, int]:
    """How many test and validation images repeat a training image exactly, and test images a
    validation one (`exact_repeats` across the splits)."""
    parts = {"train": train, "test": test} | ({"val": val} if val is not None else {})
    return {k: n for k, n in exact_repeats(parts).items() if not k.startswith("within")}
