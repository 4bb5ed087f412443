"""One preprocessing for every image of a character: dataset files, predict, the web page, exports.

Turns a picture of a character (a scan, an upload, a canvas PNG with alpha, a photo of ink on
paper) into the convention a model was trained on: white ink on black, cropped to the ink,
padded to a square without distorting it, scaled into a box and centred, then normalised.

Conventions differ by dataset, so each DataModule class supplies its own `Preprocessing`
(`CharDataModule.preprocessing`) and every checkpoint records it:
- MNIST: the digit scaled into a 20x20 box and centred by centre of mass in 28x28;
- EMNIST (and the default): scaled to fill the frame less a 2 px border, centred by its box;
- English Hnd: as EMNIST, with the margin and `min_box` the DataModule was trained with.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from hwr.errors import HwrError
from hwr.paper import (
    INK_THRESHOLD,
    dilate,
    drop_edge_lines,
    even_strokes,
    ink_on_black,
    remove_background,
    stroke_width,
)

# The image files hwr reads (datasets in folders, predict's inputs): what Pillow decodes.
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
)

# Working resolution for cropping: large enough to keep thin strokes, small enough to be fast.
_WORK_SIZE = 256
# Uploads and predictions thicken strokes thinner than this (output px). The training sets'
# thinnest strokes: MNIST 2.1 px and English 2.8 px (5th percentile), so a 1 px pen line drawn on
# a big canvas is brought into the range the models have seen instead of fading to grey.
MIN_STROKE = 2.0
# Refuse images larger than this before decoding them (a 10,000 x 10,000 photo is 100 M).
MAX_PIXELS = 40_000_000


def _ink_box(ink: np.ndarray) -> tuple[slice, slice]:
    mask = ink >= INK_THRESHOLD * 255
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def on_white(image: Image.Image) -> Image.Image:
    """Composite any transparency on white, then grayscale."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert("L")


