"""Batched, device-side augmentation of ink-on-black images [B, 1, H, W] in [0, 1].

Two parts, each one whole-batch tensor op per step (no per-image loop):
- geometric (`random_affine`): one random affine (and optionally an elastic warp) per image,
  one grid_sample call for the whole batch;
- appearance (`random_appearance`): stroke width, blur, contrast and resolution, i.e. how the
  same character looks under a different pen, scanner or camera.
`augment_batch` applies both. Working on the whole batch where it already lives (CPU or GPU)
is what keeps the data path at millions of images per second; a per-sample PIL/transforms
pipeline is ~100x slower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random augmentation applied to training batches (all 0 = off).

    shift: max translation in pixels (uniform in [-shift, shift] on each axis), like the
        shift augmentation of the reference EMNIST workflow.
    rotate: max rotation in degrees (uniform in [-rotate, rotate]).
    scale: max relative zoom (factor uniform in [1 - scale, 1 + scale]).
    elastic: strength of the elastic warp in pixels (Simard et al. 2003: a random
        displacement field smoothed by a Gaussian of `elastic_sigma` px); bends strokes the
        way different hands do, which an affine map cannot.
    elastic_sigma: smoothness of the warp in pixels (larger = gentler, wider bends).
    thickness: probability per image of a different stroke width, half thicker (3x3 grey
        dilation), half thinner (3x3 grey erosion): pens, writers and scanners differ in line
        width far more than the normalised strokes of MNIST/EMNIST do.
    blur: max Gaussian blur sigma in pixels; each image is blended with a version blurred at
        this sigma by a uniform [0, 1] weight, so some stay sharp and some go soft, as
        phone photos and low-resolution scans are.
    contrast: max loss of contrast: per image the ink level is drawn in [1 - contrast, 1] and
        the background lifted to [0, contrast / 2] (faint pencil on grey paper, where the
        datasets have full-white ink on pure black).
    lowres: probability per image of losing resolution: downsampled to between 8 and H - 4
        px and upsampled back bilinearly, as a small tight crop of a page looks.
    """

    shift: float = 0.0
    rotate: float = 0.0
    scale: float = 0.0
    elastic: float = 0.0
    elastic_sigma: float = 3.0
    thickness: float = 0.0
    blur: float = 0.0
    contrast: float = 0.0
    lowres: float = 0.0

    @property
    def geometric(self) -> bool:
        return self.shift > 0 or self.rotate > 0 or self.scale > 0 or self.elastic > 0

    @property
    def appearance(self) -> bool:
        return self.thickness > 0 or self.blur > 0 or self.contrast > 0 or self.lowres > 0

    @property
    def enabled(self) -> bool:
        """Any augmentation at all (geometric or appearance)."""
        return self.geometric or self.appearance


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
    if not cfg.geometric:
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


LOWRES_BUCKETS = 4  # distinct downsampled sizes per batch: one interpolate pair each, not one per image


def random_appearance(
    x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random stroke width, blur, contrast and resolution per image of `x` [B, C, H, W] in [0, 1].

    Ink must be bright on a 0 background (before normalisation); the result stays in [0, 1].
    The parts run in a fixed order (thickness, blur, contrast, lowres); all off returns `x`.
    """
    if not cfg.appearance:
        return x
    b, _, h, w = x.shape

    def rand() -> torch.Tensor:  # one uniform [0, 1) draw per image, broadcastable over C, H, W
        return torch.rand(b, 1, 1, 1, device=x.device, dtype=torch.float32, generator=generator).to(x.dtype)

    if cfg.thickness > 0:
        change, thicker = rand() < cfg.thickness, rand() < 0.5
        dilated = F.max_pool2d(x, 3, stride=1, padding=1)
        eroded = -F.max_pool2d(-x, 3, stride=1, padding=1)
        x = torch.where(change, torch.where(thicker, dilated, eroded), x)
    if cfg.blur > 0:
        x = torch.lerp(x, _gaussian_blur(x, cfg.blur), rand())
    if cfg.contrast > 0:
        ink = 1 - cfg.contrast * rand()
        bg = torch.minimum(cfg.contrast / 2 * rand(), ink / 2)  # never as bright as the ink
        x = bg + (ink - bg) * x
    if cfg.lowres > 0:
        change, bucket = rand() < cfg.lowres, (rand() * LOWRES_BUCKETS).long()
        small, large = min(8, h), max(min(8, h), h - 4)
        out = x
        for k in range(LOWRES_BUCKETS):
            # Every bucket is computed for the whole batch and selected with where: no
            # data-dependent indexing, so no host-device sync on a GPU.
            s = round(small + (large - small) * k / max(1, LOWRES_BUCKETS - 1))
            down = F.interpolate(x, size=(s, max(1, round(w * s / h))), mode="bilinear", antialias=True)
            up = F.interpolate(down, size=(h, w), mode="bilinear", align_corners=False)
            out = torch.where(change & (bucket == k), up, out)
        x = out
    return x.clamp(0, 1)


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None):
    """Geometric then appearance augmentation of `x` [B, C, H, W] in [0, 1] (`x` itself if all off)."""
    return random_appearance(random_affine(x, cfg, generator), cfg, generator)
