"""Predict image files: `python predict.py ckpt_path=.../best.ckpt inputs=[img.png,folder/] [--json]`.

The same as `hwr predict ...` (hwr.commands.predict)."""

import sys

from hwr.__main__ import main

if __name__ == "__main__":
    main(["predict", *sys.argv[1:]])
