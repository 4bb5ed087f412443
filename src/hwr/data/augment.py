"""Batched, device-side geometric augmentation: one random affine per image, one kernel call.

Working on the whole batch where it already lives (CPU or GPU) is what keeps the data path
at millions of images per second; a per-sample PIL/transforms pipeline is ~100x slower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random affine applied to training batches (all 0 = off).

    shift: max translation in pixels (uniform in [-shift, shift] on each axis), like the
        shift augmentation of the reference EMNIST workflow.
    rotate: max rotation in degrees (uniform in [-rotate, rotate]).
    scale: max relative zoom (factor uniform in [1 - scale, 1 + scale]).
    """

    shift: float = 0.0
    rotate: float = 0.0
    scale: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.shift > 0 or self.rotate > 0 or self.scale > 0


def random_affine(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None):
    """Apply an independent random shift/rotation/scale to each image of `x` [B, C, H, W].

    The background must be 0 (ink on black, before normalisation): pixels that come into
    view from outside the frame are filled with 0.
    """
    if not cfg.enabled:
        return x
    b, _, h, w = x.shape

    def uniform(limit: float) -> torch.Tensor:
        r = torch.rand(b, device=x.device, dtype=torch.float32, generator=generator)
        return (2 * r - 1) * limit

    angle = uniform(math.radians(cfg.rotate))
    zoom = 1 + uniform(cfg.scale)
    # affine_grid maps output coords to input coords in [-1, 1]: a pixel shift of s is 2s/size.
    tx, ty = uniform(2 * cfg.shift / w), uniform(2 * cfg.shift / h)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, tx], dim=1), torch.stack([sin, cos, ty], dim=1)], dim=1).to(
        x.dtype
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
