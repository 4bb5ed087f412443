"""EMNIST (Cohen et al. 2017), all six splits, from the official IDX files.

The official files store each image transposed; it is flipped upright once, at load, so
EMNIST characters look like MNIST digits to every later stage.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from hwr.data.base import CharDataModule, remove_if_empty
from hwr.data.idx import find_idx
from hwr.data.mnist import load_idx_pair
from hwr.data.sets import LabelledImages
from hwr.errors import HwrError

_DIGITS = list(string.digits)
_UPPER = list(string.ascii_uppercase)
# Balanced and ByMerge fold the 15 letters whose cases look alike; these 11 lowercase stay.
_MERGED = _DIGITS + _UPPER + list("abdefghnqrt")

CLASS_NAMES = {
    "byclass": _DIGITS + _UPPER + list(string.ascii_lowercase),
    "bymerge": _MERGED,
    "balanced": _MERGED,
    "letters": list(string.ascii_lowercase),  # each class holds both cases
    "digits": _DIGITS,
    "mnist": _DIGITS,
}


class EMNISTDataModule(CharDataModule):
    """EMNIST `split` in byclass, bymerge, balanced, letters, digits, mnist.

    Files keep their official names (`emnist-<split>-<train|test>-<images-idx3|labels-idx1>-ubyte`,
    `.gz` or not) in `<data_dir>/EMNIST/raw/` (torchvision's layout) or
    `<data_dir>/EMNIST/gzip/` (the official zip's layout). Letters labels 1..26 become 0..25.
    """

    name = "emnist"
    # Measured (`explore.py`) on the training pool (train + val) of a "carved" ByClass set: the
    # official ByClass test split cut 80/20 into training and test files (docs/results.md), as
    # the official training files were not at hand; data.mean / data.std set others.
    MEAN, STD = 0.1736, 0.3316

    def __init__(
        self,
        data_dir: str | Path | None = None,
        split: str = "balanced",
        download: bool = True,
        **kwargs,
    ):
        if split not in CLASS_NAMES:
            raise HwrError(
                f"data.split={split!r} is not an EMNIST split; use one of {', '.join(CLASS_NAMES)}"
            )
        super().__init__(data_dir, **kwargs)
        self.split, self.download = split, download

    @property
    def class_names(self) -> list[str]:
        return CLASS_NAMES[self.split]

    def split_args(self) -> dict[str, Any]:
        return {**super().split_args(), "split": self.split}

    def _names(self, part: str) -> tuple[str, str]:
        stem = f"emnist-{self.split}-{part}"
        return f"{stem}-images-idx3-ubyte", f"{stem}-labels-idx1-ubyte"

    def _folders(self) -> list[Path]:
        root = self.data_dir / "EMNIST"
        return [root / "raw", root / "gzip", root]

    def _find(self, part: str) -> tuple[Path, Path] | None:
        for folder in self._folders():
            paths = [find_idx(folder, name) for name in self._names(part)]
            if all(paths):
                return paths[0], paths[1]
        return None

    def _load(self, part: str) -> LabelledImages:
        found = self._find(part)
        if found is None:
            reason = self._fetch(part) if self.download else "data.download=false"
            found = self._find(part)
            if found is None:
                folders = " or ".join(str(f) for f in self._folders()[:2])
                raise HwrError(
                    f"EMNIST {self.split} {part} files not found ({' and '.join(self._names(part))}, "
                    f".gz or not) in {folders}; {reason}. Get the official EMNIST gzip archive from "
                    f"NIST and unzip it into {self.data_dir / 'EMNIST'}"
                )
        data = load_idx_pair(*found)
        data.images = data.images.transpose(1, 2).contiguous()  # stored transposed -> upright
        if self.split == "letters":
            data.labels = data.labels - 1  # the files number letters 1..26
        return data

    def _fetch(self, part: str) -> str:
        """Download through torchvision; returns why it failed (the caller raises)."""
        from torchvision.datasets import EMNIST

        root = self.data_dir / "EMNIST"
        created = [d for d in (root, root / "raw") if not d.exists()]
        try:
            EMNIST(str(self.data_dir), split=self.split, train=part == "train", download=True)
        except Exception as e:  # noqa: BLE001 - offline, read-only folder, bad archive...
            remove_if_empty(created)
            return f"the download failed ({type(e).__name__}: {e})"
        return "the download did not produce them"

    def load_train(self) -> LabelledImages:
        return self._load("train")

    def load_test(self) -> LabelledImages:
        return self._load("test")
