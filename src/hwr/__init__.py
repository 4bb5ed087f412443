"""hwr: train, compare and ship handwritten character classifiers."""

__version__ = "0.1.0"
