"""`hwr export ckpt_path=... format=onnx|torchscript [output=...]` (or `python export.py`): ship a
checkpoint as one file plus a JSON of its classes and preprocessing (hwr.inference.export)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from hwr import bundled
from hwr.inference.export import TOLERANCE, export_model
from hwr.runs import console
from hwr.runs.entry import command


@command("export", run_folder=False)
def export(cfg: DictConfig) -> dict[str, Any]:
    """Export `cfg.ckpt_path` as `cfg.format`, print what was written and how to use it."""
    result = export_model(
        # a path, a glob or a list (expand_paths takes a ListConfig as it is); none: the bundled model
        bundled.default(cfg.ckpt_path, console.note),
        str(cfg.format),
        cfg.get("output"),
        bool(cfg.get("overwrite")),
        tta_shift=cfg.get("tta_shift"),
        opset=cfg.get("opset"),
        parity_batch=int(cfg.parity_batch),
    )
    console.print_export(result, TOLERANCE)
    return result


main = export.main
