"""Finding and decoding the images of a folder set (hwr.data.folder): the three layouts, the
csv, writers from file names, decoding in parallel into the training convention.

Three layouts are recognised under the dataset folder:
- a csv of `image,label` rows (paths relative to the csv; Kaggle's `english.csv` + `Img/`);
- Chars74K: `Img/Sample001..062/img001-001.png` (or `Sample*/` directly);
- class per folder: `<class name>/<any image>`.
"""

from __future__ import annotations

import csv
import logging
import re
import string
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hwr.errors import HwrError
from hwr.preprocess import IMAGE_SUFFIXES, preprocess_image
from hwr.track import track

log = logging.getLogger("hwr")
CHARS74K_CLASSES = list(string.digits + string.ascii_uppercase + string.ascii_lowercase)
_WRITER = re.compile(r"-(\d+)\.[A-Za-z]+$")  # img001-023.png -> writer 23


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
        named = []
        for folder in samples:
            number = int(folder.name.removeprefix("Sample"))
            if not 1 <= number <= len(CHARS74K_CLASSES):
                raise HwrError(f"{folder}: Chars74K sample folders run from Sample001 to Sample062")
            named.append((folder, CHARS74K_CLASSES[number - 1]))
    else:
        classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        named = [(d, d.name) for d in classes]
    pairs = []
    for folder, label in named:
        images = _images_in(folder)
        if not images:
            log.warning("class folder %s holds no images: class %r is left out of the set", folder, label)
        pairs += [(p, label) for p in images]
    if len({label for _, label in pairs}) < 2:
        raise HwrError(
            f"found {len(pairs)} images but fewer than 2 classes in {root}: expected english.csv + Img/, "
            "Img/Sample001..062/, or one folder of images per class"
        )
    return _index(pairs)


def _images_in(folder: Path) -> list[Path]:
    """The images anywhere below `folder` (subfolders of a class folder are read too; hidden
    files and folders are not)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


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
    seen: dict[Path, tuple[int, str]] = {}  # each image's first line and label
    for line, (image, label) in enumerate(rows, start=2):
        path = csv_path.parent / image  # an absolute path stays as it is
        if not path.is_file():
            missing.append(f"line {line}: {image}")
        key = path.resolve()
        if key in seen:
            first, first_label = seen[key]
            if first_label != label:
                raise HwrError(
                    f"{csv_path} gives {image} two labels, {first_label!r} on line {first} and {label!r} "
                    f"on line {line}; keep the right row"
                )
            raise HwrError(
                f"{csv_path} lists {image} twice, on lines {first} and {line}: a repeated image could "
                "land in both the training and the test split; remove the repeated row"
            )
        seen[key] = (line, label)
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
    news = (f"decoding {len(jobs):,} images (once: they are cached)", f"decoded {len(jobs):,} images")
    if workers > 1 and len(jobs) > 64:
        with ProcessPoolExecutor(workers) as pool:
            results = list(track(pool.map(_decode, jobs, chunksize=32), len(jobs), *news))
    else:
        results = list(track(map(_decode, jobs), len(jobs), *news))
    for path, result in zip(paths, results, strict=True):
        if isinstance(result, str):
            raise HwrError(f"cannot decode image {path} ({result}); replace or delete the file")
    return torch.from_numpy(np.stack(results))
