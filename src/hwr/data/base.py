"""CharDataModule: the shared half of every dataset (splits, loaders, on-device transforms).

A subclass only says where its files are and how to decode them into a uint8 tensor
(`load_train`, `load_test`, `class_names`). Everything else lives here once:

- the whole dataset sits in memory as uint8 [N, H, W]; batches are drawn by index, never
  decoded per sample, so the loader moves millions of images per second;
- the validation split is carved from the training pool with a fixed seed, stratified by
  class (or by writer, so no writer is in two parts);
- uint8 -> float, augmentation and normalisation run on the whole batch on the device it
  lands on, in `on_after_batch_transfer`;
- with `on_device` (default `auto`: on a GPU when the data fits) the uint8 tensors live on
  the training device itself and batches come from `ResidentBatches`: the shuffle is drawn
  on that device and a batch is one index there: no workers, no pinned host copies, no
  per-step transfer, no Python list of indices.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from torch.utils.data import DataLoader

from hwr.data.augment import AugmentConfig, augment_batch
from hwr.data.loaders import host_loader, parse_on_device, resident_device, resident_loader
from hwr.data.sets import LabelledImages, balanced_weights, exact_repeats, per_class, split_indices
from hwr.errors import HwrError
from hwr.preprocess import Preprocessing

log = logging.getLogger("hwr")


def default_data_dir() -> Path:
    """`$HWR_DATA_DIR` when set, else `./data`."""
    return Path(os.environ.get("HWR_DATA_DIR") or "data")


def build_datamodule(cfg: Mapping[str, Any], **overrides: Any) -> CharDataModule:
    """The DataModule of a data config, every argument a plain Python value (no OmegaConf
    object reaches it, so none reaches a checkpoint: they load with weights-only loading)."""
    return hydra.utils.instantiate(cfg, **overrides, _convert_="all")


def remove_if_empty(folders: list[Path]) -> None:
    """Remove those of `folders` (innermost last in the list) that are empty: what a failed
    download created, so data_dir is left as it was."""
    for folder in reversed(folders):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


class CharDataModule(L.LightningDataModule, ABC):
    """Base DataModule for single-character image classification (see module docstring).

    Args:
        data_dir: root folder of the datasets (default `$HWR_DATA_DIR` or `./data`).
        batch_size: training batch size.
        eval_batch_size: batch size for validation and test (inference only, so larger).
        val_fraction: share of the training pool held out for validation.
        seed: seed of every split, independent of the training seed.
        mean, std: normalisation applied after scaling pixels to [0, 1] (default: the
            dataset's own MEAN/STD).
        augment: `AugmentConfig` switches (geometry: shift, rotate, scale, elastic; appearance:
            thickness, blur, contrast, lowres), training only.
        num_workers: DataLoader workers; 0 is fastest for in-memory tensors.
        pin_memory: pin host batches for faster GPU copies (default: when CUDA is present).
        on_device: keep the whole dataset on the trainer's root device: `true` always (on a
            CPU trainer that is the CPU), `false` never, `auto` when that device is a GPU and
            the data takes at most AUTO_MAX_SHARE of its free memory. Resident data forces
            num_workers=0 and pin_memory=False. Without a trainer the data stays on the CPU.
        balance: draw training batches class-balanced (every class equally often, with
            replacement; an epoch is still one training set's worth of images) instead of
            shuffling: for skewed sets, where the rare classes' recall suffers.
        test_on: "test" (the test split) or "all" (every image of the dataset, train and test:
            for testing a model trained on other data, e.g. all of English Hnd).
    """

    name = "chars"
    # Pixel mean/std (of pixel / 255) of the dataset's training images; subclasses measure theirs.
    MEAN, STD = 0.5, 0.5

    def __init__(
        self,
        data_dir: str | Path | None = None,
        batch_size: int = 128,
        eval_batch_size: int = 1024,
        val_fraction: float = 0.1,
        seed: int = 42,
        mean: float | None = None,
        std: float | None = None,
        augment: Mapping[str, float] | None = None,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        on_device: bool | str = "auto",
        balance: bool = False,
        test_on: str = "test",
        train_per_class: int | None = None,
    ):
        # The values are checked where every config key is (hwr.validation), before a run starts.
        super().__init__()
        on_device = parse_on_device(on_device)
        # Plain types only in hparams: checkpoints then load with torch.load(weights_only=True).
        augment = {k: float(v) for k, v in dict(augment or {}).items()}
        self.save_hyperparameters(logger=False)
        self.hparams["augment"] = augment  # a subclass's **kwargs may still hold the DictConfig
        self.data_dir = Path(data_dir) if data_dir else default_data_dir()
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        mean, std = self.MEAN if mean is None else mean, self.STD if std is None else std
        # None: measured on the training pool at setup (a set whose statistics hwr cannot know)
        self.mean = None if mean is None else float(mean)
        self.std = None if std is None else float(std)
        try:
            self.augment = AugmentConfig(**augment)
        except TypeError as e:
            accepted = ", ".join(f.name for f in dataclasses.fields(AugmentConfig))
            raise HwrError(f"data.augment accepts {accepted}: {e}") from e
        self.num_workers = num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.on_device = on_device
        self.hparams["on_device"] = on_device  # the parsed value, not the string "true"
        self.resident: torch.device | None = None  # where the data lives when on_device applies
        self._warned_workers = False
        self.repeats: dict[str, int] | None = None  # exact repeats within and across the splits
        self.train_set: LabelledImages | None = None
        self.val_set: LabelledImages | None = None
        self.test_set: LabelledImages | None = None

    # ---- what a subclass provides -------------------------------------------------------
    @property
    @abstractmethod
    def class_names(self) -> list[str]:
        """Human-readable name of each class index."""

    @property
    def image_size(self) -> int:
        return 28

    @abstractmethod
    def load_train(self) -> LabelledImages:
        """The training pool (validation is carved out of it here, in `setup`)."""

    @abstractmethod
    def load_test(self) -> LabelledImages:
        """The test set."""

    def split_args(self) -> dict[str, Any]:
        """The constructor arguments that decide which images are in train, val and test (and
        how its files become pixels): recorded in checkpoints, so eval.py rebuilds the same test
        split. A subclass with arguments of that kind adds them."""
        return {"seed": self.hparams.seed, "val_fraction": self.hparams.val_fraction}

    def preprocessing(self) -> Preprocessing:
        """How a new image (predict, serve, export) becomes this dataset's pixels and the model's
        input. Default: the character scaled to fill the frame less a 2 px border, centred by its
        box, then this DataModule's normalisation."""
        return Preprocessing(image_size=self.image_size, mean=self.mean, std=self.std)

    # ---- shared -------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """What a model trained on this DataModule was trained on, in plain types: the
        Classifier stores it in every checkpoint and `hwr.inference.checkpoint.TrainedOn` reads it."""
        cls = type(self)
        return {
            "class_path": f"{cls.__module__}.{cls.__qualname__}",
            "name": self.name,
            "split": self.split_args(),
            "preprocessing": self.preprocessing().to_dict(),
            "classes": list(self.class_names),
            "input_shape": list(self.input_shape),
        }

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (1, self.image_size, self.image_size)

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", "validate", None) and self.train_set is None:
            pool = self._checked(self.load_train(), "training")
            keep, held = split_indices(pool.labels, self.hparams.val_fraction, self.hparams.seed, pool.groups)
            if len(held) == 0:
                raise HwrError(
                    f"{self.name}: data.val_fraction={self.hparams.val_fraction} of {len(pool)} training "
                    "images holds out none (rounded per class or writer); raise it: the best "
                    "checkpoint is chosen on validation accuracy"
                )
            if self.hparams.get("train_per_class"):
                keep = per_class(keep, pool.labels, int(self.hparams.train_per_class), self.hparams.seed)
            self.train_set, self.val_set = pool.subset(keep), pool.subset(held)
        if stage in ("test", "predict", None) and self.test_set is None:
            if self.hparams.test_on == "all":
                whole = LabelledImages.concat([self.load_train(), self.load_test()])
                self.test_set = self._checked(whole, "whole")
            else:
                self.test_set = self._checked(self.load_test(), "test")
        if self.mean is None or self.std is None:
            self._measure_statistics(self.train_set or self.test_set)
        self._report_overlaps()
        self._place()

    def _report_overlaps(self) -> None:
        """Once both are loaded: a warning when test (or validation) images repeat training
        images pixel for pixel (a csv listing a file twice, a set with copies)."""
        if self.repeats is not None or self.train_set is None or self.test_set is None:
            return
        if self.hparams.get("test_on") == "all":
            return  # the test set is the training pool on purpose
        parts = {"train": self.train_set, "val": self.val_set, "test": self.test_set}
        found = self.repeats = exact_repeats({k: v for k, v in parts.items() if v is not None})
        if not any(v for k, v in found.items() if not k.startswith("within")):
            return
        log.warning(
            "%s: %d of %d test images repeat a training image pixel for pixel (%d of %d validation "
            "images do, %d test images repeat a validation one): test/acc counts them; "
            "explore.py data=%s lists the counts per split",
            self.name,
            found["test in train"],
            len(self.test_set),
            found.get("val in train", 0),
            len(self.val_set) if self.val_set is not None else 0,
            found.get("test in val", 0),
            self.name,
        )

    def _measure_statistics(self, data: LabelledImages) -> None:
        """Pixel mean/std (of pixel / 255) of up to 50,000 images of `data`, for the sets
        whose class says MEAN = STD = None."""
        pixels = data.images[:50_000].float().div_(255)
        if self.mean is None:
            self.mean = round(float(pixels.mean()), 4)
        if self.std is None:
            self.std = round(float(pixels.std()), 4) or 1.0
        log.info(
            "%s: pixel mean %.4f, std %.4f (measured; data.mean / data.std set them)",
            self.name,
            self.mean,
            self.std,
        )

    def source_spans(self, stage: str) -> list[tuple[str, int, int]]:
        """(source, start, stop) of each source's images in the `stage` ("val" or "test") set,
        for a DataModule drawn from several (`hwr.data.mix`); one source: none."""
        return []

    def sample_weights(self) -> torch.Tensor | None:
        """A sampling weight per training image (None: a plain shuffle). `balance`: every class
        equally often."""
        if not self.hparams.get("balance") or self.train_set is None:
            return None
        return balanced_weights(self.train_set.labels.cpu(), self.num_classes)

    def _place(self) -> None:
        """Move the loaded sets to the resident device (or back to the host)."""
        sets = [d for d in (self.train_set, self.val_set, self.test_set) if d is not None]
        device = resident_device(self.on_device, self.trainer, sets)
        target = device if device is not None else torch.device("cpu")
        for name in ("train_set", "val_set", "test_set"):
            data = getattr(self, name)
            if data is not None:
                setattr(self, name, data.to(target))
        self.resident = device
        if device is not None and self.num_workers > 0 and not self._warned_workers:
            self._warned_workers = True
            warnings.warn(
                f"data.on_device keeps the dataset on {device}: data.num_workers={self.num_workers} "
                "is ignored (batches are one index on the device; set data.num_workers=0)",
                stacklevel=2,
            )

    def _checked(self, data: LabelledImages, part: str) -> LabelledImages:
        if len(data) == 0:
            raise HwrError(f"{self.name}: the {part} set is empty; check the files in {self.data_dir}")
        if data.images.dtype != torch.uint8 or data.images.ndim != 3:
            raise HwrError(
                f"{self.name}: expected uint8 images [N, H, W], got {data.images.dtype} "
                f"{tuple(data.images.shape)}"
            )
        top = int(data.labels.max())
        if top >= self.num_classes or int(data.labels.min()) < 0:
            raise HwrError(
                f"{self.name}: {part} labels range over 0..{top} but the dataset has "
                f"{self.num_classes} classes; the files do not match the split"
            )
        return data

    def _loader(
        self, data: LabelledImages | None, batch_size: int, shuffle: bool, weights: torch.Tensor | None = None
    ):
        if data is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        if self.resident is not None and data.images.device == self.resident:
            return resident_loader(data, batch_size, shuffle, self.trainer, weights)
        return host_loader(data, batch_size, shuffle, self.num_workers, self.pin_memory, weights)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, shuffle=True, weights=self.sample_weights())

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)

    def transform_batch(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 [B, H, W] -> normalised float [B, 1, H, W]; augmented when `train`."""
        x = images.unsqueeze(1).float().div_(255)
        if train:
            x = augment_batch(x, self.augment)
        return (x - self.mean) / self.std

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if isinstance(batch, torch.Tensor):  # the model summary's example input: network-ready
            return batch
        images, labels = batch
        training = self.trainer is not None and self.trainer.training
        return self.transform_batch(images, train=training), labels
