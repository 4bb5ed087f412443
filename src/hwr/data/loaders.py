"""Batches from in-memory uint8 tensors: two loaders, one per place the data can live.

- Host memory: `IndexedImages` in a standard DataLoader. The sampler hands over indices, the
  dataset answers a whole batch with one tensor index, so samplers, DDP sharding, workers and
  pinned copies all work as usual.
- Resident on the training device (`data.on_device`): `ResidentBatches`. The shuffle is one
  `randperm` per epoch drawn on that device and a batch is a slice of it, so no Python list of
  indices is built and copied to the GPU for every step. Weighted draws (`data.balance`,
  `data=mix`'s source weights) are one `multinomial` per epoch there, in place of the randperm.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Dataset


class IndexedImages(Dataset):
    """A map-style dataset that serves a whole batch with one tensor index (`__getitems__`).

    Used with a normal DataLoader and `collate_fn=keep_batch`: the batch is already stacked.
    """

    def __init__(self, data):  # a LabelledImages
        self.images, self.labels = data.images, data.labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i], self.labels[i]

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        # The index must live where the data lives; samplers hand over plain ints.
        index = torch.as_tensor(indices, dtype=torch.long, device=self.images.device)
        return self.images[index], self.labels[index]


def keep_batch(batch):
    """collate_fn for IndexedImages: the batch arrives already stacked."""
    return batch


class ResidentBatches:
    """(images, labels) batches of tensors that already live on the training device.

    A plain iterable with a length, which Lightning accepts as a dataloader. Each pass is one
    epoch: with `shuffle`, a permutation drawn on the data's device by a generator seeded once
    with `seed` (so the order follows the run's seed, and every DDP process draws the same one);
    without, contiguous slices, which are views and cost nothing.

    Under DDP (`world_size` > 1) each process takes every `world_size`-th position from `rank`
    on. Training shards are cut to equal length (every process must take the same number of
    steps); evaluation shards cover every image exactly once, unlike DistributedSampler, which
    pads with repeated images.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        weights: torch.Tensor | None = None,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.rank, self.world_size = rank, world_size
        self.weights = weights  # per image: an epoch is n draws with replacement (data.balance)
        self.generator: torch.Generator | None = None
        if shuffle:
            self.generator = torch.Generator(device=images.device)
            self.generator.manual_seed(seed)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def _shard_size(self) -> int:
        n = len(self.labels)
        if self.world_size == 1:
            return n
        if self.shuffle:  # training: equal shards
            return n // self.world_size
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        size = self._shard_size()
        return size // self.batch_size if self.drop_last else math.ceil(size / self.batch_size)

    def _positions(self) -> torch.Tensor | None:
        """This process's positions for one epoch (None: all of them, in order)."""
        n = len(self.labels)
        if self.shuffle and self.weights is not None:
            order = torch.multinomial(self.weights, n, replacement=True, generator=self.generator)
        elif self.shuffle:
            order = torch.randperm(n, device=self.device, generator=self.generator)
        elif self.world_size == 1:
            return None
        else:
            order = torch.arange(n, device=self.device)
        if self.world_size > 1:
            order = order[self.rank :: self.world_size][: self._shard_size()]
        return order

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        positions = self._positions()
        for i in range(len(self)):
            start, stop = i * self.batch_size, (i + 1) * self.batch_size
            if positions is None:
                yield self.images[start:stop], self.labels[start:stop]
            else:
                index = positions[start:stop]
                yield self.images[index], self.labels[index]
