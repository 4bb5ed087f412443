"""The trained model as eval, predict, export and serve use it: one immutable `TrainedModel`.

`TrainedModel.load` reads one checkpoint, or several as an ensemble, and keeps the network
(or `Ensemble`), the preprocessing of its training data, its classes, the test-time shifts
and what it was trained on (`hwr.inference.checkpoint.TrainedOn`). Nothing is changed after loading:
another test-time shift is another object (`with_tta`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from hwr import bundled
from hwr.errors import HwrError
from hwr.inference.checkpoint import (
    ReadOnlyDict,
    TrainedOn,
    expand_paths,
    hyper_parameters,
    network,
    read_checkpoint,
    trained_on,
)
from hwr.models.ensemble import Ensemble, tta_logits
from hwr.preprocess import Preprocessing

# Inference batch: large (no gradients are kept), small enough for any GPU or laptop.
BATCH_SIZE = 1024


@dataclass
class Prediction:
    """The top-k classes of one image and the uint8 image the model actually saw."""

    source: str
    top: list[tuple[str, float]] = field(default_factory=list)
    pixels: np.ndarray | None = None
    error: str | None = None
    # the top class's case-folded group and its summed probability ("s or S": 0.93), when the
    # caller passed groups and the top class has partners
    group: tuple[list[str], float] | None = None

    @property
    def label(self) -> str | None:
        return self.top[0][0] if self.top else None

    @property
    def blank(self) -> bool:
        """No ink at all once preprocessed: the label is then a guess about nothing."""
        return self.pixels is not None and not bool(self.pixels.any())

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source}
        if self.error:
            out["error"] = self.error
        else:
            out["label"] = self.label
            out["top"] = [{"label": name, "prob": round(p, 6)} for name, p in self.top]
            if self.group is not None and not self.blank:
                out["casefold"] = {"labels": self.group[0], "prob": round(self.group[1], 6)}
            if self.blank:
                out["blank"] = True
        return out


def pick_device(device: str = "auto") -> torch.device:
    """`auto` -> CUDA when present, else CPU; anything else as torch names it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as e:
        raise HwrError(f"device={device!r} is not a device; use auto, cpu or cuda") from e
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise HwrError("device=cuda but no CUDA GPU is available; use device=auto or cpu")
    return chosen


