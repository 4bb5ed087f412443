"""Export a checkpoint: `python export.py ckpt_path=.../best.ckpt format=onnx|torchscript [output=...]`."""

from hwr.cli import hydra_main
from hwr.export import run

main = hydra_main("export")(run)

if __name__ == "__main__":
    main()
