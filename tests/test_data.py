import os
import stat

import numpy as np
import pytest
import torch
from helpers import ENGLISH_CLASSES, make_config, write_emnist, write_english, write_mnist

from hwr.data import folder as folder_module
from hwr.data.augment import AugmentConfig, random_affine
from hwr.data.emnist import EMNISTDataModule
from hwr.data.english import EnglishDataModule
from hwr.data.mnist import MNISTDataModule
from hwr.data.sets import split_indices
from hwr.errors import HwrError
from hwr.validation import validate


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_loads_gz_or_plain(tmp_path, gz):
    write_mnist(tmp_path, n_train=120, n_test=40, gz=gz)
    dm = MNISTDataModule(tmp_path, download=False, val_fraction=0.25)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (90, 30, 40)
    assert dm.train_set.images.dtype == torch.uint8 and dm.input_shape == (1, 28, 28)
    assert dm.num_classes == 10 and dm.class_names[3] == "3"
    # stratified: every class in val
    assert set(dm.val_set.labels.tolist()) == set(range(10))


def test_mnist_reads_a_read_only_folder_without_writing(tmp_path):
    write_mnist(tmp_path, n_train=50, n_test=20)
    raw = tmp_path / "MNIST" / "raw"
    before = sorted(os.listdir(raw))
    for p in [raw, *raw.iterdir()]:
        p.chmod(stat.S_IREAD | stat.S_IEXEC if p.is_dir() else stat.S_IREAD)
    try:
        dm = MNISTDataModule(tmp_path, download=True)  # present files: never fetched again
        dm.setup()
        assert len(dm.test_set) == 20
        assert sorted(os.listdir(raw)) == before
    finally:
        raw.chmod(0o755)