def _tta(shift: Any) -> int:
    if isinstance(shift, bool) or not isinstance(shift, int) or shift < 0:
        raise HwrError(f"tta_shift={shift!r} must be 0 (off) or a number of pixels such as 1")
    return shift


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A trained network (or ensemble) with everything needed to use it on new images.

    Attributes:
        net: the network, or an `Ensemble` of several, in eval mode.
        preprocessing: image -> the model's input, as its training data was made.
        classes: the name of each output index.
        input_shape: [1, H, W].
        trained_on: the DataModule and split it was trained on.
        tta_shift: predictions are averaged over the input shifted by -n, 0, +n px each way.
        sources: the checkpoint files it was loaded from.
        hparams: the (first) checkpoint's Classifier hyperparameters, read-only.
    """

    net: nn.Module
    preprocessing: Preprocessing
    classes: tuple[str, ...]
    input_shape: tuple[int, ...]
    trained_on: TrainedOn
    tta_shift: int = 0
    sources: tuple[str, ...] = ()
    hparams: Any = field(default_factory=ReadOnlyDict)

    @classmethod
    def load(
        cls, ckpt_path: str | Path | Sequence[str], device: str = "auto", tta_shift: int | None = None
    ) -> TrainedModel:
        """One checkpoint, or a list/glob of them averaged as an ensemble, on `device`.

        `tta_shift` replaces the checkpoint's own test-time shifts (0: off). Ensemble members
        must share classes, input shape and training data (split and preprocessing): averaging
        models that saw different pixels would be silently wrong.
        """
        paths = expand_paths(ckpt_path)
        members = []
        for path in paths:
            ckpt = read_checkpoint(path)  # the one read of each file
            members.append((network(ckpt, path), hyper_parameters(ckpt, path), trained_on(ckpt, path)))
        (net, first, on), others = members[0], members[1:]
        for path, (_, other, other_on) in zip(paths[1:], others, strict=True):
            if other["class_names"] != first["class_names"] or list(other["input_shape"]) != list(
                first["input_shape"]
            ):
                raise HwrError(
                    f"{path} has other classes or input shape than {paths[0]}; it cannot join the ensemble"
                )
            differs = on.differences(other_on)
            if differs:
                raise HwrError(
                    f"{path} was trained on other data than {paths[0]} ({', '.join(differs)} differ)"
                )
        if len(members) > 1:
            net = Ensemble([m[0] for m in members])
        shift = first.get("tta_shift") if tta_shift is None else _tta(tta_shift)
        return cls.from_network(net, first, on, pick_device(device), int(shift or 0), tuple(paths))

    @classmethod
    def from_network(
        cls,
        net: nn.Module,
        hparams: dict[str, Any],
        on: TrainedOn,
        device: torch.device | None = None,
        tta_shift: int = 0,
        sources: tuple[str, ...] = (),
    ) -> TrainedModel:
        """A network in hand (a checkpoint's, or a training run's weights as they are) as a
        TrainedModel; `hparams` are the Classifier's (classes, input shape, channels_last)."""
        shape = tuple(hparams["input_shape"])
        if shape[-1] != on.preprocessing.image_size:
            raise HwrError(
                f"the checkpoint expects {list(shape)} images but its preprocessing makes "
                f"{on.preprocessing.image_size} px ones"
            )
        return cls(
            net=net.eval().to(device or torch.device("cpu")),
            preprocessing=on.preprocessing,
            classes=tuple(str(c) for c in hparams["class_names"]),
            input_shape=shape,
            trained_on=on,
            tta_shift=tta_shift,
            sources=sources,
            hparams=ReadOnlyDict(hparams),
        )

    @property
    def class_names(self) -> list[str]:
        return list(self.classes)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised input [N, 1, H, W] on the model's device -> log-probabilities [N, C],
        averaged over the test-time shifts (and over members, for an ensemble)."""
        if self.hparams.get("channels_last") and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)  # the layout its conv weights have
        return tta_logits(self.net, x, self.tta_shift).log_softmax(dim=-1)

    @torch.inference_mode()
    def probabilities(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Normalised input [N, 1, H, W] -> class probabilities [N, C] on the CPU."""
        x, device = torch.as_tensor(x), self.device
        parts = [
            self.log_probs(x[i : i + BATCH_SIZE].to(device)).float().softmax(dim=-1).cpu()
            for i in range(0, len(x), BATCH_SIZE)
        ]
        return torch.cat(parts) if parts else torch.empty(0, len(self.classes))

    def predict(
        self,
        images: Sequence[Image.Image],
        sources: Sequence[str] | None = None,
        top_k: int = 5,
        groups: Sequence[Sequence[str]] = (),
    ) -> list[Prediction]:
        """Top-`top_k` classes of each image, with the pixels the model saw. `groups`: classes
        one image may not tell apart (hwr.evaluation.casefold.fold_members); each prediction
        whose top class is in one carries the group with its summed probability."""
        pixels, x = self.preprocessing.batch(images)
        probs = self.probabilities(x)
        k = max(1, min(top_k, len(self.classes)))
        values, index = probs.topk(k, dim=1)
        names = sources or [f"image {i}" for i in range(len(images))]
        position = {name: i for i, name in enumerate(self.classes)}
        partners = {m: [position[g] for g in group if g in position] for group in groups for m in group}
        out = []
        for row, name, v, i, pix in zip(probs, names, values, index, pixels, strict=True):
            top = [(self.classes[j], float(p)) for p, j in zip(v.tolist(), i.tolist(), strict=True)]
            members = partners.get(top[0][0], [])
            group = None
            if len(members) > 1:
                group = ([self.classes[m] for m in members], float(row[members].sum()))
            out.append(Prediction(source=str(name), top=top, pixels=pix, group=group))
        return out

    def info(self) -> dict[str, Any]:
        """What the model is: dataset, classes, checkpoints and the test accuracy its run recorded."""
        metrics_file = Path(self.sources[0]).parent.parent / "metrics.json"  # <run>/checkpoints/best.ckpt
        if bundled.is_bundled(self.sources[0]):
            metrics_file = bundled.METRICS  # what its card reports, as a run records it
        test_acc = None
        if len(self.sources) == 1 and metrics_file.is_file():
            try:
                test_acc = json.loads(metrics_file.read_text()).get("test/acc")
            except (OSError, ValueError):
                test_acc = None
        sources = self.trained_on.split.get("sources")
        return {
            "dataset": self.trained_on.name,
            "sources": list(sources) if isinstance(sources, Mapping) else [],  # a mix's, by name
            "datamodule": self.trained_on.class_path,
            "model": type(self.net).__name__,
            "classes": self.class_names,
            "num_classes": len(self.classes),
            "checkpoints": list(self.sources),
            "test_acc": test_acc,
            "tta_shift": self.tta_shift,
            "preprocessing": self.preprocessing.to_dict(),
            "device": str(self.device),
        }
