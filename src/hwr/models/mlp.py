"""Multi-layer perceptron over flattened pixels."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import torch
from torch import nn


class MLP(nn.Module):
    """Flatten -> [Linear -> (BatchNorm) -> ReLU -> Dropout] per hidden size -> Linear.

    Args:
        input_shape: (C, H, W) of one image.
        num_classes: number of output logits.
        hidden: width of each hidden layer.
        dropout: dropout after each hidden layer.
        batchnorm: add BatchNorm1d after each hidden Linear.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int] = (512, 256),
        dropout: float = 0.2,
        batchnorm: bool = False,
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = prod(input_shape)
        for size in hidden:
            layers.append(nn.Linear(width, size, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm1d(size))
            layers += [nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