def test_mnist_missing_offline_names_folder_and_files(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(tv_utils, "download_url", offline)
    dm = MNISTDataModule(tmp_path / "nowhere", download=True)
    with pytest.raises(HwrError) as err:
        dm.setup("fit")
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in msg and "download failed" in msg
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        assert name in msg


def test_mnist_no_download(tmp_path):
    with pytest.raises(HwrError, match="data.download=true"):
        MNISTDataModule(tmp_path, download=False).setup("test")


def test_mnist_truncated_file(tmp_path):
    write_mnist(tmp_path, n_train=50, n_test=20, gz=False)
    path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(HwrError, match="t10k-images-idx3-ubyte is truncated"):
        MNISTDataModule(tmp_path, download=False).setup("test")


@pytest.mark.parametrize("layout", ["raw", "gzip"])
def test_emnist_images_load_upright(tmp_path, layout):
    upright = write_emnist(tmp_path, "balanced", 47, layout=layout)
    dm = EMNISTDataModule(tmp_path, split="balanced", download=False)
    dm.setup("test")
    assert torch.equal(dm.test_set.images, torch.from_numpy(upright["test"][0]))
    assert dm.num_classes == 47
    assert "".join(dm.class_names) == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt"


def test_emnist_asymmetric_glyph_is_upright(tmp_path):
    # An "L": a vertical bar on the left and a foot at the bottom, stored transposed.
    glyph = np.zeros((28, 28), np.uint8)
    glyph[4:24, 6:9] = 255
    glyph[21:24, 6:20] = 255
    from hwr.data.idx import write_idx

    raw = tmp_path / "EMNIST" / "raw"
    write_idx(raw / "emnist-digits-test-images-idx3-ubyte", glyph.T[None])
    write_idx(raw / "emnist-digits-test-labels-idx1-ubyte", np.array([1], np.uint8))
    dm = EMNISTDataModule(tmp_path, split="digits", download=False)
    dm.setup("test")
    image = dm.test_set.images[0]
    assert image[4:24, 6:9].float().mean() == 255 and image[21:24, 6:20].float().mean() == 255
    assert image[4:10, 15:24].sum() == 0  # upper right is empty


def test_emnist_letters_labels_start_at_zero(tmp_path):
    upright = write_emnist(tmp_path, "letters", 26)
    dm = EMNISTDataModule(tmp_path, split="letters", download=False)
    dm.setup()
    assert dm.test_set.labels.min() == 0 and dm.test_set.labels.max() == 25
    assert torch.equal(dm.test_set.labels, torch.from_numpy(upright["test"][1]).long())
    assert dm.class_names[0] == "a" and dm.num_classes == 26


def test_emnist_only_test_files_training_fails_clearly(tmp_path):
    write_emnist(tmp_path, "byclass", 62, parts=("test",))
    dm = EMNISTDataModule(tmp_path, split="byclass", download=False)
    dm.setup("test")
    assert len(dm.test_set) == 100
    with pytest.raises(HwrError, match=r"EMNIST byclass train files not found .*emnist-byclass-train-images"):
        dm.setup("fit")


def test_emnist_bad_split():
    with pytest.raises(HwrError, match="not an EMNIST split"):
        EMNISTDataModule(split="bogus")


@pytest.mark.parametrize("layout", ["kaggle", "chars74k", "folders"])
def test_english_layouts(tmp_path, layout):
    root = write_english(tmp_path / "english", layout=layout)
    dm = EnglishDataModule(tmp_path, cache_dir=tmp_path / "cache", decode_workers=1)
    dm.setup()
    total = len(dm.train_set) + len(dm.val_set) + len(dm.test_set)
    assert total == 5 * 8 and dm.num_classes == 5
    if layout != "folders":
        assert dm.class_names == ENGLISH_CLASSES
    assert root.is_dir()
    images = dm.pool.images
    assert images.shape == (40, 28, 28) and images.dtype == torch.uint8
    # converted to white ink on black, cropped: border dark, ink bright, margin kept
    assert images[:, 0, :].float().mean() < 5 and images.float().amax(dim=(1, 2)).min() > 200


def test_english_cache_is_reused(tmp_path, monkeypatch):
    write_english(tmp_path / "english")
    first = EnglishDataModule(tmp_path, cache_dir=tmp_path / "cache", decode_workers=1)
    first.setup()
    assert first.cache_path().is_file()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache was valid")

    monkeypatch.setattr(folder_module, "decode_all", no_decoding)
    second = EnglishDataModule(tmp_path, cache_dir=tmp_path / "cache")
    second.setup()
    assert torch.equal(first.pool.images, second.pool.images)
    # another image size is another cache entry
    other_size = EnglishDataModule(tmp_path, image_size=32, cache_dir=tmp_path / "cache")
    assert other_size.cache_path() != first.cache_path()


def test_english_writer_split_is_disjoint(tmp_path):
    write_english(tmp_path / "english", writers=12)
    dm = EnglishDataModule(tmp_path, split_by="writer", cache_dir=tmp_path / "c", decode_workers=1)
    dm.setup()
    parts = [set(s.groups.tolist()) for s in (dm.train_set, dm.val_set, dm.test_set)]
    assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert len(parts[2]) == 3  # 25% of 12 writers


def test_english_missing_folder(tmp_path):
    with pytest.raises(HwrError, match=r"English Handwritten Characters not found at .*Kaggle"):
        EnglishDataModule(tmp_path).setup()


def test_english_csv_names_missing_image(tmp_path):
    root = write_english(tmp_path / "english")
    (root / "Img" / "img011-003.png").unlink()
    message = r"english.csv names images that do not exist, line \d+: Img/img011-003.png"
    with pytest.raises(HwrError, match=message):
        EnglishDataModule(tmp_path, cache_dir=tmp_path / "c").setup()


def test_english_corrupt_image(tmp_path):
    root = write_english(tmp_path / "english")
    (root / "Img" / "img037-002.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(HwrError, match=r"cannot decode image .*img037-002.png"):
        EnglishDataModule(tmp_path, cache_dir=tmp_path / "c", decode_workers=1).setup()


def test_split_indices_stratified_and_seeded():
    labels = torch.arange(100) % 4
    keep, held = split_indices(labels, 0.2, seed=3)
    assert len(held) == 20 and torch.bincount(labels[held]).tolist() == [5, 5, 5, 5]
    assert torch.equal(held, split_indices(labels, 0.2, seed=3)[1])
    assert not torch.equal(held, split_indices(labels, 0.2, seed=4)[1])
    assert sorted(torch.cat([keep, held]).tolist()) == list(range(100))


def test_loader_batches_and_device_transform(tmp_path):
    write_mnist(tmp_path, n_train=300, n_test=50)
    dm = MNISTDataModule(tmp_path, download=False, batch_size=32, augment={"shift": 2})
    dm.setup()
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (32, 28, 28) and images.dtype == torch.uint8 and labels.shape == (32,)
    x = dm.transform_batch(images, train=False)
    assert x.shape == (32, 1, 28, 28)
    expected = (images.float() / 255 - 0.1307) / 0.3081  # MNIST's own statistics
    assert torch.allclose(x[:, 0], expected)
    assert not torch.allclose(dm.transform_batch(images, train=True), x)  # augmented in training
    assert len(dm.test_dataloader()) == 1  # eval batches are large


def test_augment_off_is_identity_and_shift_moves_ink():
    x = torch.zeros(4, 1, 28, 28)
    x[:, :, 12:16, 12:16] = 1
    assert random_affine(x, AugmentConfig()) is x
    moved = random_affine(x, AugmentConfig(shift=5), torch.Generator().manual_seed(0))
    assert moved.shape == x.shape
    assert not torch.allclose(moved, x)
    assert torch.allclose(moved.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)), rtol=0.05)  # ink kept


