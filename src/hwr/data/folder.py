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

import csv
import hashlib
import logging
import os
import re
import string
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from hwr.data.base import CharDataModule
from hwr.data.sets import LabelledImages, split_indices
from hwr.errors import HwrError
from hwr.preprocess import IMAGE_SUFFIXES, Preprocessing, preprocess_image

log = logging.getLogger(__name__)
CHARS74K_CLASSES = list(string.digits + string.ascii_uppercase + string.ascii_lowercase)
CACHE_VERSION = 2  # bump when preprocess_image changes what it produces (2: paper from the border)
_WRITER = re.compile(r"-(\d+)\.[A-Za-z]+$")  # img001-023.png -> writer 23


def default_cache_dir() -> Path:
    """`$HWR_CACHE_DIR`, else `$XDG_CACHE_HOME/hwr`, else `~/.cache/hwr`."""
    if os.environ.get("HWR_CACHE_DIR"):
        return Path(os.environ["HWR_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hwr"


@dataclass
class FileIndex:
    """Every image file of the set, its class name and its writer (None when unknown)."""

    paths: list[Path]
    labels: list[str]
    writers: list[int | None]


MISSING = (
    "no image folder at {root}: point data.folder at a folder of class subfolders or of images "
    "with an image,label csv (relative to data.data_dir, or absolute)"
)


def scan_folder(root: Path, csv_name: str | None = None, missing: str = MISSING) -> FileIndex:
    """Find the images of `root` in any of the three layouts (see module docstring): its csv
    `csv_name` when given, else `english.csv` or a lone `*.csv` when there is one. `missing`:
    the error when `root` is no folder ({root} is filled in)."""
    if not root.is_dir():
        raise HwrError(missing.format(root=root))
    if csv_name is not None:
        if not (root / csv_name).is_file():
            raise HwrError(f"data.csv={csv_name}: no such file in {root}")
        return _scan_csv(root / csv_name)
    csvs = [root / "english.csv"] if (root / "english.csv").is_file() else sorted(root.glob("*.csv"))
    if len(csvs) == 1:
        return _scan_csv(csvs[0])
    if len(csvs) > 1:
        names = ", ".join(c.name for c in csvs)
        raise HwrError(f"{root} holds several csv files ({names}); name the one to read with data.csv=")
    samples = sorted((root / "Img").glob("Sample0[0-9][0-9]")) or sorted(root.glob("Sample0[0-9][0-9]"))
    if samples:
        pairs = []
        for folder in samples:
            number = int(folder.name.removeprefix("Sample"))
            if not 1 <= number <= len(CHARS74K_CLASSES):
                raise HwrError(f"{folder}: Chars74K sample folders run from Sample001 to Sample062")
            pairs += [(p, CHARS74K_CLASSES[number - 1]) for p in _images_in(folder)]
    else:
        classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        pairs = [(p, d.name) for d in classes for p in _images_in(d)]
    if len({label for _, label in pairs}) < 2:
        raise HwrError(
            f"found {len(pairs)} images but fewer than 2 classes in {root}: expected english.csv + Img/, "
            "Img/Sample001..062/, or one folder of images per class"
        )
    return _index(pairs)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _index(pairs: list[tuple[Path, str]]) -> FileIndex:
    writers = [int(m.group(1)) if (m := _WRITER.search(p.name)) else None for p, _ in pairs]
    return FileIndex([p for p, _ in pairs], [label for _, label in pairs], writers)


def _scan_csv(csv_path: Path) -> FileIndex:
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"image", "label"} <= set(reader.fieldnames):
            raise HwrError(f"{csv_path} must have the header 'image,label', found {reader.fieldnames}")
        rows = [(row["image"], row["label"]) for row in reader]
    pairs, missing = [], []
    for line, (image, label) in enumerate(rows, start=2):
        path = csv_path.parent / image
        if not path.is_file():
            missing.append(f"line {line}: {image}")
        pairs.append((path, label))
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise HwrError(
            f"{csv_path} names images that do not exist, {missing[0]}{more}; "
            f"restore the files under {csv_path.parent} or remove those rows"
        )
    if not pairs:
        raise HwrError(f"{csv_path} lists no images")
    labels = {label for _, label in pairs}
    unknown = sorted(labels - set(CHARS74K_CLASSES))
    if unknown and len(unknown) < len(labels) / 4:  # mostly characters: the odd ones are likely typos
        # a typo ("O " or "10") would silently become a class of its own
        shown = ", ".join(repr(u) for u in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        log.warning(
            "%s has %d label(s) outside the 62 characters 0-9 A-Z a-z (%s): each is trained as a "
            "class of its own; fix the rows if that is a typo",
            csv_path,
            len(unknown),
            shown,
        )
    return _index(pairs)


def _decode(args: tuple[Path, int, int, float]) -> np.ndarray | str:
    path, image_size, margin, min_box = args
    try:
        with Image.open(path) as image:
            return preprocess_image(image, image_size, margin, min_box)
    except Exception as e:  # noqa: BLE001 - reported with the file name by the caller
        return f"{type(e).__name__}: {e}"


def decode_all(
    paths: list[Path], image_size: int, margin: int, workers: int, min_box: float = 0.0
) -> torch.Tensor:
    """Decode and preprocess every file (in parallel) into uint8 [N, S, S]."""
    jobs = [(p, image_size, margin, min_box) for p in paths]
    if workers > 1 and len(jobs) > 64:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_decode, jobs, chunksize=32))
    else:
        results = [_decode(job) for job in jobs]
    for path, result in zip(paths, results, strict=True):
        if isinstance(result, str):
            raise HwrError(f"cannot decode image {path} ({result}); replace or delete the file")
    return torch.from_numpy(np.stack(results))


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
        **kwargs,
    ):
        if split_by not in ("class", "writer"):
            raise HwrError(f"data.split_by={split_by!r}: use 'class' or 'writer'")
        if not folder:
            raise HwrError(
                "data=folder needs data.folder=<a folder of class subfolders, or of images with an "
                "image,label csv>"
            )
        super().__init__(data_dir, **kwargs)
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
            h.update(f"{path.relative_to(root)}\t{label}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
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
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(f".tmp{os.getpid()}")
                torch.save(images, tmp)
                tmp.replace(cache)  # atomic: a killed run never leaves a half-written cache
            except OSError:
                pass  # an unwritable cache only costs the next run the decoding time
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
