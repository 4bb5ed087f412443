"""Any IDX image/label pair as a dataset: `data=idx` (Kuzushiji-MNIST, Fashion-MNIST, a lab's
own set in MNIST's file format).

    python train.py data=idx data.train_images=kmnist/train-images-idx3-ubyte.gz \
        data.train_labels=kmnist/train-labels-idx1-ubyte.gz data.test_images=... \
        data.test_labels=... data.classes=[o,ki,su,tsu,na,ha,ma,ya,re,wo]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwr.data.base import CharDataModule
from hwr.data.mnist import load_idx_pair
from hwr.data.sets import LabelledImages
from hwr.errors import HwrError


class IdxDataModule(CharDataModule):
    """Images [N, H, W] uint8 and labels [N] from IDX files (`.gz` or plain).

    Args:
        train_images, train_labels, test_images, test_labels: the four files, relative to
            `data_dir` unless absolute.
        classes: the name of each label (label i is `classes[i]`): a list, or a text file with
            one name a line; null: the label numbers themselves ("0", "1", ...).
        label_offset: subtracted from every label (1 for files that number classes from 1, as
            EMNIST Letters does).
        transpose: the files store images transposed (EMNIST's): flip them upright at load.
        invert: the files hold dark ink on light paper: turn it into hwr's white ink on black.

    Pixel statistics: data.mean / data.std, or measured on the training pool when null.
    """

    name = "idx"
    MEAN = STD = None  # measured on the training pool (CharDataModule.setup)

    def __init__(
        self,
        data_dir: str | Path | None = None,
        train_images: str | None = None,
        train_labels: str | None = None,
        test_images: str | None = None,
        test_labels: str | None = None,
        classes: Sequence[str] | str | None = None,
        label_offset: int = 0,
        transpose: bool = False,
        invert: bool = False,
        **kwargs: Any,
    ):
        files = {
            "train_images": train_images,
            "train_labels": train_labels,
            "test_images": test_images,
            "test_labels": test_labels,
        }
        missing = [k for k, v in files.items() if not v]
        if missing:
            raise HwrError(
                f"data=idx needs the four IDX files; set {', '.join(f'data.{k}=<file>' for k in missing)}"
            )
        super().__init__(data_dir, **kwargs)
        self.files = {k: Path(v) if Path(v).is_absolute() else self.data_dir / v for k, v in files.items()}
        self.label_offset, self.transpose, self.invert = label_offset, transpose, invert
        self._classes = self._read_classes(classes)
        self._loaded: dict[str, LabelledImages] = {}

    def _read_classes(self, classes: Sequence[str] | str | None) -> list[str] | None:
        if classes is None or not isinstance(classes, str):
            return None if classes is None else [str(c) for c in classes]
        path = Path(classes) if Path(classes).is_absolute() else self.data_dir / classes
        if not path.is_file():
            raise HwrError(
                f"data.classes={classes}: no such file; give a list [a,b,...] or a file, a name a line"
            )
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if len(set(names)) != len(names):
            raise HwrError(f"{path} names a class twice; each line must be a different class")
        return names

    @property
    def class_names(self) -> list[str]:
        if self._classes is not None:
            return self._classes
        top = max(int(self._load("train").labels.max()), int(self._load("test").labels.max()))
        return [str(i) for i in range(top + 1)]

    @property
    def image_size(self) -> int:
        return int(self._load("train").images.shape[-1])

    def split_args(self) -> dict[str, Any]:
        files = {k: str(v) for k, v in self.files.items()}
        return {
            **super().split_args(),
            **files,
            "classes": self._classes,
            "label_offset": self.label_offset,
            "transpose": self.transpose,
            "invert": self.invert,
        }

    def _load(self, part: str) -> LabelledImages:
        if part not in self._loaded:
            images, labels = self.files[f"{part}_images"], self.files[f"{part}_labels"]
            for path in (images, labels):
                if not path.is_file():
                    raise HwrError(
                        f"data.{part}_{'images' if path == images else 'labels'}: {path} does not exist"
                    )
            data = load_idx_pair(images, labels)
            if data.images.shape[1] != data.images.shape[2]:
                raise HwrError(f"{images} holds {tuple(data.images.shape[1:])} images; hwr needs square ones")
            if self.transpose:
                data.images = data.images.transpose(1, 2).contiguous()
            if self.invert:
                data.images = 255 - data.images
            data.labels = data.labels - self.label_offset
            self._loaded[part] = data
        return self._loaded[part]

    def load_train(self) -> LabelledImages:
        return self._load("train")

    def load_test(self) -> LabelledImages:
        return self._load("test")
