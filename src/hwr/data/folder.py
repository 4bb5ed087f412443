"""Images in a folder, one character each: `data=folder` (your own set) and, through
`hwr.data.english`, the English Handwritten Characters set.

Three layouts are recognised under the dataset folder:
- a csv of `image,label` rows (paths relative to the csv; Kaggle's `english.csv` + `Img/`);
- Chars74K: `Img/Sample001..062/img001-001.png` (or `Sample*/` directly);
- class per folder: `<class name>/<any image>`.

The files are decoded once, turned into the MNIST convention (white ink on black, the
character filling the frame less a margin) by `hwr.preprocess.preprocess_image`, and cached
as one uint8 tensor keyed by the file list and the preprocessing parameters, so later runs
load in well under a second.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from hwr.data.base import CharDataModule
from hwr.data.scan import CHARS74K_CLASSES, MISSING, FileIndex, decode_all, scan_folder
from hwr.data.sets import LabelledImages, split_indices
from hwr.errors import HwrError
from hwr.files import write_bytes
from hwr.preprocess import Preprocessing

log = logging.getLogger("hwr")
__all__ = ["CHARS74K_CLASSES", "FolderDataModule", "decode_all", "default_cache_dir", "scan_folder"]
# bump when preprocess_image changes what it produces (2: paper from the border; 3: hwr.paper's steps)
CACHE_VERSION = 3


def default_cache_dir() -> Path:
    """`$HWR_CACHE_DIR`, else `$XDG_CACHE_HOME/hwr`, else `~/.cache/hwr`."""
    if os.environ.get("HWR_CACHE_DIR"):
        return Path(os.environ["HWR_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hwr"


def save_cache(images: torch.Tensor, cache: Path) -> None:
    """Write the decoded images to `cache` atomically (a killed run never leaves half a file).
    A cache that cannot be written only costs the next run the decoding: one warning."""
    buffer = io.BytesIO()
    torch.save(images, buffer)  # in memory: torch's own file writer reports errors as RuntimeError
    try:
        write_bytes(cache, buffer.getbuffer(), "the decoded-image cache")
    except (HwrError, OSError) as e:
        cause = e.__cause__ if isinstance(e.__cause__, OSError) else e
        log.warning(
            "cannot write the image cache in %s (%s): the images will be decoded again next time; "
            "set HWR_CACHE_DIR to a writable folder to keep them",
            cache.parent,
            getattr(cause, "strerror", None) or cause,
        )


class FolderDataModule(CharDataModule):
    """A folder of character images (see module docstring): `data=folder data.folder=...`.

    Args:
        folder: dataset folder, relative to `data_dir` unless absolute.
        csv: the `image,label` csv inside `folder` to read (default: `english.csv`, or the
            folder's only csv; without one, class subfolders).
        test_folder: a folder of test images in the same layout (classes by name); null: the
            test split is carved from `folder` (`test_fraction`, `split_by`).
        image_size, margin, min_box: output size, empty border and minimum crop box (share
            of the page; keeps relative character size) of `preprocess_image`.
        test_fraction: share held out for test (0.25, as the Kaggle notebooks people start from).
        split_by: "class" (stratified random split) or "writer" (each writer's images
            all in one of train/val/test; writers from file names like img001-023.png).
        cache_dir: where the preprocessed tensor is cached (default `~/.cache/hwr`).
        decode_workers: processes used the first time the images are decoded.
        batch_size: 64: sets of this kind are small (English Hnd: 2,294 training images).
    """

    name = "folder"
    missing = MISSING  # the error when the folder is not there
    # pixel statistics of English Hnd's training pool at 28 px (a typical scanned set): a
    # user's set may differ; data.mean / data.std set its own (explore.py measures them)
    MEAN, STD = 0.2365, 0.3894

    def __init__(
        self,
        data_dir: str | Path | None = None,
        folder: str | None = None,
        csv: str | None = None,
        test_folder: str | None = None,
        image_size: int = 28,
        margin: int = 2,
        min_box: float = 0.0,
        test_fraction: float = 0.25,
        split_by: str = "class",
        cache_dir: str | Path | None = None,
        decode_workers: int | None = None,
        batch_size: int = 64,
        **kwargs,
    ):
        if not folder:
            raise HwrError(
                "data=folder needs data.folder=<a folder of class subfolders, or of images with an "
                "image,label csv>"
            )
        super().__init__(data_dir, batch_size=batch_size, **kwargs)
        self.root = self._resolve(folder)
        self.csv_name = csv
        self.test_root = self._resolve(test_folder) if test_folder else None
        self._image_size, self.margin, self.min_box = image_size, margin, min_box
        self.test_fraction, self.split_by = test_fraction, split_by
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.decode_workers = decode_workers or os.cpu_count() or 1

    def _resolve(self, folder: str | Path) -> Path:
        return Path(folder) if Path(folder).is_absolute() else self.data_dir / folder

    @property
    def image_size(self) -> int:
        return self._image_size

    def split_args(self) -> dict[str, Any]:
        # the images (folder), the test split carved from them (test_fraction, split_by) and the
        # geometry they are decoded at
        return {
            **super().split_args(),
            "folder": self.hparams.folder,
            "csv": self.csv_name,
            "test_folder": self.hparams.test_folder,
            "test_fraction": self.test_fraction,
            "split_by": self.split_by,
            "image_size": self.image_size,
            "margin": self.margin,
            "min_box": self.min_box,
        }

    def preprocessing(self) -> Preprocessing:
        # the geometry the scans were decoded with (decode_all), for any new image
        return Preprocessing(
            image_size=self.image_size, margin=self.margin, min_box=self.min_box, mean=self.mean, std=self.std
        )

    @cached_property
    def files(self) -> FileIndex:
        return scan_folder(self.root, self.csv_name, self.missing)

    @cached_property
    def test_files_index(self) -> FileIndex | None:
        """The test folder's files (None: the test split is carved from `folder`)."""
        return scan_folder(self.test_root, self.csv_name) if self.test_root is not None else None

    @cached_property
    def class_names(self) -> list[str]:
        names = set(self.files.labels)
        if self.test_files_index is not None:
            extra = sorted(set(self.test_files_index.labels) - names)
            if extra:
                raise HwrError(
                    f"{self.test_root} has classes that {self.root} lacks ({', '.join(extra[:5])}): "
                    "a model cannot learn them; remove them or add training images"
                )
        return sorted(names)

    def cache_path(self, files: FileIndex | None = None, root: Path | None = None) -> Path:
        """Cache file for this file list (names, labels, sizes, modification times) and these
        preprocessing parameters."""
        files, root = files or self.files, root or self.root
        h = hashlib.sha256(f"v{CACHE_VERSION} {self.image_size} {self.margin} {self.min_box}\n".encode())
        for path, label in zip(files.paths, files.labels, strict=True):
            # size and modification time: a replaced image (even of the same size) is decoded again
            stat = path.stat()
            # relative where it can be (the cache survives moving the set); a csv may name
            # images outside the folder by absolute path
            name = path.relative_to(root) if path.is_relative_to(root) else path.absolute()
            h.update(f"{name}\t{label}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        return self.cache_dir / f"{self.name}-{self.image_size}px-{h.hexdigest()[:16]}.pt"

    def _decoded(self, files: FileIndex, root: Path) -> LabelledImages:
        """The images of `files`, preprocessed, from the cache when it is there."""
        cache = self.cache_path(files, root)
        images = None
        if cache.is_file():
            try:
                images = torch.load(cache, weights_only=True)
            except Exception:  # noqa: BLE001 - a damaged cache is rebuilt, not fatal
                log.warning("cache %s is unreadable: decoding the images again", cache)
        if images is None or len(images) != len(files.paths):
            images = decode_all(files.paths, self.image_size, self.margin, self.decode_workers, self.min_box)
            save_cache(images, cache)
        index = {name: i for i, name in enumerate(self.class_names)}
        labels = torch.tensor([index[label] for label in files.labels])
        groups = None
        if self.split_by == "writer":
            if any(w is None for w in files.writers):
                raise HwrError("data.split_by=writer needs file names like img001-023.png (writer 23)")
            groups = torch.tensor(files.writers)
        return LabelledImages(images, labels, groups)

    @cached_property
    def pool(self) -> LabelledImages:
        """All images of `folder`, preprocessed."""
        return self._decoded(self.files, self.root)

    @cached_property
    def _train_test(self) -> tuple[torch.Tensor, torch.Tensor]:
        pool = self.pool
        if self.test_root is not None:  # the test set is its own folder: all of `folder` trains
            return torch.arange(len(pool)), torch.empty(0, dtype=torch.long)
        return split_indices(pool.labels, self.test_fraction, self.hparams.seed, pool.groups)

    def load_train(self) -> LabelledImages:
        return self.pool.subset(self._train_test[0])

    def load_test(self) -> LabelledImages:
        if self.test_files_index is not None:
            return self._decoded(self.test_files_index, self.test_root)
        return self.pool.subset(self._train_test[1])

    def test_files(self) -> list[tuple[Path, str]]:
        """The test split as (image file, class name), in test-set order: predict.py's input
        for checking that files on disk give the same accuracy as eval.py."""
        if self.test_files_index is not None:
            return list(zip(self.test_files_index.paths, self.test_files_index.labels, strict=True))
        return [(self.files.paths[i], self.files.labels[i]) for i in self._train_test[1].tolist()]
