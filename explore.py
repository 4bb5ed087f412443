"""Explore a dataset: `python explore.py data=emnist explore.chars=[5,S]` (see README)."""

from hwr.explore import main

if __name__ == "__main__":
    main()
