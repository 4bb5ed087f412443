"""Averaging predictions: over several trained networks (ensemble) and over shifted copies
of the input (test-time augmentation).

Both return log mean-probabilities rather than logits. Softmax and cross-entropy treat those
exactly like logits (softmax(log p) = p), so the Classifier, its metrics and the report
work on an averaged model without knowing it is one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def log_mean_probs(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """log of the mean of softmax(l) over `logits` (each [N, classes])."""
    probs = torch.stack([lg.float().softmax(dim=-1) for lg in logits]).mean(dim=0)
    return probs.clamp_min(1e-12).log()


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """`x` [N, C, H, W] moved by (dy, dx) pixels; the uncovered edge repeats the border pixels.

    Repeating the border keeps the background value whatever the normalisation (a zero pad
    would be a grey line once inputs are normalised).
    """
    if dy == 0 and dx == 0:
        return x
    p = max(abs(dy), abs(dx))
    padded = F.pad(x, (p, p, p, p), mode="replicate")
    h, w = x.shape[-2:]
    return padded[..., p - dy : p - dy + h, p - dx : p - dx + w]


def tta_logits(net: nn.Module, x: torch.Tensor, shift: int) -> torch.Tensor:
    """Average `net`'s predictions over the 9 copies of `x` shifted by -shift, 0, +shift px."""
    if shift <= 0:
        return net(x)
    offsets = (-shift, 0, shift)
    return log_mean_probs([net(shifted(x, dy, dx)) for dy in offsets for dx in offsets])


class Ensemble(nn.Module):
    """Several trained networks with the same inputs and classes, their probabilities averaged."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return log_mean_probs([m(x) for m in self.members])
