"""Export a checkpoint: `python export.py ckpt_path=.../best.ckpt format=onnx|torchscript [output=...]`."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from hwr.errors import user_errors
from hwr.export import run

CONFIG_DIR = str(Path(__file__).resolve().parent / "configs")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: a user error becomes `error: ...` on stderr and exit status 1."""
    with user_errors():
        run(cfg)


if __name__ == "__main__":
    main()
