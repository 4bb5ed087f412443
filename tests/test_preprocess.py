import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from hwr.data.emnist import EMNISTDataModule
from hwr.data.english import EnglishDataModule
from hwr.data.mnist import MNISTDataModule
from hwr.errors import HwrError
from hwr.preprocess import MAX_PIXELS, Preprocessing, load_image, preprocess_image, stroke_width

SEVEN = [(60, 40), (200, 40), (120, 250)]  # a "7" as a polyline on a 300 px canvas


def page(box, size=(300, 200), ink="black", paper="white", mode="RGB"):
    image = Image.new(mode, size, paper)
    ImageDraw.Draw(image).rectangle(box, fill=ink)
    return image


def seven(ink="black", paper="white", width=14, size=300, mode="RGB", offset=(0, 0)):
    image = Image.new(mode, (size, size), paper)
    scale = size / 300
    points = [(x * scale + offset[0], y * scale + offset[1]) for x, y in SEVEN]
    ImageDraw.Draw(image).line(points, fill=ink, width=width, joint="curve")
    return image


MNIST = MNISTDataModule().preprocessing()


def test_dark_ink_on_paper_becomes_white_on_black_cropped_and_centred():
    out = preprocess_image(page([200, 20, 219, 179]), image_size=28, margin=2)  # tall thin bar, off-centre
    assert out.dtype == np.uint8 and out.shape == (28, 28)
    assert out[:2].max() == 0 and out[-2:].max() == 0  # margin kept
    assert out[2:26, 2:26].max() == 255
    cols = np.nonzero(out.max(axis=0) > 128)[0]
    assert abs((cols[0] + cols[-1]) / 2 - 13.5) <= 1  # centred horizontally
    assert cols[-1] - cols[0] < 8  # aspect ratio kept: the bar stays thin


def test_light_ink_on_dark_background_is_not_inverted():
    out = preprocess_image(page([50, 50, 120, 150], ink="white", paper="black"))
    assert out.max() == 255 and out[0, 0] == 0


def test_transparent_canvas_is_composited_on_white():
    canvas = page([100, 50, 160, 150], ink=(0, 0, 0, 255), paper=(0, 0, 0, 0), mode="RGBA")
    out = preprocess_image(canvas)
    assert out.max() == 255 and out[0, 0] == 0


def test_blank_image_stays_blank():
    assert preprocess_image(Image.new("L", (50, 50), 255)).max() == 0
    assert MNIST.pixels(Image.new("RGBA", (300, 300), (0, 0, 0, 0))).max() == 0


def test_min_box_keeps_small_characters_small():
    small, big = page([140, 90, 160, 110]), page([100, 50, 200, 150])
    ink_area = [(preprocess_image(p, min_box=0.8) > 128).sum() for p in (small, big)]
    assert ink_area[0] < ink_area[1] / 4
    same = [(preprocess_image(p) > 128).sum() for p in (small, big)]
    assert abs(int(same[0]) - int(same[1])) <= 0.1 * same[1]  # without it both fill the frame


@pytest.mark.parametrize(
    "variant",
    [
        dict(ink="white", paper=(40, 40, 40)),  # dark background
        dict(ink=(20, 40, 200), paper=(255, 235, 120)),  # blue ink on yellow paper
        dict(ink=(200, 30, 30), paper=(120, 120, 120)),  # red ink on mid-grey: darker than the paper
        dict(ink=(0, 0, 0, 255), paper=(0, 0, 0, 0), mode="RGBA"),  # canvas with alpha
        dict(offset=(70, 35)),  # off-centre
        dict(size=900, width=42),  # a big canvas
    ],
)
def test_every_kind_of_drawing_looks_like_the_clean_one(variant):
    clean = MNIST.pixels(seven()).astype(float)
    other = MNIST.pixels(seven(**variant)).astype(float)
    assert np.abs(clean - other).mean() < 6, "the same character must give (nearly) the same 28x28 image"


def test_noisy_photo_is_denoised():
    rng = np.random.default_rng(0)
    photo = np.asarray(seven(paper=(190, 185, 175), ink=(50, 45, 40)).convert("L")).astype(float)
    photo += rng.normal(0, 12, photo.shape)
    photo[rng.random(photo.shape) < 0.002] = 0  # dark specks off the character
    noisy = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8))
    clean, out = MNIST.pixels(seven()).astype(float), MNIST.pixels(noisy).astype(float)
    assert np.abs(clean - out).mean() < 8
    assert (out[clean == 0] > 64).mean() < 0.01  # the background stays black