def preprocess_image(
    image: Image.Image,
    image_size: int = 28,
    margin: int = 2,
    min_box: float = 0.0,
    *,
    box: int | None = None,
    center: str = "box",
    min_stroke: float = 0.0,
) -> np.ndarray:
    """Any PIL image of one character -> uint8 [image_size, image_size], ink white on black.

    Steps: composite transparency on white, grayscale, shrink large images to a working
    size, then find the ink (`hwr.paper`: fix polarity, flatten shaded paper, remove the
    background, denoising a noisy one), stretch contrast so the darkest ink is 255, drop paper
    edge lines along the borders, lift light strokes to full ink, crop to the ink's bounding
    box, pad to a square (aspect ratio kept), resize into a `box`-pixel square (default
    `image_size - 2 * margin`), place it centred by its box or, with `center="mass"`, by its
    centre of mass. A blank image stays blank.

    `min_box` (a share of the image's shorter side) keeps small characters small: the square
    is at least that big, so an "o" written at a third of the page height stays smaller in
    the output than an "O" written at half of it. 0 scales every character to fill the box.
    `min_stroke` (output px) thickens strokes that would come out thinner; 0 leaves them.
    """
    if center not in ("box", "mass"):
        raise HwrError(f"center must be 'box' or 'mass', got {center!r}")
    gray = on_white(image)
    factor = max(1, min(gray.size) // _WORK_SIZE)
    if factor > 1:
        gray = gray.reduce(factor)  # box filter: thin strokes fade but do not vanish
    ink = remove_background(ink_on_black(np.asarray(gray)).astype(np.float32))
    out = np.zeros((image_size, image_size), dtype=np.uint8)
    peak = ink.max()
    if peak <= 0:
        return out
    ink *= 255.0 / peak
    ink = drop_edge_lines(ink)
    if 0 < ink.max() < 255:  # the dropped line was the darkest ink: stretch what is left
        ink *= 255.0 / ink.max()
    ink = even_strokes(ink)
    inner = box or image_size - 2 * margin
    rows, cols = _ink_box(ink)
    side = max(rows.stop - rows.start, cols.stop - cols.start, int(min_box * min(gray.size)))
    if min_stroke > 0:
        # Strokes that would come out thinner than min_stroke are dilated at working resolution.
        missing = min_stroke * side / inner - stroke_width(ink[rows, cols] >= INK_THRESHOLD * 255)
        if missing > 0.5:
            ink = dilate(ink, 2 * int(np.ceil(missing / 2)) + 1)
            rows, cols = _ink_box(ink)
            side = max(rows.stop - rows.start, cols.stop - cols.start, side)
    ink = ink[rows, cols]
    h, w = ink.shape
    square = np.zeros((side, side), dtype=np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    square[top : top + h, left : left + w] = ink
    resized = Image.fromarray(square).resize((inner, inner), Image.Resampling.BILINEAR, reducing_gap=2.0)
    tile = np.clip(np.asarray(resized), 0, 255)
    top = left = (image_size - inner) // 2
    if center == "mass" and tile.sum() > 0:
        # MNIST's convention: the centre of mass lands on the centre of the frame.
        y, x = np.indices(tile.shape)
        mid, room = (image_size - 1) / 2, image_size - inner
        top = int(np.clip(round(mid - (y * tile).sum() / tile.sum()), 0, room))
        left = int(np.clip(round(mid - (x * tile).sum() / tile.sum()), 0, room))
    out[top : top + inner, left : left + inner] = tile
    return out


@dataclass(frozen=True)
class Preprocessing:
    """What a model expects of an image: geometry (see `preprocess_image`) and normalisation."""

    image_size: int = 28
    margin: int = 2
    box: int | None = None
    center: str = "box"
    min_box: float = 0.0
    min_stroke: float = MIN_STROKE
    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Preprocessing:
        """Inverse of `to_dict` (e.g. from an export's JSON); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise HwrError(f"unknown preprocessing keys {unknown}; expected some of {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def pixels(self, image: Image.Image) -> np.ndarray:
        """One image -> uint8 [image_size, image_size], as the training data looks."""
        return preprocess_image(
            image,
            self.image_size,
            self.margin,
            self.min_box,
            box=self.box,
            center=self.center,
            min_stroke=self.min_stroke,
        )

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W] (or [H, W]) -> the model's float32 input [N, 1, H, W].

        numpy, not torch: an exported model is then served with numpy, Pillow and onnxruntime only.
        """
        x = np.asarray(pixels, dtype=np.float32) / 255
        x = x.reshape(-1, 1, *x.shape[-2:])
        return ((x - self.mean) / self.std).astype(np.float32)

    def stack(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Images -> uint8 pixels [N, H, W] (N may be 0)."""
        if not images:
            return np.zeros((0, self.image_size, self.image_size), dtype=np.uint8)
        return np.stack([self.pixels(image) for image in images])

    def batch(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """Images -> (uint8 pixels [N, H, W], model input [N, 1, H, W])."""
        pixels = self.stack(images)
        return pixels, self.normalise(pixels)


class ImageTooLarge(HwrError):
    """An image over a byte or pixel limit (the web API answers 413 for it, 400 for other errors)."""


def load_image(
    source: bytes | str | Path, max_bytes: int | None = None, name: str | None = None
) -> Image.Image:
    """Open an image file or upload, fully decoded, or raise a one-line HwrError saying why not.

    Checks, in order: empty, over `max_bytes`, not an image, over `MAX_PIXELS` (checked from
    the header, before decoding), truncated or corrupt data.
    """
    label = name or (str(source) if isinstance(source, str | Path) else "upload")
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise HwrError(f"{label}: no such file")
        source = path.read_bytes()
    if not source:
        raise HwrError(f"{label}: the file is empty")
    if max_bytes is not None and len(source) > max_bytes:
        raise ImageTooLarge(f"{label}: {len(source) / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit")
    try:
        with warnings.catch_warnings():  # PIL warns of bombs from 89 M pixels; MAX_PIXELS refuses them below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(source))
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"{label}: too many pixels to decode safely (a decompression bomb?)") from e
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise HwrError(f"{label}: not an image (send a PNG, JPEG, GIF, BMP or WebP file)") from e
    width, height = image.size
    if width * height > MAX_PIXELS or width < 1 or height < 1:
        raise ImageTooLarge(
            f"{label}: {width}x{height} pixels is over the {MAX_PIXELS // 1_000_000} M pixel limit"
        )
    try:
        image.load()
    except (OSError, ValueError, SyntaxError) as e:
        raise HwrError(f"{label}: the image data is corrupt or truncated ({e})") from e
    return image
