"""hwr.paper: characters photographed on paper read like clean ones, and clean ones are untouched.

Each test draws one fault of a photograph (shaded paper, a paper edge, light pencil, JPEG
noise) on a synthetic character and compares what the model would see with the same
character drawn cleanly.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from hwr.paper import drop_edge_lines, even_strokes, flatten_paper, remove_background
from hwr.preprocess import Preprocessing

PREP = Preprocessing()  # EMNIST's convention, what the bundled model reads


def letter_e(arms: float = 1.0, margin: int = 20) -> np.ndarray:
    """An 'E' as ink darkness in [0, 1] (stem 1, arms `arms`) on a 110 x 160 px crop plus `margin`."""
    dark = np.zeros((160 + 2 * margin, 110 + 2 * margin), np.float32)
    m = margin
    dark[m : m + 160, m : m + 20] = 1.0
    for top in (0, 70, 140):
        dark[m + top : m + top + 20, m + 20 : m + 110] = arms
    return dark


def photo(dark: np.ndarray, paper=None, contrast: float = 0.6, noise: float = 2.0) -> Image.Image:
    """`dark` photographed: reflectance (1 - contrast * dark) times the light on the paper."""
    rng = np.random.default_rng(0)
    light = np.full(dark.shape, 200.0) if paper is None else paper
    grey = light * (1 - contrast * dark) + rng.normal(0, noise, dark.shape)
    return Image.fromarray(np.clip(np.round(grey), 0, 255).astype(np.uint8))


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of the two 28x28 images' ink (> 127)."""
    a, b = a > 127, b > 127
    return float((a & b).sum() / max(1, (a | b).sum()))


def shading(shape, kind: str) -> np.ndarray:
    y, x = np.indices(shape, dtype=np.float64)
    y, x = y / (shape[0] - 1), x / (shape[1] - 1)
    along = {"left-right": x, "top-bottom": y, "diagonal": (x + y) / 2}.get(kind)
    if along is None:  # a vignette: bright in the middle, darker to the corners
        return 220 * (1 - 0.5 * ((x - 0.5) ** 2 + (y - 0.5) ** 2) * 2)
    return 220 * (1 - 0.5 * along)


@pytest.mark.parametrize("kind", ["left-right", "top-bottom", "diagonal", "vignette"])
def test_shaded_paper_reads_like_even_paper(kind):
    """Paper at half the light on its dark side: its dark side is darker than the ink on its
    light side, so no single cut separates them; flattened, the E is the E on even paper."""
    dark = letter_e()
    even = PREP.pixels(photo(dark))
    shaded = PREP.pixels(photo(dark, paper=shading(dark.shape, kind)))
    assert (shaded > 127).mean() < 0.6  # not a frame full of "ink"
    assert agreement(shaded, even) > 0.85
    assert np.abs(shaded.astype(float) - even).mean() < 12


def test_flat_paper_is_left_exactly_as_it_is():
    noisy = np.asarray(photo(letter_e(), noise=4.0), np.float32)
    assert flatten_paper(noisy) is noisy  # noise on even paper is not shading
    clean = 255 - np.asarray(photo(letter_e(), contrast=1.0, noise=0.0), np.float32)
    assert flatten_paper(clean) is clean
    ink = remove_background(clean)
    ink *= 255 / ink.max()  # as preprocess_image stretches it
    assert np.array_equal(drop_edge_lines(ink), ink)  # nothing along the borders
    assert np.array_equal(even_strokes(ink), ink)  # one darkness, sharp edges: unchanged


def with_line(dark: np.ndarray, side: int, thick: int = 4, darkness: float = 0.9, tilt: int = 3):
    """`dark` with a dark line along one border (0 top, 1 left, 2 bottom, 3 right), tilted."""
    turned = np.rot90(dark, side).copy()
    width = turned.shape[1]
    for col in range(width):
        start = 2 + round(tilt * col / (width - 1))
        turned[start : start + thick, col] = darkness
    return np.rot90(turned, -side)


