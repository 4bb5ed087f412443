"""Explore a dataset: `python explore.py data=emnist explore.chars=[5,S]` (see README).

The same as `hwr explore ...` (hwr.commands.explore)."""

import sys

from hwr.__main__ import main

if __name__ == "__main__":
    main(["explore", *sys.argv[1:]])
