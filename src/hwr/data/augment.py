"""Batched, device-side geometric augmentation: one random affine (and optionally an elastic
warp) per image, one grid_sample call for the whole batch.

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
    elastic: strength of the elastic warp in pixels (Simard et al. 2003: a random
        displacement field smoothed by a Gaussian of `elastic_sigma` px); bends strokes the
        way different hands do, which an affine map cannot.
    elastic_sigma: smoothness of the warp in pixels (larger = gentler, wider bends).
    """

    shift: float = 0.0
    rotate: float = 0.0
    scale: float = 0.0
    elastic: float = 0.0
    elastic_sigma: float = 3.0

    @property
    def enabled(self) -> bool:
        return self.shift > 0 or self.rotate > 0 or self.scale > 0 or self.elastic > 0


def _gaussian_blur(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [B, C, H, W] with zero padding."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, device=field.device, dtype=field.dtype)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = field.shape[1]
    field = F.conv2d(field, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, radius), groups=c)
    return F.conv2d(field, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(radius, 0), groups=c)


def elastic_offsets(shape: torch.Size, cfg: AugmentConfig, device, generator=None) -> torch.Tensor:
    """Smooth random displacements [B, H, W, 2] in grid_sample's [-1, 1] units."""
    b, _, h, w = shape
    noise = torch.rand(b, 2, h, w, device=device, generator=generator) * 2 - 1
    field = _gaussian_blur(noise, cfg.elastic_sigma)
    # Blurring shrinks the noise; rescale so the largest displacement is about `elastic` px.
    field = field / field.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6) * cfg.elastic
    field[:, 0] *= 2 / w  # x displacement in pixels -> grid units
    field[:, 1] *= 2 / h
    return field.permute(0, 2, 3, 1)


def random_affine(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None):
    """Apply an independent random shift/rotation/scale (+ elastic warp) to each image of `x` [B, C, H, W].

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
    if cfg.elastic > 0:
        grid = grid + elastic_offsets(x.shape, cfg, x.device, generator).to(grid.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
