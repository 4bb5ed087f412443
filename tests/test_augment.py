"""Appearance augmentation (stroke width, blur, contrast, resolution) and augment_batch."""

import pytest
import torch

from hwr.data.augment import AugmentConfig, augment_batch, random_affine, random_appearance


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def strokes(b: int = 64) -> torch.Tensor:
    """A batch of identical ink-on-black 'characters': a cross of 2-px bars."""
    x = torch.zeros(b, 1, 28, 28)
    x[:, :, 6:22, 13:15] = 1
    x[:, :, 13:15, 6:22] = 1
    return x


def test_all_off_returns_input_itself():
    x = strokes(4)
    assert random_appearance(x, AugmentConfig()) is x
    assert augment_batch(x, AugmentConfig()) is x
    assert not AugmentConfig().enabled


def test_switches_and_enabled():
    for field in ("thickness", "blur", "contrast", "lowres"):
        cfg = AugmentConfig(**{field: 0.5})
        assert cfg.appearance and cfg.enabled and not cfg.geometric
    assert AugmentConfig(shift=2).geometric and not AugmentConfig(shift=2).appearance
    x = strokes(4)
    assert random_affine(x, AugmentConfig(blur=1.0)) is x  # the affine part stays off
    assert random_appearance(x, AugmentConfig(shift=2)) is x


def test_thickness_makes_some_strokes_thicker_and_some_thinner():
    x = strokes()
    y = random_appearance(x, AugmentConfig(thickness=1.0), gen())
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    ink, before = (y > 0.5).sum(dim=(1, 2, 3)), (x > 0.5).sum(dim=(1, 2, 3))
    assert (ink > before).any() and (ink < before).any()
    assert ((ink > before) | (ink < before)).all()  # probability 1: every image changes


def test_thickness_probability_leaves_some_images_alone():
    x = strokes()
    y = random_appearance(x, AugmentConfig(thickness=0.5), gen())
    same = (y == x).flatten(1).all(dim=1)
    assert same.any() and not same.all()


def test_blur_spreads_a_point_for_some_images_and_keeps_ink():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 14, 14] = 1
    y = random_appearance(x, AugmentConfig(blur=1.5), gen())
    spread = y[:, 0, 14, 15] > 0.01
    assert spread.any()
    assert (y[:, 0, 14, 14] < 1).any() and (y[:, 0, 14, 14] > y[:, 0, 14, 15]).all()  # still a peak
    assert torch.allclose(y.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)), rtol=1e-3)  # blur moves ink only
    assert y.min() >= 0 and y.max() <= 1


def test_contrast_lifts_background_and_dims_ink_within_bounds():
    c = 0.4
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 10:18, 10:18] = 1
    y = random_appearance(x, AugmentConfig(contrast=c), gen())
    bg, ink = y[:, 0, 0, 0], y[:, 0, 14, 14]
    assert (bg > 0).any() and (ink < 1).any()
    assert (bg >= 0).all() and (bg <= c / 2 + 1e-6).all()
    assert (ink >= 1 - c - 1e-6).all() and (ink <= 1).all()
    assert (ink > bg).all()  # still ink on a darker background
    # Uniform per image: the background is one level, the ink is one level.
    assert torch.equal(y[:, 0, :5, :5].amin(dim=(1, 2)), y[:, 0, :5, :5].amax(dim=(1, 2)))


def test_full_contrast_never_inverts_an_image():
    x = strokes()
    y = random_appearance(x, AugmentConfig(contrast=1.0), gen())
    assert y.min() >= 0 and y.max() <= 1
    assert (y[:, 0, 14, 14] >= y[:, 0, 0, 0]).all()


def test_lowres_keeps_shape_and_blurs_a_fine_checkerboard():
    i = torch.arange(28)
    board = ((i[:, None] + i[None, :]) % 2).float().expand(64, 1, 28, 28).contiguous()
    y = random_appearance(board, AugmentConfig(lowres=1.0), gen())
    assert y.shape == board.shape and y.min() >= 0 and y.max() <= 1
    changed = (y - board).abs().flatten(1).amax(dim=1) > 0.2
    assert changed.all()  # probability 1: every image loses the 1-px pattern
    # Different sizes per image (buckets), so not every image comes out the same.
    assert not torch.allclose(y[y.flatten(1).std(1).argmin()], y[y.flatten(1).std(1).argmax()])


def test_lowres_probability_leaves_some_images_alone():
    x = strokes()
    y = random_appearance(x, AugmentConfig(lowres=0.5), gen())
    same = (y == x).flatten(1).all(dim=1)
    assert same.any() and not same.all()


ALL = AugmentConfig(
    shift=2, rotate=10, scale=0.1, elastic=1.0, thickness=0.5, blur=1.0, contrast=0.3, lowres=0.5
)


def test_seeded_generator_is_deterministic_and_seeds_differ():
    x = strokes()
    a, b = augment_batch(x, ALL, gen(7)), augment_batch(x, ALL, gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, augment_batch(x, ALL, gen(8)))
    assert torch.equal(x, strokes())  # the input is not modified in place


def test_augment_batch_applies_both_parts():
    x = strokes()
    geo = AugmentConfig(shift=3)
    app = AugmentConfig(contrast=0.5)
    both = AugmentConfig(shift=3, contrast=0.5)
    assert torch.equal(augment_batch(x, geo, gen()), random_affine(x, geo, gen()))
    g = gen()
    expected = random_appearance(random_affine(x, both, g), both, g)
    assert torch.equal(augment_batch(x, both, gen()), expected)
    assert not torch.equal(augment_batch(x, both, gen()), augment_batch(x, app, gen()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_large_batch_keeps_dtype_device_and_range(dtype):
    x = strokes(512).to(dtype)
    y = augment_batch(x, ALL, gen())
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1


def test_non_square_and_tiny_images():
    for h, w in ((32, 20), (10, 10)):
        x = torch.rand(8, 1, h, w, generator=gen())
        y = random_appearance(x, AugmentConfig(thickness=1, blur=1, contrast=0.3, lowres=1), gen())
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
