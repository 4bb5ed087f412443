"""Classical baselines (KNN, random forest): `python baselines.py data=english` (see README).

The same as `hwr baselines ...` (hwr.commands.baselines)."""

import sys

from hwr.__main__ import main

if __name__ == "__main__":
    main(["baselines", *sys.argv[1:]])
