"""Fetching one batch (or one sample) from a dataset: what the DataLoader's main process and
its workers both run, as PyTorch's `_utils/fetch.py`.

A map-style fetcher reads the samples of a batch of indices with `dataset.__getitems__` when
the dataset defines it, else one `dataset[i]` each, and collates them. The common case, a
`TensorDataset` (or a Subset of one, e.g. from `random_split`) with the default collate
function, takes a fast path: one numpy gather (`np.take`) per tensor into a fresh buffer,
the same batch the per-sample path builds without a tensor per sample. An iterable fetcher
draws the batch's samples from the dataset's iterator.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ... import trace_hooks
from ...realize import realize
from ...runtime import aligned_empty
from ...tensor import Tensor
from .collate import default_collate
from .dataset import Subset, TensorDataset

__all__ = ["MapDatasetFetcher", "IterableDatasetFetcher", "make_fetcher", "tensor_batch_reader",
           "realize_dataset_tensors"]

MAP, ITERABLE = 0, 1      # the dataset kinds


class MapDatasetFetcher:
    def __init__(self, dataset: Any, auto_collation: bool, collate_fn: Callable[[Any], Any],
                 drop_last: bool) -> None:
        self.dataset = dataset
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.fast = tensor_batch_reader(dataset) if auto_collation and collate_fn is default_collate else None
        getitems = getattr(dataset, "__getitems__", None)
        self.getitems = getitems if getitems else None

    def fetch(self, index: Any) -> Any:
        if not self.auto_collation:
            return self.collate_fn(self.dataset[index])
        if self.fast is not None:
            batch = self.fast(index)
            if batch is not None:
                return batch
        if self.getitems is not None:
            data = self.getitems(index)
        else:
            data = [self.dataset[i] for i in index]
        return self.collate_fn(data)


class IterableDatasetFetcher:
    def __init__(self, dataset: Any, auto_collation: bool, collate_fn: Callable[[Any], Any],
                 drop_last: bool) -> None:
        self.dataset_iter = iter(dataset)
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.ended = False

    def fetch(self, index: Any) -> Any:
        if self.ended:
            raise StopIteration
        if not self.auto_collation:
            return self.collate_fn(next(self.dataset_iter))
        data = []
        for _ in index:
            try:
                data.append(next(self.dataset_iter))
            except StopIteration:
                self.ended = True
                break
        if len(data) == 0 or (self.drop_last and len(data) < len(index)):
            raise StopIteration
        return self.collate_fn(data)


def make_fetcher(kind: int, dataset: Any, auto_collation: bool, collate_fn: Callable[[Any], Any],
                 drop_last: bool) -> MapDatasetFetcher | IterableDatasetFetcher:
    cls = MapDatasetFetcher if kind == MAP else IterableDatasetFetcher
    return cls(dataset, auto_collation, collate_fn, drop_last)


def _tensor_source(dataset: Any) -> tuple[TensorDataset | None, list[np.ndarray]]:
    """The TensorDataset under a chain of plain Subsets, with the Subsets' index arrays
    (outermost first); None unless its item access is TensorDataset's own."""
    maps: list[np.ndarray] = []
    while type(dataset) is Subset:
        indices = np.asarray(dataset.indices)
        maps.append(indices if indices.size else indices.astype(np.int64))
        dataset = dataset.dataset
    if not isinstance(dataset, TensorDataset) or type(dataset).__getitem__ is not TensorDataset.__getitem__ \
            or hasattr(dataset, "__getitems__") or any(m.dtype.kind not in "iu" for m in maps):
        return None, maps
    return dataset, maps


def realize_dataset_tensors(dataset: Any) -> None:
    """Compute a TensorDataset's pending tensors (under Subsets too) now, in this process:
    before worker processes start, so that they share the values instead of each computing
    them."""
    source, _ = _tensor_source(dataset)
    if source is not None and not trace_hooks.active():
        pending = [t._storage for t in source.tensors if not t._storage.realized]
        if pending:
            realize(pending)


def tensor_batch_reader(dataset: Any) -> Callable[[Any], list[Tensor] | None] | None:
    """For a TensorDataset, or Subsets of one, whose item access is the stock one: a function
    from a batch of indices to `default_collate` of its samples (a list with one tensor per
    dataset tensor), or to None where the fast path does not apply to the batch (indices
    that are not ints, or out of range: the per-sample path then raises PyTorch's error;
    tensors that need autograd or live on a GPU; a trace). None for other datasets."""
    source, maps = _tensor_source(dataset)
    if source is None:
        return None
    dataset = source
    tensors = dataset.tensors
    n = len(dataset)

    def read(index: Any) -> list[Tensor] | None:
        idx = np.asarray(index)
        if idx.ndim != 1 or (idx.dtype.kind not in "iu" and idx.size) or trace_hooks.active():
            return None
        if any(t.requires_grad or t.device.type != "cpu" for t in tensors):
            return None
        try:
            for m in maps:           # the outermost Subset's indices first
                idx = m[idx]
            if idx.size and (idx.min() < -n or idx.max() >= n):
                return None
            out = []
            for t in tensors:
                a = t._realize()._view_array()      # storage elements: a bfloat16 tensor's bit patterns
                rows = aligned_empty((idx.shape[0], *a.shape[1:]), a.dtype)
                np.take(a, idx, axis=0, out=rows, mode="wrap")     # (in range: "wrap" reads negatives as Python)
                out.append(Tensor._from_array(rows, dtype=t.dtype))
        except IndexError:
            return None
        return out
    return read
