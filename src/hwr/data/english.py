"""English Handwritten Characters (Chars74K EnglishHnd): 62 classes, 55 writers, 3,410 PNG
scans of 1200x900 px, in any of `hwr.data.folder`'s layouts (Kaggle: `english.csv` + `Img/`)."""

from __future__ import annotations

from pathlib import Path

from hwr.data.folder import FolderDataModule


class EnglishDataModule(FolderDataModule):
    """The English Handwritten Characters set: a FolderDataModule with its own name, pixel
    statistics and a message that says where to get it (arguments: see FolderDataModule)."""

    name = "english"
    # the training pool (train + val, no test image) of the default split at 28 px (`explore.py`)
    MEAN, STD = 0.2365, 0.3894
    missing = (
        "English Handwritten Characters not found at {root}: get it from Kaggle ('English "
        "Handwritten Characters': english.csv + Img/) or Chars74K (EnglishHnd) and put it there, "
        "or point data.data_dir / data.folder at it"
    )

    def __init__(self, data_dir: str | Path | None = None, folder: str = "english", **kwargs):
        super().__init__(data_dir, folder=folder, **kwargs)