def test_a_tight_crop_that_is_mostly_ink_keeps_its_character():
    """A crop cut to the ink (1 px of grey paper around a bold 'L', 60% contrast): more than
    half its pixels are ink, so the paper must come from the border, not the median."""
    crop = Image.new("L", (24, 32), 180)
    ImageDraw.Draw(crop).rectangle([1, 1, 14, 30], fill=72)  # the L's stem, half the crop
    ImageDraw.Draw(crop).rectangle([1, 20, 22, 30], fill=72)  # its foot
    out = Preprocessing().pixels(crop)
    assert out.max() == 255 and (out > 128).mean() > 0.3  # the L is there, not a blank frame
    assert out[:, -4:].max() < 64 < out[-6:, :].mean()  # its right edge paper, its foot ink


def test_thin_strokes_are_thickened_not_lost():
    thin = seven(width=1, size=600)  # a 1 px pen on a 600 px canvas: 0.05 px at 28 px
    faded = preprocess_image(thin, box=20, center="mass")
    kept = MNIST.pixels(thin)
    assert stroke_width(kept > 127) >= 1.5
    assert (kept > 127).sum() > 3 * (faded > 127).sum()
    # ...and it then resembles the same character drawn with a normal pen
    normal = MNIST.pixels(seven(width=14)).astype(float)
    assert np.corrcoef(kept.ravel(), normal.ravel())[0, 1] > 0.8


def test_mnist_convention_20px_box_centred_by_mass():
    # An "L": its mass sits low and left of its box centre.
    image = Image.new("L", (200, 200), 255)
    draw = ImageDraw.Draw(image)
    draw.rectangle([40, 20, 60, 180], fill=0)
    draw.rectangle([40, 160, 160, 180], fill=0)
    out = MNIST.pixels(image).astype(float)
    rows, cols = np.nonzero(out > 0)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 <= 21  # in a 20 px box (+ blur)
    y, x = np.indices(out.shape)
    assert abs((y * out).sum() / out.sum() - 13.5) <= 0.5
    assert abs((x * out).sum() / out.sum() - 13.5) <= 0.5
    boxed = preprocess_image(image, box=20).astype(float)  # centred by its box instead
    assert abs((x * boxed).sum() / boxed.sum() - 13.5) > 2


def test_normalise_matches_training():
    pre = Preprocessing(mean=0.25, std=0.5)
    x = pre.normalise(np.full((2, 28, 28), 255, dtype=np.uint8))
    assert x.shape == (2, 1, 28, 28) and float(x.max()) == pytest.approx(1.5)


def test_each_datamodule_supplies_its_preprocessing():
    mnist = MNISTDataModule().preprocessing()
    assert (mnist.box, mnist.center, mnist.mean, mnist.std) == (20, "mass", 0.1307, 0.3081)
    english = EnglishDataModule(margin=3, min_box=0.6, mean=0.2, std=0.4).preprocessing()
    assert (english.margin, english.min_box, english.center, english.mean) == (3, 0.6, "box", 0.2)
    emnist = EMNISTDataModule(split="digits").preprocessing()
    assert (emnist.margin, emnist.box, emnist.center, emnist.mean) == (2, None, "box", EMNISTDataModule.MEAN)
    assert Preprocessing.from_dict(english.to_dict()) == english
    with pytest.raises(HwrError, match="unknown preprocessing keys"):
        Preprocessing.from_dict({"colour": 1})


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_load_image_accepts_png_bytes_and_files(tmp_path):
    assert load_image(png_bytes(seven())).size == (300, 300)
    seven().save(tmp_path / "7.png")
    assert load_image(tmp_path / "7.png").size == (300, 300)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"%PDF-1.4 not a picture", "not an image"),
        (b"x" * 2000, "over the 0 MB limit"),
        (png_bytes(seven())[:400], "corrupt or truncated"),
    ],
)
def test_load_image_rejects_bad_uploads_with_one_line(data, message):
    with pytest.raises(HwrError, match=message) as info:
        load_image(data, max_bytes=1000 if len(data) == 2000 else None)
    assert "\n" not in str(info.value) and "PIL" not in str(info.value)  # a user's words, not a library's


def test_load_image_refuses_huge_dimensions_before_decoding():
    side = int(MAX_PIXELS**0.5) + 100
    huge = png_bytes(Image.new("1", (side, side)))  # a few KB compressed, 40 M pixels
    with pytest.raises(HwrError, match="pixel limit"):
        load_image(huge)


def test_load_image_missing_file(tmp_path):
    with pytest.raises(HwrError, match="no such file"):
        load_image(tmp_path / "nope.png")
