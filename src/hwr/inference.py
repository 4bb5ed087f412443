"""From a checkpoint to predictions on new images: shared by predict.py, serve.py and export.py.

A `Predictor` holds the model (one checkpoint or an ensemble) and the `Preprocessing` of
the data it was trained on, both rebuilt from the checkpoint alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from hwr.checkpoint import expand_paths, load_models
from hwr.classifier import Classifier
from hwr.errors import HwrError
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

    @property
    def label(self) -> str | None:
        return self.top[0][0] if self.top else None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source}
        if self.error:
            out["error"] = self.error
        else:
            out["label"] = self.label
            out["top"] = [{"label": name, "prob": round(p, 6)} for name, p in self.top]
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


class Predictor:
    """A trained model plus the preprocessing of its training data."""

    def __init__(
        self,
        model: Classifier,
        preprocessing: Preprocessing,
        sources: list[str],
        device: str = "auto",
        dataset: str | None = None,
    ):
        self.device = pick_device(device)
        self.dataset = dataset
        self.model = model.eval().to(self.device)
        self.preprocessing = preprocessing
        self.sources = sources

    @classmethod
    def from_checkpoint(cls, ckpt_path: str | Sequence[str], device: str = "auto") -> Predictor:
        """Load one checkpoint, or a list/glob of them as an ensemble (see hwr.checkpoint)."""
        model, trained_on = load_models(ckpt_path)
        preprocessing = Preprocessing.for_data(trained_on)
        shape = list(model.hparams.input_shape)
        if shape[-1] != preprocessing.image_size:
            raise HwrError(
                f"the checkpoint expects {shape} images but its data config makes "
                f"{preprocessing.image_size} px ones"
            )
        return cls(model, preprocessing, expand_paths(ckpt_path), device, trained_on.get("dataset"))

    @property
    def class_names(self) -> list[str]:
        return self.model.class_names

    @torch.inference_mode()
    def probabilities(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Normalised input [N, 1, H, W] -> class probabilities [N, C] on the CPU."""
        x = torch.as_tensor(x)
        parts = [
            self.model.predict_log_probs(x[i : i + BATCH_SIZE].to(self.device)).float().softmax(dim=-1).cpu()
            for i in range(0, len(x), BATCH_SIZE)
        ]
        return torch.cat(parts) if parts else torch.empty(0, len(self.class_names))

    def predict(
        self, images: Sequence[Image.Image], sources: Sequence[str] | None = None, top_k: int = 5
    ) -> list[Prediction]:
        """Top-`top_k` classes of each image, with the 28x28 (or so) pixels the model saw."""
        pixels, x = self.preprocessing.batch(images)
        probs = self.probabilities(x)
        k = max(1, min(top_k, len(self.class_names)))
        values, index = probs.topk(k, dim=1)
        names = sources or [f"image {i}" for i in range(len(images))]
        return [
            Prediction(
                source=str(name),
                top=[(self.class_names[j], float(p)) for p, j in zip(v.tolist(), i.tolist(), strict=True)],
                pixels=pix,
            )
            for name, v, i, pix in zip(names, values, index, pixels, strict=True)
        ]

    def info(self) -> dict[str, Any]:
        """What the model is: dataset, classes, checkpoints and the test accuracy its run recorded."""
        first = Path(self.sources[0])
        metrics_file = first.parent.parent / "metrics.json"  # <run>/checkpoints/best.ckpt
        test_acc = None
        if len(self.sources) == 1 and metrics_file.is_file():
            try:
                test_acc = json.loads(metrics_file.read_text()).get("test/acc")
            except (OSError, ValueError):
                test_acc = None
        return {
            "dataset": self.dataset,
            "model": type(self.model.net).__name__,
            "classes": self.class_names,
            "num_classes": len(self.class_names),
            "checkpoints": self.sources,
            "test_acc": test_acc,
            "tta_shift": int(self.model.hparams.get("tta_shift") or 0),
            "preprocessing": self.preprocessing.to_dict(),
            "device": str(self.device),
        }
