"""Several datasets as one: `data=mix` trains on EMNIST, English Hnd and your own folders at once.

Models trained on one set read other people's handwriting badly (docs/results.md: an English
Hnd model reads the EMNIST test at ~60%): 55 writers are too few, and each set has its own
look. A mix gives more writers and more looks:

- classes are aligned by name: the mix's classes are the sorted union of its sources' (EMNIST
  ByClass and English Hnd share the same 62), each source's labels are renumbered into them;
- each source keeps its own train/val/test split and is turned into one common convention:
  sources already drawn that way (EMNIST, English, folders: the character filling a 28 px
  frame less 2 px) are used as they are, others (MNIST's 20 px box centred by mass) are
  re-framed once through `hwr.preprocess`;
- `weights` set each source's share of the training draws (default: in proportion to its
  size, a plain shuffle); `balance` balances classes within each source;
- validation and test are reported overall and per source (`test/<source>/acc`,
  hwr.evaluation.casefold.GroupedMetrics; `report/sources.csv`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from PIL import Image

from hwr.data.base import CharDataModule
from hwr.data.sets import LabelledImages, balanced_weights
from hwr.errors import HwrError, root_cause
from hwr.preprocess import Preprocessing

log = logging.getLogger("hwr")
GEOMETRY = ("image_size", "margin", "box", "center", "min_box")


def reframe(images: torch.Tensor, target: Preprocessing) -> torch.Tensor:
    """uint8 [N, H, W] (white ink on black) redrawn in `target`'s geometry."""
    plain = Preprocessing(**{k: getattr(target, k) for k in GEOMETRY}, min_stroke=0.0)
    return torch.from_numpy(np.stack([plain.pixels(Image.fromarray(i)) for i in images.numpy()]))


