"""MNIST from the four official IDX files (`.gz` or plain), read in place."""

from __future__ import annotations

from pathlib import Path

from hwr.data.base import CharDataModule, remove_if_empty
from hwr.data.idx import find_idx, read_idx
from hwr.data.sets import LabelledImages
from hwr.errors import HwrError
from hwr.preprocess import Preprocessing

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def load_idx_pair(images_path: Path, labels_path: Path) -> LabelledImages:
    """Read an images/labels IDX pair and check that they belong together."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise HwrError(
            f"{images_path.name} holds {tuple(images.shape)} but {labels_path.name} holds "
            f"{tuple(labels.shape)}: the pair does not match; replace both with the official files"
        )
    return LabelledImages(images, labels.long())


class MNISTDataModule(CharDataModule):
    """MNIST digits. Looks in `<data_dir>/MNIST/raw/` (torchvision's layout), then
    `<data_dir>/MNIST/` and `<data_dir>/`. Missing files are downloaded into
    `<data_dir>/MNIST/raw/` when `download` is true; present files are never re-fetched or
    written to, so a read-only shared folder works."""

    name = "mnist"
    MEAN, STD = 0.1307, 0.3081  # the 60,000 training images

    def __init__(self, data_dir: str | Path | None = None, download: bool = True, **kwargs):
        super().__init__(data_dir, **kwargs)
        self.download = download

    @property
    def class_names(self) -> list[str]:
        return [str(d) for d in range(10)]

    def preprocessing(self) -> Preprocessing:
        # MNIST's own convention: the digit scaled into a 20x20 box, centred by its centre of mass.
        return Preprocessing(image_size=28, box=20, center="mass", mean=self.mean, std=self.std)

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "MNIST" / "raw"

    def _find(self, part: str) -> tuple[Path, Path] | None:
        for folder in (self.raw_dir, self.data_dir / "MNIST", self.data_dir):
            paths = [find_idx(folder, name) for name in FILES[part]]
            if all(paths):
                return paths[0], paths[1]
        return None

    def _missing_message(self) -> str:
        names = ", ".join(f"{n}.gz" for pair in FILES.values() for n in pair)
        return f"MNIST not found: put the four official files ({names}; .gz or unpacked) in {self.raw_dir}"

    def _load(self, part: str) -> LabelledImages:
        found = self._find(part)
        if found is None:
            if not self.download:
                raise HwrError(f"{self._missing_message()}, or set data.download=true")
            self._fetch()
            found = self._find(part)
            if found is None:
                raise HwrError(self._missing_message())
        return load_idx_pair(*found)

    def _fetch(self) -> None:
        """Download the missing files with torchvision's downloader (md5-checked); a failure
        removes the folders it created, so data_dir is left as it was."""
        created = [d for d in (self.data_dir / "MNIST", self.raw_dir) if not d.exists()]
        try:
            self.raw_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise HwrError(f"{self._missing_message()} (cannot create it to download: {e})") from e
        try:
            self._download_missing()
        except HwrError:
            remove_if_empty(created)
            raise

    def _download_missing(self) -> None:
        from torchvision.datasets import MNIST
        from torchvision.datasets.utils import download_url

        for filename, md5 in MNIST.resources:
            if find_idx(self.raw_dir, filename.removesuffix(".gz")):
                continue  # present: never re-download
            errors = []
            for mirror in MNIST.mirrors:
                try:
                    download_url(f"{mirror}{filename}", str(self.raw_dir), filename, md5)
                    break
                except Exception as e:  # noqa: BLE001 - any network/IO failure means "try next"
                    errors.append(f"{mirror}: {e}")
            else:
                raise HwrError(f"{self._missing_message()} (download failed, offline? {errors[-1]})")

    def load_train(self) -> LabelledImages:
        return self._load("train")

    def load_test(self) -> LabelledImages:
        return self._load("test")
