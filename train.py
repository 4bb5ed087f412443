"""Train and test a character classifier: `python train.py model=cnn data=emnist` (see README).

The same as `hwr train ...` (hwr.commands.train)."""

import sys

from hwr.__main__ import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