class MixDataModule(CharDataModule):
    """The union of `sources` (see module docstring).

    Args:
        sources: {name: a DataModule, its Hydra config (`_target_` + arguments) or its record
            (`class_path`, `split`, `data_dir`, as checkpoints store it)}. A source without its
            own `data_dir` reads the mix's.
        weights: {name: share of the training draws}; null: each source in proportion to its
            size. Shares are relative (1 and 1: half the draws from each); a source not named
            gets 1.
        cache_dir: passed to the sources that cache decoded images (folders).
        image_size, margin: the common convention every source is turned into.
        folder: a folder set (`data=folder`'s layouts) added as the source `folder`:
            `data.folder=<folder>` mixes your own images with the others (experiment=personal).
    """

    name = "mix"
    MEAN = STD = None  # measured on the mixed training pool at setup

    def __init__(
        self,
        sources: Mapping[str, Any],
        data_dir: str | Path | None = None,
        weights: Mapping[str, float] | None = None,
        cache_dir: str | Path | None = None,
        image_size: int = 28,
        margin: int = 2,
        folder: str | Path | None = None,
        **kwargs: Any,
    ):
        sources = dict(sources or {})
        if folder is not None and "folder" not in sources:
            sources["folder"] = {"_target_": "hwr.data.folder.FolderDataModule", "folder": str(folder)}
        if not sources:
            raise HwrError("data=mix needs at least one source in data.sources")
        super().__init__(data_dir, **kwargs)
        self.cache_dir = cache_dir
        self.sources: dict[str, CharDataModule] = {str(k): self._build(str(k), v) for k, v in sources.items()}
        weights = {str(k): float(v) for k, v in dict(weights or {}).items()}
        unknown = sorted(set(weights) - set(self.sources))
        if unknown:
            raise HwrError(f"data.weights names {unknown}, which are not sources ({', '.join(self.sources)})")
        if any(w < 0 for w in weights.values()) or (weights and sum(weights.values()) <= 0):
            raise HwrError(f"data.weights={weights} must be shares >= 0 with a positive sum")
        self.weights = weights
        self._image_size, self.margin = image_size, margin
        self.spans: dict[str, list[tuple[str, int, int]]] = {}
        # plain types in hparams (checkpoints load with weights_only=True): the sources' records
        self.hparams.update(sources=self.split_args()["sources"], weights=weights)

    def _build(self, name: str, spec: Any) -> CharDataModule:
        """A source from its config (`_target_` and arguments) or a checkpoint's record of it
        (`class_path`, `split`, `data_dir`), reading the mix's data_dir and cache_dir when it
        names none."""
        if isinstance(spec, CharDataModule):
            return spec
        spec = dict(spec)
        if "class_path" in spec:
            spec = {
                "_target_": spec["class_path"],
                **(spec.get("split") or {}),
                "data_dir": spec.get("data_dir"),
            }
        if "_target_" not in spec:
            raise HwrError(f"data.sources.{name} needs _target_ (a DataModule class) and its arguments")
        spec["data_dir"] = spec.get("data_dir") or self.data_dir
        accepts = inspect.signature(get_class(str(spec["_target_"]))).parameters
        if self.cache_dir is not None and "cache_dir" in accepts:
            spec["cache_dir"] = spec.get("cache_dir") or self.cache_dir
        try:
            return instantiate(spec, _convert_="all")
        except InstantiationException as e:
            raise HwrError(f"data.sources.{name}: {root_cause(e)}") from e

    @property
    def class_names(self) -> list[str]:
        return sorted({name for source in self.sources.values() for name in source.class_names})

    @property
    def image_size(self) -> int:
        return self._image_size

    def split_args(self) -> dict[str, Any]:
        records = {
            name: {
                "class_path": f"{type(s).__module__}.{type(s).__qualname__}",
                "split": s.split_args(),
                "data_dir": str(s.data_dir) if s.data_dir != self.data_dir else None,
            }
            for name, s in self.sources.items()
        }
        return {
            "sources": records,
            "weights": self.weights,
            "image_size": self.image_size,
            "margin": self.margin,
        }

    def preprocessing(self) -> Preprocessing:
        return Preprocessing(image_size=self.image_size, margin=self.margin, mean=self.mean, std=self.std)

    def _common(self, name: str, data: LabelledImages) -> LabelledImages:
        """A source's set in the mix's class numbering and pixel convention."""
        source = self.sources[name]
        index = torch.tensor([self.class_names.index(c) for c in source.class_names])
        images = data.images
        theirs, ours = source.preprocessing(), self.preprocessing()
        if any(getattr(theirs, k) != getattr(ours, k) for k in GEOMETRY):
            log.info("%s: re-framing %d images into the mix's convention", name, len(images))
            images = reframe(images.cpu(), ours)
        return LabelledImages(images.cpu(), index[data.labels.cpu()], None)

    def _parts(self, stage: str) -> dict[str, LabelledImages]:
        parts = {}
        for name, source in self.sources.items():
            source.setup("fit" if stage in ("train", "val") else "test")
            if stage == "test" and self.hparams.test_on == "all":
                source.setup("fit")
                whole = LabelledImages.concat([source.train_set, source.val_set, source.test_set])
                parts[name] = self._common(name, whole)
            else:
                parts[name] = self._common(name, getattr(source, f"{stage}_set"))
        return parts

    def _joined(self, stage: str) -> LabelledImages:
        parts = self._parts(stage)
        start, spans = 0, []
        for name, part in parts.items():
            spans.append((name, start, start + len(part)))
            start += len(part)
        self.spans[stage] = spans
        return LabelledImages.concat(list(parts.values()))

    def setup(self, stage: str | None = None) -> None:
        # Each source splits itself (its own val_fraction, writers, test files); the mix joins them.
        if stage in ("fit", "validate", None) and self.train_set is None:
            self.train_set, self.val_set = self._joined("train"), self._joined("val")
        if stage in ("test", "predict", None) and self.test_set is None:
            self.test_set = self._joined("test")
        if self.mean is None or self.std is None:
            self._measure_statistics(self.train_set or self.test_set)
        self._place()

    def load_train(self) -> LabelledImages:
        return self._joined("train")

    def load_test(self) -> LabelledImages:
        return self._joined("test")

    def source_spans(self, stage: str) -> list[tuple[str, int, int]]:
        return self.spans.get(stage, [])

    def sample_weights(self) -> torch.Tensor | None:
        """Per training image: its source's share spread over the source's images (with
        `balance`: spread equally over the source's classes, then over each class's images)."""
        if not self.weights and not self.hparams.get("balance"):
            return None
        labels = self.train_set.labels.cpu()
        out = torch.empty(len(labels), dtype=torch.float64)
        total = sum(stop - start for _, start, stop in self.spans["train"])
        for name, start, stop in self.spans["train"]:
            share = self.weights.get(name, 1.0) if self.weights else (stop - start) / total
            part = labels[start:stop]
            if self.hparams.get("balance"):
                within = balanced_weights(part, self.num_classes)
                within = within / within.sum()
            else:
                within = torch.full((len(part),), 1.0 / max(len(part), 1), dtype=torch.float64)
            out[start:stop] = share * within
        if float(out.sum()) <= 0:
            raise HwrError("data.weights gives every training image weight 0")
        return out