def test_elastic_warp_bends_strokes_locally():
    x = torch.zeros(2, 1, 28, 28)
    x[:, :, 4:24, 13:15] = 1  # a vertical bar
    warped = random_affine(x, AugmentConfig(elastic=2.0, elastic_sigma=3.0), torch.Generator().manual_seed(0))
    assert not torch.allclose(warped, x) and not torch.allclose(warped[0], warped[1])  # one field per image
    # A smooth warp of at most 2 px moves ink nearby only: no ink appears far from the bar.
    assert warped[..., :, :10].abs().max() == 0 and warped[..., :, 18:].abs().max() == 0
    assert torch.allclose(warped.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)), rtol=0.15)


def test_bad_augment_key():
    with pytest.raises(HwrError, match="shift, rotate, scale"):
        MNISTDataModule(augment={"shear": 3})


def test_emnist_offline_download_fails_clearly(tmp_path, monkeypatch):
    import torchvision.datasets

    class Offline:
        def __init__(self, *args, **kwargs):
            raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "EMNIST", Offline)
    write_emnist(tmp_path, "byclass", 62, parts=("test",))
    dm = EMNISTDataModule(tmp_path, split="byclass")  # download=true by default
    with pytest.raises(HwrError) as err:
        dm.setup("fit")
    message = str(err.value)
    assert "emnist-byclass-train-images-idx3-ubyte" in message and "network unreachable" in message
    assert str(tmp_path / "EMNIST" / "raw") in message and str(tmp_path / "EMNIST" / "gzip") in message


def test_data_dir_defaults_to_env_then_data(monkeypatch, tmp_path):
    monkeypatch.setenv("HWR_DATA_DIR", str(tmp_path))
    assert MNISTDataModule().data_dir == tmp_path
    monkeypatch.delenv("HWR_DATA_DIR")
    assert str(MNISTDataModule().data_dir) == "data"


def test_english_images_without_csv_is_an_error(tmp_path):
    root = write_english(tmp_path / "english")
    (root / "english.csv").unlink()
    with pytest.raises(HwrError, match="fewer than 2 classes"):
        EnglishDataModule(tmp_path).setup()


def test_empty_validation_split_is_an_error(tmp_path):
    write_mnist(tmp_path, n_train=50, n_test=20)
    with pytest.raises(
        HwrError, match=r"data.val_fraction=0 must be a number between 0 and 1 \(neither included\)"
    ):
        validate(make_config("train", ["data.val_fraction=0"], tmp_path, tmp_path / "out"))
    with pytest.raises(HwrError, match=r"data.val_fraction=0.001 of 50 training images holds out none"):
        MNISTDataModule(tmp_path, download=False, val_fraction=0.001).setup("fit")


def test_damaged_english_cache_is_rebuilt(tmp_path):
    write_english(tmp_path / "english")
    dm = EnglishDataModule(tmp_path, cache_dir=tmp_path / "cache", decode_workers=1)
    dm.setup()
    dm.cache_path().write_bytes(b"not a tensor")
    again = EnglishDataModule(tmp_path, cache_dir=tmp_path / "cache", decode_workers=1)
    again.setup()
    assert torch.equal(again.pool.images, dm.pool.images)
