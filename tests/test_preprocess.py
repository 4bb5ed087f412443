import numpy as np
from PIL import Image, ImageDraw

from hwr.preprocess import preprocess_image


def page(box, size=(300, 200), ink="black", paper="white", mode="RGB"):
    image = Image.new(mode, size, paper)
    ImageDraw.Draw(image).rectangle(box, fill=ink)
    return image


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


def test_min_box_keeps_small_characters_small():
    small, big = page([140, 90, 160, 110]), page([100, 50, 200, 150])
    ink_area = [(preprocess_image(p, min_box=0.8) > 128).sum() for p in (small, big)]
    assert ink_area[0] < ink_area[1] / 4
    same = [(preprocess_image(p) > 128).sum() for p in (small, big)]
    assert abs(int(same[0]) - int(same[1])) <= 0.1 * same[1]  # without it both fill the frame
