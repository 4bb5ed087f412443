"""The serving runtime of an export: `ExportedModel` loads `model.onnx` / `model.pt` and its
sidecar JSON (written by `hwr.inference.export.export_model`) and predicts PIL images with the same
`hwr.preprocess` code as predict.py.

Needs only numpy, Pillow, hwr.preprocess and onnxruntime (or torch for TorchScript): it never
imports Lightning, Hydra or the Classifier, and onnxruntime/torch.jit are imported on load.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from hwr.errors import HwrError
from hwr.preprocess import Preprocessing

# format -> file suffix of the model
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
INPUT_NAME, OUTPUT_NAME = "pixels", "probs"


def sidecar_path(model_path: str | Path) -> Path:
    """`model.onnx` -> `model.onnx.json`: both formats can then sit in one folder."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".json")


class ExportedModel:
    """An exported model and its sidecar JSON: predicts PIL images like `TrainedModel.predict`.

    Needs only numpy, Pillow, hwr.preprocess and onnxruntime (or torch for TorchScript).
    """

    def __init__(self, path: str | Path, fmt: str, meta: dict[str, Any], threads: int | None = None):
        self.path, self.format, self.meta = Path(path), fmt, meta
        self.classes: list[str] = list(meta["classes"])
        self.preprocessing = Preprocessing.from_dict(meta["preprocessing"])
        if fmt == "onnx":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            if threads:  # a server with several workers wants 1 each; default: one per core
                options.intra_op_num_threads = threads
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        elif fmt == "torchscript":
            import torch

            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*deprecated.*")
                self._module = torch.jit.load(str(path), map_location="cpu").eval()
        else:
            raise HwrError(f"{path}: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")

    @classmethod
    def load(cls, path: str | Path, threads: int | None = None) -> ExportedModel:
        """Load `model.onnx` / `model.pt` (or its `.json` sidecar) written by
        `hwr.inference.export.export_model`.

        `threads` caps onnxruntime's threads (TorchScript follows `torch.set_num_threads`).
        """
        path = Path(path)
        if path.suffix == ".json":
            path = path.with_suffix("")
        sidecar = sidecar_path(path)
        if not path.is_file() or not sidecar.is_file():
            raise HwrError(f"{path} or {sidecar.name} is missing; export one with export.py ckpt_path=...")
        try:
            meta = json.loads(sidecar.read_text())
            fmt = meta["format"]
        except (ValueError, KeyError) as e:
            raise HwrError(f"{sidecar} is not an export description ({e}); export the model again") from e
        return cls(path, fmt, meta, threads)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """float32 [N, 1, H, W] (pixel/255, white ink on black) -> probabilities [N, C]."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if len(x) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        if self.format == "onnx":
            return self._session.run(None, {INPUT_NAME: x})[0]
        import torch

        with torch.inference_mode():
            return self._module(torch.from_numpy(x)).numpy()

    def predict(self, images: Sequence[Image.Image], top_k: int = 5) -> list[list[tuple[str, float]]]:
        """The top-`top_k` (class, probability) pairs of each image, most likely first."""
        x = self.preprocessing.stack(images).astype(np.float32) / 255
        probs = self.probabilities(x[:, None])
        k = max(1, min(top_k, len(self.classes)))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [
            [(self.classes[j], float(row[j])) for j in idx] for row, idx in zip(probs, order, strict=True)
        ]
