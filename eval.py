"""Test a checkpoint: `python eval.py ckpt_path=outputs/.../checkpoints/best.ckpt data=...`.

The same as `hwr eval ...` (hwr.commands.eval)."""

import sys

from hwr.__main__ import main

if __name__ == "__main__":
    main(["eval", *sys.argv[1:]])
