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
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from hwr.errors import HwrError


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


# `on_device: auto` keeps the data on the GPU when it takes at most this share of the free
# memory: EMNIST byclass (the largest set, 0.65 GB) fits any current GPU many times over,
# and the rest stays for the network's activations.
AUTO_MAX_SHARE = 0.25


def parse_on_device(value: bool | str) -> bool | str:
    """`data.on_device` as `"auto"`, True or False (also accepts the strings "true"/"false")."""
    text = str(value).strip().lower()
    if text in ("auto", "true", "false"):
        return {"auto": "auto", "true": True, "false": False}[text]
    raise HwrError(f"data.on_device={value!r} is not allowed; use auto, true or false")


def resident_device(on_device: bool | str, trainer: Any, sets: Sequence[Any]) -> torch.device | None:
    """The device a DataModule's sets should live on, or None for host memory: `on_device`
    true: the trainer's root device; auto: a GPU when the sets take at most AUTO_MAX_SHARE of
    its free memory; false (or no trainer): the host."""
    if on_device is False or trainer is None:
        return None
    device = trainer.strategy.root_device
    if on_device is True:
        return device
    if device.type != "cuda":
        return None  # auto: on a CPU trainer the data is already where the model is
    free, _total = torch.cuda.mem_get_info(device)
    resident = sum(s.nbytes for s in sets if s.images.device == device)
    needed = sum(s.nbytes for s in sets) - resident
    return device if needed <= AUTO_MAX_SHARE * (free + resident) else None


def host_loader(
    data: Any,
    batch_size: int,
    shuffle: bool,
    workers: int,
    pin_memory: bool,
    weights: torch.Tensor | None,
) -> DataLoader:
    """A DataLoader over host tensors; `weights`: weighted draws in place of the shuffle
    (Lightning shards the sampler under DDP). Training drops the ragged last batch: a batch of
    1 breaks BatchNorm."""
    sampler = None
    if weights is not None:
        sampler = WeightedRandomSampler(weights, num_samples=len(data), replacement=True)
    return DataLoader(
        IndexedImages(data),
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        drop_last=shuffle and len(data) > batch_size,
        collate_fn=keep_batch,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
    )


def resident_loader(
    data: Any, batch_size: int, shuffle: bool, trainer: Any, weights: torch.Tensor | None
) -> ResidentBatches:
    """Batches drawn on the device the data lives on (see ResidentBatches), sharded over the
    trainer's processes with one seed (the run's, broadcast from rank 0)."""
    rank, world_size = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
    if shuffle and trainer is not None and trainer.overfit_batches:
        shuffle = False  # overfit_batches: the same first batches every epoch, as Lightning does
    seed = torch.initial_seed()  # seed_everything sets it: the same in every process
    if world_size > 1:
        seed = trainer.strategy.broadcast(seed)
    return ResidentBatches(
        data.images,
        data.labels,
        batch_size,
        shuffle,
        shuffle and len(data) > batch_size,
        seed=seed,
        rank=rank,
        world_size=world_size,
        weights=None if weights is None or not shuffle else weights.to(data.images.device),
    )
