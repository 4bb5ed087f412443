"""Finding the ink in a picture of paper: the first half of `hwr.preprocess`.

A scan or a canvas is easy: flat paper, ink of one darkness. A photograph is not, and each of
the steps below answers one way it fails (scripts/redrawn_check.py draws each one):
- `ink_on_black`: dark ink on light paper or light on dark, both become light ink on black;
- `flatten_paper`: paper shaded across the picture (a shadow, uneven light) is levelled, so
  its dark side is not taken for ink;
- `remove_background`: the paper's level (and a noisy paper's noise) becomes 0;
- `drop_edge_lines`: a paper edge or shadow line along a border, apart from the character, goes;
- `even_strokes`: a stroke lighter than the rest (a pencil pressed unevenly) becomes as bright.

Each is a no-op on what it does not find, so a clean scan (flat paper, sharp strokes of one
darkness) comes out as it went in: all 3,410 English Hnd scans do, bit for bit. numpy and
Pillow only: an exported model is served without torch.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

# A pixel counts as ink when it is at least this share of the way from background to ink.
INK_THRESHOLD = 0.25
# Shading smaller than this (grey levels, across the whole picture) is left alone, so flat
# paper is not touched at all.
_SHADING_MIN = 4.0
# Strokes at least this share of the darkest ink are lifted to full ink by `even_strokes`;
# fainter marks (smudges, leftover noise) are left as they are, not amplified.
_STROKE_FLOOR = 0.3


def ink_on_black(gray: np.ndarray) -> np.ndarray:
    """Return a uint8 image with light ink on a dark background, inverting when ink is darker.

    The background is the median of the outer one-pixel border; the ink is on whichever side
    of it the image reaches further (a tie: a light background means dark ink). That also
    handles mid-grey and coloured backgrounds, where a fixed 127 cut would guess wrong.
    """
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    darker, lighter = background - float(gray.min()), float(gray.max()) - background
    return 255 - gray if darker > lighter or (darker == lighter and background > 127) else gray


def flatten_paper(ink: np.ndarray) -> np.ndarray:
    """Subtract the paper's shading (light ink on dark paper, float) and return the result.

    The paper is sampled along the picture's outer ring: a crop of one character is paper
    there, apart from where a stroke reaches the edge. A quadratic surface in x and y is fitted
    to the ring, leaving out again and again the pixels far above it (ink), and subtracted
    everywhere: light falling across a crop the size of a character varies smoothly, so a
    quadratic follows it, and a stroke, however thick, is never taken for paper (as a median
    or a morphological closing smaller than the stroke would take it). The picture is returned
    unchanged unless the surface explains the ring's spread: flat paper, noisy or not, is not
    touched, so a clean scan comes out bit for bit as before.
    """
    h, w = ink.shape
    if min(h, w) < 8:
        return ink  # too small to tell shading from ink
    width = max(1, round(0.03 * min(h, w)))
    ring = np.zeros((h, w), dtype=bool)
    ring[:width] = ring[-width:] = ring[:, :width] = ring[:, -width:] = True
    values = ink[ring].astype(np.float64)
    spread = 1.4826 * float(np.median(np.abs(values - np.median(values))))
    if spread == 0:
        return ink  # flat paper: most pictures stop here, before any fitting
    ry, rx = (i.astype(np.float32) for i in np.nonzero(ring))
    design = _quadratic(ry / h * 2 - 1, rx / w * 2 - 1)
    keep = np.ones(len(values), dtype=bool)
    for _ in range(8):
        coef = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
        residual = values - design @ coef
        sigma = 1.4826 * float(np.median(np.abs(residual[keep]))) + 0.5
        new_keep = residual < 2.5 * sigma  # ink lies far above the paper, never below it
        if new_keep.sum() < len(values) // 2:
            return ink  # more ink than paper on the ring: no way to see the paper
        if (new_keep == keep).all():
            break
        keep = new_keep
    if sigma > 0.5 * spread:
        return ink  # the surface does not explain the ring: noise, not shading
    y, x = np.indices(ink.shape, dtype=np.float32)
    surface = (_quadratic(y / h * 2 - 1, x / w * 2 - 1) @ coef.astype(np.float32)).reshape(h, w)
    shading = surface - surface.min()
    return ink if float(shading.max()) < max(_SHADING_MIN, 3 * sigma) else ink - shading


def _quadratic(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The design matrix of a quadratic surface: [1, x, y, x^2, xy, y^2] per point."""
    y, x = y.ravel(), x.ravel()
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)


def median3(image: np.ndarray) -> np.ndarray:
    """3x3 median filter (edges replicated): removes salt-and-pepper specks, keeps strokes.

    Pillow's MedianFilter on a float image: bit-identical to the numpy median of the nine
    shifted views it replaced, and faster (9 vs 15 ms on a 256 px image on a 2-core CPU)."""
    return np.asarray(Image.fromarray(image.astype(np.float32), mode="F").filter(ImageFilter.MedianFilter(3)))


