"""One preprocessing for every image of a character: dataset files now, uploads later.

Turns a picture of a character (any size, any polarity) into the convention the models
are trained on: white ink on black, the ink cropped to its bounding box, padded to a
square without distorting it, and resized to `image_size` with a small empty margin.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Working resolution for cropping: large enough to keep thin strokes, small enough to be fast.
_WORK_SIZE = 256
# A pixel counts as ink when it is at least this share of the way from background to ink.
_INK_THRESHOLD = 0.25


def ink_on_black(gray: np.ndarray) -> np.ndarray:
    """Return a uint8 image with white ink on black, inverting when the background is light.

    The background is the median of the outer one-pixel border.
    """
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return 255 - gray if np.median(border) > 127 else gray


def preprocess_image(
    image: Image.Image, image_size: int = 28, margin: int = 2, min_box: float = 0.0
) -> np.ndarray:
    """Any PIL image of one character -> uint8 [image_size, image_size], ink white on black.

    Steps: composite transparency on white, grayscale, shrink large images to a working
    size, fix polarity, stretch contrast so the darkest ink is 255, crop to the ink's
    bounding box, pad to a square (aspect ratio kept), resize so the character fills
    `image_size - 2 * margin` pixels, centred. A blank image stays blank.

    `min_box` (a share of the image's shorter side) keeps small characters small: the square
    is at least that big, so an "o" written at a third of the page height stays smaller in
    the output than an "O" written at half of it. 0 scales every character to fill the box.
    """
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    gray = image.convert("L")
    factor = max(1, min(gray.size) // _WORK_SIZE)
    if factor > 1:
        gray = gray.reduce(factor)  # box filter: thin strokes fade but do not vanish
    ink = ink_on_black(np.asarray(gray)).astype(np.float32)
    ink -= ink.min()
    peak = ink.max()
    out = np.zeros((image_size, image_size), dtype=np.uint8)
    if peak <= 0:
        return out
    ink *= 255.0 / peak
    rows = np.nonzero((ink >= _INK_THRESHOLD * 255).any(axis=1))[0]
    cols = np.nonzero((ink >= _INK_THRESHOLD * 255).any(axis=0))[0]
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = ink.shape
    side = max(h, w, int(min_box * min(gray.size)))
    square = np.zeros((side, side), dtype=np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    square[top : top + h, left : left + w] = ink
    inner = image_size - 2 * margin
    resized = Image.fromarray(square).resize((inner, inner), Image.Resampling.BILINEAR, reducing_gap=2.0)
    out[margin : margin + inner, margin : margin + inner] = np.clip(np.asarray(resized), 0, 255)
    return out
