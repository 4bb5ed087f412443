"""A small ResNet for character images: 3x3 stem, stages of BasicBlocks, global average pooling."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hwr.errors import HwrError


def conv_bn(c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    """conv -> BN; no conv bias, as the BatchNorm right after has its own shift."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(c_out),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN with a ReLU between, added to a shortcut, then ReLU (He et al., 2016).

    The shortcut is the identity, or a 1x1 conv-BN where the block changes the stride or width.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(c_in, c_out, 3, stride), nn.ReLU(inplace=True), conv_bn(c_out, c_out, 3)
        )
        # Zero-init the last BN's scale: each block starts as (nearly) the identity, so the
        # signal and gradients pass through the whole stack unchanged at the start.
        nn.init.zeros_(self.body[-1][1].weight)
        self.shortcut = conv_bn(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """Stem conv-BN-ReLU, one stage of BasicBlocks per entry of `channels`, pooling, Linear.

    Args:
        input_shape: (C, H, W) of one image.
        num_classes: number of output logits.
        channels: width of each stage; every stage after the first halves the resolution
            (stride 2 in its first block), so 28 px images give 28, 14, 7 px maps.
        blocks_per_stage: BasicBlocks in each stage.
        dropout: dropout on the pooled features, before the Linear classifier.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (24, 48, 96),
        blocks_per_stage: int = 2,
        dropout: float = 0.2,
    ):
        super().__init__()
        c, h, w = input_shape
        # The last stage should still see 2x2 px, or its 3x3 convolutions read mostly padding.
        if min(h, w) < 2 ** len(channels):
            raise HwrError(
                f"{len(channels)} ResNet stages need images of at least {2 ** len(channels)} px, got {h}x{w}"
            )
        # No stride or pooling in the stem: a 28 px character has no detail to spare.
        layers: list[nn.Module] = [conv_bn(c, channels[0], 3), nn.ReLU(inplace=True)]
        c = channels[0]
        for i, c_out in enumerate(channels):
            for j in range(blocks_per_stage):
                layers.append(BasicBlock(c, c_out, stride=2 if i > 0 and j == 0 else 1))
                c = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
