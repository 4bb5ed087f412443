"""Corrections from the page, kept as a training set: `hwr serve collect=<folder>`.

A person who sees a wrong answer types what it was; the drawing is stored under the folder,
in the layout `data=folder` reads (and `experiment=personal` fine-tunes on):

- `<folder>/labels.csv`: `image,label` rows, the truth. Classes differing only in case (a, A)
  get folders that a case-insensitive file system (macOS, Windows) merges; the csv keeps
  their labels apart, and every file name is unique across classes.
- `<folder>/<class>/<time>.png`: the drawing as drawn (grey on white, at most `MAX_SIDE` px),
  what training reads through the same preprocessing as a prediction.
- `<folder>/.seen/<class>/<time>.png`: the 28x28 image the model saw, to look at; a hidden
  folder, so training skips it.

Only the model's classes are accepted, every file is written atomically (the csv last, so a
failed save leaves no row without its image), and the folder holds at most `MAX_ITEMS`.
"""

from __future__ import annotations

import csv
import io
import re
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from hwr.errors import HwrError
from hwr.files import write_bytes, write_text
from hwr.preprocess import on_white

LABELS = "labels.csv"
SEEN = ".seen"
MAX_SIDE = 512  # px: a drawing is stored no larger (the page's canvas is 280 CSS px)
MAX_ITEMS = 20_000  # a server open to a network must not fill its disk
MAX_LABEL = 32  # characters
_SAFE = re.compile(r"[A-Za-z0-9_-]+")


def class_folder(label: str) -> str:
    """A folder name for a class: the label when it is plain letters, digits, _ or -, else
    its code points (`u00e4`), so no label can name a path outside the folder."""
    if _SAFE.fullmatch(label):
        return label
    return "u" + "-".join(f"{ord(c):04x}" for c in label)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class Collection:
    """The folder of corrections (see module docstring); `save` is safe from several threads."""

    def __init__(self, folder: str | Path, classes: list[str]):
        self.folder = Path(folder).expanduser().resolve()
        self.classes = list(classes)
        self.csv = self.folder / LABELS
        if self.folder.is_dir() and not self.csv.is_file() and any(self.folder.iterdir()):
            raise HwrError(
                f"collect={folder} holds files but no {LABELS}: choose an empty or new folder "
                f"(collect writes {LABELS} and a folder per class)"
            )
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            reason = e.strerror or e
            raise HwrError(f"collect={folder}: cannot create it ({reason}); choose another folder") from e
        self.rows = self._read()
        unknown = sorted({label for _, label in self.rows} - set(self.classes))
        if unknown:
            raise HwrError(
                f"collect={folder}: {LABELS} holds classes this model does not know "
                f"({', '.join(unknown[:5])}); serve the model it was collected for, or choose another folder"
            )
        self._lock = threading.Lock()
        write_text(self.csv, self._csv_text(), "the collected labels")  # fails now if unwritable

    def _read(self) -> list[tuple[str, str]]:
        if not self.csv.is_file():
            return []
        try:
            with open(self.csv, newline="") as f:
                rows = list(csv.reader(f))
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise HwrError(f"collect: cannot read {self.csv} ({e}); fix or move it") from e
        if not rows or rows[0] != ["image", "label"] or any(len(r) != 2 for r in rows[1:]):
            raise HwrError(f"collect: {self.csv} is not an image,label csv; fix or move it")
        return [(r[0], r[1]) for r in rows[1:]]

    def _csv_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["image", "label"])
        writer.writerows(self.rows)
        return buffer.getvalue()

    def counts(self) -> dict[str, Any]:
        """{"count": images collected, "per_class": {label: images}} (what the page shows)."""
        per_class = Counter(label for _, label in self.rows)
        return {"count": len(self.rows), "per_class": dict(sorted(per_class.items()))}

    def check(self, label: Any) -> str:
        """The label, or a one-line HwrError saying why it cannot be stored."""
        if not isinstance(label, str) or not label or len(label) > MAX_LABEL:
            raise HwrError(f"label must be one of the model's classes, not {str(label)[:MAX_LABEL]!r}")
        if label not in self.classes:
            raise HwrError(f"{label!r} is not one of the model's {len(self.classes)} classes")
        return label

    def save(self, image: Image.Image, seen: np.ndarray, label: str) -> dict[str, Any]:
        """Store `image` (as drawn) and `seen` (as the model saw it) under `label`; what was
        saved and the counts."""
        label = self.check(label)
        drawn = on_white(image)
        drawn.thumbnail((MAX_SIDE, MAX_SIDE))  # keeps the aspect; never enlarges
        with self._lock:
            if len(self.rows) >= MAX_ITEMS:
                raise HwrError(
                    f"the collection holds {MAX_ITEMS} images, its limit; train on it and start another"
                )
            name = self._free_name(class_folder(label))
            write_bytes(self.folder / name, png(drawn), "a collected drawing")
            write_bytes(self.folder / SEEN / name, png(Image.fromarray(seen)), "what the model saw")
            self.rows.append((name, label))
            try:
                write_text(self.csv, self._csv_text(), "the collected labels")
            except HwrError:
                self.rows.pop()
                raise
            return {"saved": name, "label": label, **self.counts()}

    def _free_name(self, folder: str) -> str:
        """`<folder>/<UTC time>.png`, unique: a counter is added when the time is taken."""
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
        taken = {name.lower() for name, _ in self.rows}
        name, n = f"{folder}/{stamp}.png", 1
        while name.lower() in taken or (self.folder / name).exists():
            name, n = f"{folder}/{stamp}-{n}.png", n + 1
        return name
