"""Samplers: the order a DataLoader reads a map-style dataset in, as `torch.utils.data.sampler`.

A sampler yields indices (or, a batch sampler, lists of indices). The random ones draw from
fusegrad's Philox generator: `RandomSampler` without a generator of its own draws a fresh
seed from fusegrad's default generator each epoch (as PyTorch draws one from torch's), so
`fusegrad.manual_seed(s)` fixes every epoch's order; with `generator=` it draws from that
generator. The orders are fusegrad's own: PyTorch's mt19937 stream is not reproduced.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import Any, Generic, TypeVar

import numpy as np

from ...creation import as_tensor, randint, randperm
from ...dtypes import float64
from ...philox import Generator, default_generator, philox_words, uniform
from ...tensor import Tensor

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler",
           "BatchSampler", "draw_seed"]

_T_co = TypeVar("_T_co", covariant=True)


def draw_seed(generator: Generator | None = None) -> int:
    """A seed in [0, 2**63) from `generator`'s stream (fusegrad's default generator when None):
    fusegrad's `torch.empty((), dtype=torch.int64).random_(generator=g).item()`. It advances
    the generator by one draw."""
    seed, start = (generator or default_generator).take(1)
    w0, w1 = philox_words(seed, start, 1)
    return ((int(w0[0]) << 32) | int(w1[0])) & ((1 << 63) - 1)


class Sampler(Generic[_T_co]):
    """Base class of samplers: subclasses define `__iter__` (indices, or lists of indices for
    a batch sampler) and usually `__len__`."""

    def __iter__(self) -> Iterator[_T_co]:
        raise NotImplementedError


class SequentialSampler(Sampler[int]):
    """0, 1, ..., len(data_source) - 1."""

    data_source: Sized

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler[int]):
    """A random permutation of the indices per epoch (repeated to give `num_samples`), or, with
    `replacement=True`, `num_samples` independent uniform draws."""

    data_source: Sized
    replacement: bool

    def __init__(self, data_source: Sized, replacement: bool = False, num_samples: int | None = None,
                 generator: Generator | None = None) -> None:
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(self.replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={self.replacement}")
        if not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={self.num_samples}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        generator = self.generator if self.generator is not None else Generator(draw_seed())
        if self.replacement:
            for _ in range(self.num_samples // 32):
                yield from randint(high=n, size=(32,), generator=generator).tolist()
            yield from randint(high=n, size=(self.num_samples % 32,), generator=generator).tolist()
        else:
            for _ in range(self.num_samples // n):
                yield from randperm(n, generator=generator).tolist()
            yield from randperm(n, generator=generator).tolist()[:self.num_samples % n]

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler[int]):
    """The given indices in a random order (a new one each epoch)."""

    indices: Sequence[int]

    def __init__(self, indices: Sequence[int], generator: Generator | None = None) -> None:
        self.indices = indices
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        for i in randperm(len(self.indices), generator=self.generator).tolist():
            yield self.indices[i]

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler[int]):
    """`num_samples` indices in [0, len(weights)) drawn with probabilities proportional to
    `weights`: independently (`replacement=True`), or each index at most once.

    The draws are `fusegrad.multinomial`'s, computed with numpy on the generator's Philox
    stream: with replacement, a float64 uniform per sample located in the weights' cumulative
    sums (the same indices `fusegrad.multinomial` gives from the same generator state);
    without, the indices of the largest weight / Exp(1) keys (the Gumbel-top-k trick). The
    multinomial op builds a comparison of every sample against every weight, quadratic in
    the dataset's size; this is O(n log n)."""

    weights: Tensor
    num_samples: int
    replacement: bool

    def __init__(self, weights: Sequence[float] | Tensor, num_samples: int, replacement: bool = True,
                 generator: Generator | None = None) -> None:
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got replacement={replacement}")
        weights_tensor = as_tensor(weights, dtype=float64)
        if len(weights_tensor.shape) != 1:
            raise ValueError("weights should be a 1d sequence but given weights have shape "
                             f"{tuple(weights_tensor.shape)}")
        self.weights = weights_tensor
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        w = np.asarray(self.weights._host_values(), dtype=np.float64)
        n, k = w.shape[0], self.num_samples
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
        if n == 0 or w.sum() <= 0:
            raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
        if self.replacement:
            c = np.cumsum(w)
            u = uniform(k, np.float64, self.generator)
            idx = np.minimum(np.searchsorted(c, u * c[-1], side="right"), n - 1)
        else:
            if k > n:
                raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
            if np.count_nonzero(w) < k:
                raise RuntimeError("invalid multinomial distribution (with replacement=False, not enough "
                                   "non-negative category to sample)")
            u = uniform(n, np.float64, self.generator)
            keys = w / -np.log1p(-u)
            idx = np.argsort(-keys, kind="stable")[:k]
        yield from idx.tolist()

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler[list[int]]):
    """Lists of `batch_size` consecutive indices of `sampler`; the last one shorter, or dropped
    with `drop_last=True`."""

    def __init__(self, sampler: Sampler[Any] | Iterable[Any], batch_size: int, drop_last: bool) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        it = iter(self.sampler)
        if self.drop_last:
            for full in zip(*[it] * self.batch_size):
                yield [*full]
        else:
            batch = [*itertools.islice(it, self.batch_size)]
            while batch:
                yield batch
                batch = [*itertools.islice(it, self.batch_size)]

    def __len__(self) -> int:
        n: Any = len(self.sampler)  # type: ignore[arg-type]
        if self.drop_last:
            return n // self.batch_size
        return (n + self.batch_size - 1) // self.batch_size
