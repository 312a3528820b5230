"""`DistributedSampler`: each rank's share of a dataset, as `torch.utils.data.distributed`.

    sampler = DistributedSampler(dataset)            # ranks from fusegrad.distributed
    loader = DataLoader(dataset, batch_size=32, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)                     # a new order each epoch, the same on every rank

PyTorch's partition: the indices (a permutation drawn from a generator seeded `seed + epoch`
when shuffling, else in order) are padded by repeating their start until they divide evenly
among the ranks (or, with `drop_last`, the tail is dropped), and rank r takes every
`num_replicas`-th index from position r. The permutation is fusegrad's (`randperm` on a
Philox `Generator`): the same on every rank for a given seed and epoch, but not the order
PyTorch's mt19937 gives.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sized
from typing import TypeVar

from ... import distributed as dist
from ...creation import randperm
from ...philox import Generator
from .sampler import Sampler

__all__ = ["DistributedSampler"]

_T_co = TypeVar("_T_co", covariant=True)


class DistributedSampler(Sampler[_T_co]):
    """Indices of rank `rank`'s share of `dataset` among `num_replicas` ranks (by default the
    default process group's rank and world size)."""

    def __init__(self, dataset: Sized, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        if num_replicas is None:
            if not dist.is_available():
                raise RuntimeError("Requires distributed package to be available")
            num_replicas = dist.get_world_size()
        if rank is None:
            if not dist.is_available():
                raise RuntimeError("Requires distributed package to be available")
            rank = dist.get_rank()
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        n = len(dataset)
        if self.drop_last and n % self.num_replicas != 0:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self) -> Iterator[_T_co]:
        n = len(self.dataset)
        if self.shuffle:
            g = Generator(self.seed + self.epoch)
            indices: list = randperm(n, generator=g).tolist()
        else:
            indices = list(range(n))
        if not self.drop_last:
            padding_size = self.total_size - len(indices)
            if padding_size <= len(indices):
                indices += indices[:padding_size]
            else:
                indices += (indices * math.ceil(padding_size / len(indices)))[:padding_size]
        else:
            indices = indices[:self.total_size]
        assert len(indices) == self.total_size
        indices = indices[self.rank:self.total_size:self.num_replicas]
        assert len(indices) == self.num_samples
        return iter(indices)

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Use epoch `epoch`'s order from now on (shuffled orders differ per epoch, agree across ranks)."""
        self.epoch = epoch