def remove_background(ink: np.ndarray) -> np.ndarray:
    """Flatten shaded paper, then subtract its level (and, when noisy, its noise) so it becomes 0.

    A clean scan or canvas has a flat background (median absolute deviation 0) and is only
    shifted; a photo or noisy scan is median-filtered and cut at 3 sigma above its paper.

    The paper is read from the outer border (and the whole image, whichever is darker): a
    tight crop of a character can be half ink, and the median of all its pixels would then be
    ink, wiping the character out (117 of 868 English test images redrawn as tight crops came
    out blank that way; scripts/redrawn_check.py).
    """
    ink = flatten_paper(ink)
    border = np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]])
    background = min(float(np.median(border)), float(np.median(ink)))
    spread = float(np.median(np.abs(border - background)))
    if spread > 0:
        ink = median3(ink)
        background += 3 * 1.4826 * spread  # 1.4826 * MAD estimates sigma for Gaussian noise
    return np.clip(ink - background, 0, None)


def dilate(image: np.ndarray, k: int) -> np.ndarray:
    """Grey dilation with a k x k square (k odd): thickens strokes by k - 1 px.

    Separable, as k shifted maxima per axis. Pillow's MaxFilter gives the same values but is
    not separable: 36 ms for k=7 on a 256 px image against 0.8 ms here (and 13 ms as three
    3x3 passes), so the numpy version stays.
    """
    p = np.pad(image, k // 2)
    h, w = p.shape
    rows = np.maximum.reduce([p[i : h - k + 1 + i] for i in range(k)])
    return np.maximum.reduce([rows[:, i : w - k + 1 + i] for i in range(k)])


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width in pixels of a boolean ink mask: 2 * area / boundary length."""
    area = int(mask.sum())
    if area == 0:
        return 0.0
    p = np.pad(mask, 1)
    inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return 2 * area / max(1, area - int(inner.sum()))


def drop_edge_lines(ink: np.ndarray) -> np.ndarray:
    """`ink` (0-255, float) without the lines along its borders that are not the character.

    A paper edge or a shadow line along a border, kept as a stroke, would shrink the character
    into a corner beside a bar (or beside the darker table beyond the paper's edge). A line is
    dropped only when, along one side, it is the first ink in at least 85% of the columns
    (rows), starts within the outer 30%, is at most 30% thick and at least 4 times longer than
    thick, and is apart from all other ink by a gap of 5% of the picture (2 px at least): so
    the bar of a T or a 7, which joins its stem, and the dot of an i, which is short, stay.
    """
    for side in range(4):
        turned = np.rot90(ink, side)  # each side in turn as the top
        line = _top_line(turned >= INK_THRESHOLD * 255)
        if line is not None:
            turned = np.where(dilate(line.astype(np.float32), 3) > 0, 0, turned)
            ink = np.rot90(turned, -side)
    return np.ascontiguousarray(ink)


def _top_line(mask: np.ndarray) -> np.ndarray | None:
    """The mask of a line along the top of `mask` apart from the rest of the ink, or None."""
    h, w = mask.shape
    row = np.arange(h)[:, None]
    has = mask.any(axis=0)
    first = np.where(has, mask.argmax(axis=0), h)
    after = (row >= first) & ~mask
    end = np.where(after.any(axis=0), after.argmax(axis=0), h)  # the first run of ink ends
    later = (row >= end) & mask
    then = np.where(later.any(axis=0), later.argmax(axis=0), h)  # the next ink below it
    gap = max(2, round(0.05 * h))
    ok = has & (first < max(3, 0.3 * h)) & (end - first <= max(2, 0.3 * h)) & (then - end >= gap)
    if ok.sum() < 0.85 * w:
        return None
    thickness = float(np.percentile((end - first)[ok], 90))
    if ok.sum() < 4 * thickness:
        return None  # short and thick: a dot or a blob, not a line
    line = (row >= first) & (row < end) & ok[None]
    rest = mask & ~line
    if rest.sum() < 0.25 * line.sum() or (dilate(line.astype(np.uint8), 3).astype(bool) & rest).any():
        return None  # nothing else to read, or the line touches the character: keep it
    return line


def even_strokes(ink: np.ndarray) -> np.ndarray:
    """`ink` (0-255, float, darkest 255) with every stroke lifted to full ink.

    Each pixel is divided by the brightest ink among itself and its 8 neighbours, when that
    is at least `_STROKE_FLOOR` of the darkest ink. Inside a stroke that is the stroke's own
    level, so an arm drawn at 40% of the stem's darkness becomes as bright as the stem instead
    of fading (a seam 1 px wide stays where they meet); fainter marks (smudges, leftover noise)
    are not amplified. A stroke with sharp edges (a scan, a canvas drawing, a large scan
    shrunk to the working size) comes out unchanged; a blurred edge comes out steeper, as the
    training scans' edges are. A wider window would leave a seam as wide as itself.
    """
    local = dilate(ink, 3)
    lifted = ink * 255 / np.maximum(local, 1e-6)
    return np.where(local >= _STROKE_FLOOR * 255, np.minimum(lifted, 255), ink)