@pytest.mark.parametrize("side", [0, 1, 2, 3])
@pytest.mark.parametrize("edge", ["line", "table"])
def test_a_paper_edge_along_a_border_is_dropped(side, edge):
    """A shadow line 2-9 px from the border, or the darker table beyond the paper's edge
    filling the outer 15 px; the E 30 px in (a gap of at least 5% of the picture is needed)."""
    dark = letter_e(margin=30)
    clean = PREP.pixels(photo(dark))
    table = np.rot90(dark, side).copy()
    table[:15] = 0.7
    lined = PREP.pixels(photo(with_line(dark, side) if edge == "line" else np.rot90(table, -side)))
    assert agreement(lined, clean) > 0.9  # not an E shrunk into a corner beside a bar


def glyph(strokes: list[tuple[int, int, int, int]], size=(120, 160)) -> np.ndarray:
    """Rectangles (x0, y0, x1, y1) as darkness on a tight crop of `size` (w, h), 2 px of paper around."""
    image = Image.new("L", (size[0] + 4, size[1] + 4), 0)
    for x0, y0, x1, y1 in strokes:
        ImageDraw.Draw(image).rectangle((x0 + 2, y0 + 2, x1 + 2, y1 + 2), fill=255)
    return np.asarray(image, np.float32) / 255


BAR = (0, 0, 119, 15)  # along the top of a 120 x 160 crop
TIGHT_CROPS = [
    ("T, bar joined to its stem", [BAR, (52, 16, 67, 159)], (120, 160)),
    ("7, bar joined at its end", [BAR, (104, 16, 119, 56), (60, 40, 103, 56), (40, 56, 70, 159)], (120, 160)),
    ("i, its dot apart", [(0, 0, 23, 20), (0, 40, 23, 159)], (24, 160)),
]


@pytest.mark.parametrize("name, strokes, size", TIGHT_CROPS)
def test_strokes_of_the_character_along_a_border_stay(name, strokes, size):
    dark = glyph(strokes, size)
    ink = remove_background(np.asarray(255 - np.asarray(photo(dark, contrast=1.0, noise=0.0)), np.float32))
    kept = drop_edge_lines(ink * 255 / ink.max())
    assert np.array_equal(kept, ink * 255 / ink.max()), f"{name}: a stroke was dropped"


def test_light_strokes_come_out_as_bright_as_the_stem():
    """An E whose arms are 40% as dark as its stem (a pencil pressed unevenly)."""
    out = PREP.pixels(photo(letter_e(arms=0.4), contrast=0.8)).astype(float)
    stem = out[:, 5:9].max()  # the E fills rows 2-25 and columns 5-22
    arms = [out[rows, 10:20].max() for rows in (slice(2, 6), slice(12, 16), slice(22, 26))]
    assert stem >= 250 and min(arms) > 0.85 * stem
    faint = PREP.pixels(photo(letter_e(arms=0.15), contrast=0.8)).astype(float)
    cols = np.nonzero((faint > 127).any(axis=0))[0]
    assert cols[-1] - cols[0] < 8  # marks at 15% are not made strokes: the stem alone is read


def test_jpeg_noise_on_grey_paper_reads_like_clean():
    clean = PREP.pixels(photo(letter_e(), noise=0.0))
    buffer = io.BytesIO()
    photo(letter_e(), paper=np.full((200, 150), 140.0), noise=6.0).save(buffer, format="JPEG", quality=30)
    out = PREP.pixels(Image.open(io.BytesIO(buffer.getvalue())))
    assert agreement(out, clean) > 0.8
    assert (out[clean == 0] > 64).mean() < 0.02  # the paper stays black


def test_the_photo_steps_benchmark_finds_clean_scans_unchanged(data_dir, capsys):
    """benchmarks/photo_steps.py on the fixture's English scans: none changed; and its arm
    without the steps really is without them (a shaded photo then reads differently)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "photo_steps.py"
    spec = importlib.util.spec_from_file_location("photo_steps", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--data-dir", str(data_dir)])
    out = capsys.readouterr().out
    assert " English Hnd scans; 0 come out different with the photograph steps" in out
    assert "ms a scan with them" in out
    shaded = photo(letter_e(), paper=shading((200, 150), "diagonal"))
    with bench.without_photo_steps():
        before = PREP.pixels(shaded)
    assert agreement(before, PREP.pixels(shaded)) < 0.5
    assert agreement(PREP.pixels(shaded), PREP.pixels(photo(letter_e()))) > 0.85  # restored after
