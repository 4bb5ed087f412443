"""Time per image of an exported model (onnxruntime / TorchScript) against the PyTorch checkpoint.

    uv run scripts/export_benchmark.py <run>/checkpoints/best.ckpt model.onnx model.pt [--batch 1 256]

Times the model only (input already pixel/255, as `Preprocessing.pixels` gives it): median and
best of `--repeats` timed calls after warm-up, on the CPU, with `--threads` threads for both
runtimes (default: each runtime's own, one per core).
Preprocessing an image (`Preprocessing.pixels`) is timed once as well: it is the same for all.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

import numpy as np
import torch

from hwr.inference.export import parity_inputs
from hwr.inference.exported import ExportedModel
from hwr.inference.model import TrainedModel


def per_image_ms(call: Callable[[], object], batch: int, repeats: int) -> dict[str, float]:
    """Milliseconds per image over `repeats` calls on a batch of `batch`: median and best.

    The best call is what the model costs on an idle machine; the median includes the noise of
    whatever else runs (the load average is printed with the results).
    """
    for _ in range(10):
        call()  # warm-up: first calls allocate, pick kernels; TorchScript profiles then optimises
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return {
        "median": round(1000 * float(np.median(times)) / batch, 4),
        "best": round(1000 * min(times) / batch, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ckpt_path")
    parser.add_argument("exports", nargs="+", help="model.onnx and/or model.pt written by export.py")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument(
        "--threads", type=int, help="threads for PyTorch and onnxruntime (default: all cores)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    trained = TrainedModel.load(args.ckpt_path, device="cpu")
    prep = trained.preprocessing
    models = {m.format: m for m in (ExportedModel.load(p, args.threads) for p in args.exports)}
    pool = parity_inputs(prep, trained.class_names, max(args.batch))
    results: dict[str, object] = {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_before": os.getloadavg(),
    }
    for batch in args.batch:
        x = pool[:batch]
        normalised = torch.from_numpy((x - prep.mean) / prep.std)
        row = {"pytorch": per_image_ms(lambda t=normalised: trained.probabilities(t), batch, args.repeats)}
        for fmt, model in models.items():
            row[fmt] = per_image_ms(lambda m=model, x=x: m.probabilities(x), batch, args.repeats)
        results[f"batch {batch} (ms/image)"] = row
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (96, 96), 255)
    ImageDraw.Draw(image).text((20, 10), "A", fill=0, font=ImageFont.load_default(size=48))
    results["Preprocessing.pixels (ms/image, 96x96)"] = per_image_ms(lambda: prep.pixels(image), 1, 200)
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
