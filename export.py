"""Export a checkpoint: `python export.py ckpt_path=.../best.ckpt format=onnx|torchscript [output=...]`.

The same as `hwr export ...` (hwr.commands.export)."""

import sys

from hwr.__main__ import main

if __name__ == "__main__":
    main(["export", *sys.argv[1:]])
