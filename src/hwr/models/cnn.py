"""Configurable CNN: blocks of [conv -> BatchNorm -> ReLU] x N, max-pool, dropout, then a dense head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hwr.errors import HwrError


def conv_block(c_in: int, c_out: int, convs: int, kernel_size: int, dropout: float) -> nn.Sequential:
    """`convs` x (conv -> BN -> ReLU), then 2x2 max-pool and dropout."""
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            # No conv bias: the BatchNorm right after has its own shift.
            nn.Conv2d(c_in if i == 0 else c_out, c_out, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]
    layers += [nn.MaxPool2d(2), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class CNN(nn.Module):
    """A stack of conv blocks (one per entry of `channels`) and a dense head.

    Args:
        input_shape: (C, H, W) of one image.
        num_classes: number of output logits.
        channels: output channels of each block; each block halves the resolution.
        convs_per_block: convolutions in each block.
        kernel_size: convolution kernel size (odd; padding keeps the size).
        dropout: dropout after each block's pooling.
        head: widths of the hidden dense layers (each Linear -> BN -> ReLU -> Dropout).
        head_dropout: dropout in the dense head.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (16, 32, 64),
        convs_per_block: int = 1,
        kernel_size: int = 5,
        dropout: float = 0.1,
        head: Sequence[int] = (256,),
        head_dropout: float = 0.4,
    ):
        super().__init__()
        c, h, w = input_shape
        if min(h, w) < 2 ** len(channels):
            raise HwrError(
                f"{len(channels)} pooling blocks need images of at least {2 ** len(channels)} px, got {h}x{w}"
            )
        blocks = []
        for c_out in channels:
            blocks.append(conv_block(c, c_out, convs_per_block, kernel_size, dropout))
            c, h, w = c_out, h // 2, w // 2
        self.features = nn.Sequential(*blocks)
        layers: list[nn.Module] = [nn.Flatten()]
        width = c * h * w
        for size in head:
            layers += [
                nn.Linear(width, size, bias=False),
                nn.BatchNorm1d(size),
                nn.ReLU(inplace=True),
                nn.Dropout(head_dropout),
            ]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.head = nn.Sequential(*layers)
        # The convolutions run channels_last whatever the input's layout (a conv's output follows
        # its weights, and BatchNorm, ReLU and pooling keep it): on a 2-core CPU this network
        # trains ~1.4x faster so (docs/benchmarks.md, "The first run on a CPU"), and it is the
        # layout cuDNN prefers. Flatten reads the features in (C, H, W) order either way.
        self.features.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
