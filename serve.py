"""Serve a model's drawing page and JSON API: `python serve.py ckpt_path=.../best.ckpt [port=8000]`.

The same as `hwr serve ...` (hwr.commands.serve)."""

import sys

from hwr.__main__ import main

if __name__ == "__main__":
    main(["serve", *sys.argv[1:]])
