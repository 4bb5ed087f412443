"""A user's own folder (`data=folder`) read exactly: empty class folders, nested folders,
repeated or conflicting csv rows, absolute paths, an unwritable cache."""

from __future__ import annotations

import csv
import logging
import os
import stat
from pathlib import Path

import pytest
from helpers import ink_png, write_english
from PIL import Image, ImageDraw

from hwr.data.folder import FolderDataModule
from hwr.errors import HwrError


def folder_set(root: Path, classes: str = "abc", per_class: int = 6) -> Path:
    for c, name in enumerate(classes):
        for w in range(per_class):
            ink_png(root / name / f"img-{w:03d}.png", c, w)
    return root


def module(root: Path, tmp_path: Path, **kwargs) -> FolderDataModule:
    return FolderDataModule(folder=str(root), cache_dir=tmp_path / "cache", decode_workers=1, **kwargs)


def write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label"])
        writer.writerows(rows)


def csv_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))[1:]


def test_an_empty_class_folder_is_named_in_a_warning(tmp_path, caplog):
    root = folder_set(tmp_path / "set")
    (root / "d").mkdir()
    with caplog.at_level(logging.WARNING, logger="hwr"):
        dm = module(root, tmp_path)
        assert dm.class_names == ["a", "b", "c"]
    assert f"class folder {root / 'd'} holds no images: class 'd' is left out" in caplog.text


def test_images_in_nested_folders_are_read(tmp_path):
    root = folder_set(tmp_path / "set")
    ink_png(root / "a" / "session2" / "deeper" / "img-100.png", 0, 1)
    ink_png(root / "a" / ".thumbnails" / "img-101.png", 0, 1)  # hidden: not a sample
    dm = module(root, tmp_path)
    assert dm.files.labels.count("a") == 7
    assert root / "a" / "session2" / "deeper" / "img-100.png" in dm.files.paths


def test_a_repeated_csv_row_is_an_error_naming_both_lines(tmp_path):
    root = write_english(tmp_path / "english")
    rows = csv_rows(root / "english.csv")
    write_csv(root / "english.csv", [*rows[:5], rows[2], *rows[5:]])
    with pytest.raises(HwrError) as caught:
        module(root, tmp_path).files  # noqa: B018 - reading the csv is the point
    assert f"lists {rows[2][0]} twice, on lines 4 and 7" in str(caught.value)
    assert "remove the repeated row" in str(caught.value)


def test_one_image_with_two_labels_is_an_error(tmp_path):
    root = write_english(tmp_path / "english")
    rows = csv_rows(root / "english.csv")
    write_csv(root / "english.csv", [*rows, (rows[0][0], "Z")])
    with pytest.raises(
        HwrError, match=rf"gives {rows[0][0]} two labels, '0' on line 2 and 'Z' on line {len(rows) + 2}"
    ):
        module(root, tmp_path).files  # noqa: B018


def test_absolute_paths_outside_the_folder_are_read(tmp_path):
    elsewhere = folder_set(tmp_path / "elsewhere", "xy", 8)
    root = tmp_path / "set"
    root.mkdir()
    rows = [(str(p), p.parent.name) for p in sorted(elsewhere.rglob("*.png"))]
    write_csv(root / "labels.csv", rows)
    dm = module(root, tmp_path)
    dm.setup("fit")
    assert dm.class_names == ["x", "y"] and len(dm.pool.images) == 16
    assert dm.cache_path().is_file()


def decode_without_cache(root: Path, tmp_path: Path, caplog) -> list[str]:
    """Set up a 36-image set whose cache cannot be written: every image decoded, and the
    warnings about the cache."""
    with caplog.at_level(logging.WARNING, logger="hwr"):
        dm = module(root, tmp_path)
        dm.setup("fit")
    assert len(dm.pool.images) == 36
    return [r.getMessage() for r in caplog.records if "image cache" in r.getMessage()]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_cache_falls_back_to_no_cache_with_one_warning(tmp_path, caplog):
    root = folder_set(tmp_path / "set", per_class=12)
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        warnings = decode_without_cache(root, tmp_path, caplog)
        assert len(warnings) == 1 and "set HWR_CACHE_DIR to a writable folder" in warnings[0]
        assert list(cache.iterdir()) == []
    finally:
        cache.chmod(stat.S_IRWXU)


def test_a_cache_that_cannot_be_written_falls_back_with_one_warning(tmp_path, caplog, monkeypatch):
    """As root (CI) a read-only folder is still writable: a full disk stands in for it."""
    import errno

    from hwr import files

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    root = folder_set(tmp_path / "set", per_class=12)
    monkeypatch.setattr(files.os, "fsync", full)
    warnings = decode_without_cache(root, tmp_path, caplog)
    assert len(warnings) == 1 and "No space left on device" in warnings[0]
    assert not any((tmp_path / "cache").glob("*"))  # no half-written file left


def test_test_images_that_repeat_training_images_are_reported(tmp_path, caplog):
    """Copies of training images in the test folder (other names, same pixels): a warning at
    the start, and explore's counts."""
    import shutil

    from hwr.data.sets import split_overlaps

    root = folder_set(tmp_path / "set", per_class=12)
    test = tmp_path / "test"
    for i, name in enumerate("abc"):  # shapes no training image has (an L, not a bar)
        image = Image.new("RGB", (60, 45), "white")
        ImageDraw.Draw(image).line([(10, 5), (10, 35), (25 + 5 * i, 35)], fill="black", width=3)
        (test / name).mkdir(parents=True)
        image.save(test / name / "img-000.png")
    for name in ("a", "b"):  # and 2 byte copies of training files
        shutil.copyfile(root / name / "img-005.png", test / name / "img-001.png")
    with caplog.at_level(logging.WARNING, logger="hwr"):
        dm = module(root, tmp_path, test_folder=str(test))
        dm.setup("fit")
        dm.setup("test")
    # each copied image has pixel twins among its class's training files (the fixture's bars
    # repeat every 3 writers), so both land in training
    assert split_overlaps(dm.train_set, dm.val_set, dm.test_set)["test in train"] == 2
    assert "folder: 2 of 5 test images repeat a training image pixel for pixel" in caplog.text
