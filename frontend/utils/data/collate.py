"""Collating samples into a batch: `default_collate` and `default_convert`, as PyTorch's.

`default_collate` turns a list of samples into one batch: tensors and numpy arrays are
stacked along a new first dimension, Python ints, floats and bools become int64, float64 and
bool tensors, strings stay a list, and dicts, namedtuples, tuples and lists are collated
field by field (tuples become lists, as in PyTorch). `default_convert` (the collate function
when automatic batching is off) converts numpy arrays to tensors and leaves the rest.

Stacking is cheap: a sample is normally a realized value (a row of a dataset tensor), so the
samples' host elements are copied with numpy into one fresh aligned buffer that becomes the
batch tensor, instead of building a lazy `stack` graph for every batch. The batch keeps the
samples' dtype (a bfloat16 buffer's elements are its bit patterns, copied as they are).
Samples that need autograd, live on a GPU, have different dtypes (PyTorch promotes) or are
collated inside a traced function go through `fusegrad.stack` instead.
"""
from __future__ import annotations

import collections.abc
import copy
import re
from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np

from ... import dtypes as D
from ... import trace_hooks
from ...creation import as_tensor, tensor
from ...realize import realize
from ...runtime import aligned_empty
from ...shape_ops import stack
from ...tensor import Tensor

__all__ = ["default_collate", "default_convert", "collate", "default_collate_fn_map", "stack_samples"]

np_str_obj_array_pattern = re.compile(r"[SaUO]")

default_collate_err_msg_format = (
    "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}")

CollateFnMap = dict[Union[type, tuple[type, ...]], Callable[..., Any]]


def default_convert(data: Any) -> Any:
    """numpy arrays and scalars as tensors (sharing an array's memory), inside dicts,
    namedtuples, tuples (which become lists) and sequences; everything else as it is."""
    elem_type = type(data)
    if isinstance(data, Tensor):
        return data
    if elem_type.__module__ == "numpy" and elem_type.__name__ not in ("str_", "string_"):
        if elem_type.__name__ == "ndarray" and np_str_obj_array_pattern.search(data.dtype.str) is not None:
            return data      # an array of strings or objects
        return as_tensor(data)
    if isinstance(data, collections.abc.Mapping):
        try:
            if isinstance(data, collections.abc.MutableMapping):
                clone = copy.copy(data)      # a mapping type may carry more than its items
                clone.update({key: default_convert(data[key]) for key in data})
                return clone
            return elem_type({key: default_convert(data[key]) for key in data})
        except TypeError:    # no copy()/update() or no constructor from a dict
            return {key: default_convert(data[key]) for key in data}
    if isinstance(data, tuple) and hasattr(data, "_fields"):     # namedtuple
        return elem_type(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            if isinstance(data, collections.abc.MutableSequence):
                seq = copy.copy(data)
                for i, d in enumerate(data):
                    seq[i] = default_convert(d)
                return seq
            return elem_type([default_convert(d) for d in data])
        except TypeError:    # e.g. range
            return [default_convert(d) for d in data]
    return data


def collate(batch: Sequence[Any], *, collate_fn_map: CollateFnMap | None = None) -> Any:
    """Collate `batch` by the type of its first element: a function of `collate_fn_map` (by
    exact type, then by isinstance), else field by field for mappings and sequences."""
    elem = batch[0]
    elem_type = type(elem)
    if collate_fn_map is not None:
        if elem_type in collate_fn_map:
            return collate_fn_map[elem_type](batch, collate_fn_map=collate_fn_map)
        for collate_type in collate_fn_map:
            if isinstance(elem, collate_type):
                return collate_fn_map[collate_type](batch, collate_fn_map=collate_fn_map)
    if isinstance(elem, collections.abc.Mapping):
        try:
            if isinstance(elem, collections.abc.MutableMapping):
                clone = copy.copy(elem)
                clone.update({key: collate([d[key] for d in batch], collate_fn_map=collate_fn_map) for key in elem})
                return clone
            return elem_type({key: collate([d[key] for d in batch], collate_fn_map=collate_fn_map)
                              for key in elem})
        except TypeError:
            return {key: collate([d[key] for d in batch], collate_fn_map=collate_fn_map) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):      # namedtuple
        return elem_type(*(collate(samples, collate_fn_map=collate_fn_map) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        it = iter(batch)
        elem_size = len(next(it))
        if not all(len(e) == elem_size for e in it):
            raise RuntimeError("each element in list of batch should be of equal size")
        transposed = list(zip(*batch))
        if isinstance(elem, tuple):
            return [collate(samples, collate_fn_map=collate_fn_map) for samples in transposed]
        try:
            if isinstance(elem, collections.abc.MutableSequence):
                seq = copy.copy(elem)
                for i, samples in enumerate(transposed):
                    seq[i] = collate(samples, collate_fn_map=collate_fn_map)
                return seq
            return elem_type([collate(samples, collate_fn_map=collate_fn_map)
                              for samples in transposed])
        except TypeError:
            return [collate(samples, collate_fn_map=collate_fn_map) for samples in transposed]
    raise TypeError(default_collate_err_msg_format.format(elem_type))


def _size_error(shape: Sequence[int], other: Sequence[int], i: int) -> RuntimeError:
    return RuntimeError(f"stack expects each tensor to be equal size, but got {list(shape)} at entry 0 and "
                        f"{list(other)} at entry {i}")


def stack_samples(batch: Sequence[Tensor]) -> Tensor:
    """The tensors of `batch` stacked along a new first dimension, in one fresh buffer filled
    from their host values (no graph); `fusegrad.stack` where autograd, a GPU, mixed dtypes or
    a trace need it."""
    elem = batch[0]
    shape, dtype = elem.shape, elem.dtype
    for i, t in enumerate(batch):
        if t.shape != shape:
            raise _size_error(shape, t.shape, i)
    if trace_hooks.active() or any(t.dtype is not dtype or t.requires_grad or t.device.type != "cpu" for t in batch):
        return stack(list(batch), 0)
    pending = [t._storage for t in batch if not t._storage.realized]
    if pending:
        realize(pending)     # all at once: one program for the samples still to compute
    out = aligned_empty((len(batch), *shape), dtype.np)
    for i, t in enumerate(batch):
        out[i] = t._view_array()
    return Tensor._from_array(out, dtype=dtype)


def stack_arrays(arrays: Sequence[np.ndarray]) -> Tensor | None:
    """numpy arrays of one shape and supported dtype stacked into one fresh aligned buffer as a
    tensor; None when they differ or have no fusegrad dtype (the caller then converts each)."""
    elem = arrays[0]
    try:
        dtype = D.from_numpy(elem.dtype)
    except TypeError:
        return None
    if not elem.dtype.isnative or any(type(a) is not type(elem) or a.dtype != elem.dtype for a in arrays):
        return None
    for i, a in enumerate(arrays):
        if a.shape != elem.shape:
            raise _size_error(elem.shape, a.shape, i)
    out = aligned_empty((len(arrays), *elem.shape), elem.dtype)
    for i, a in enumerate(arrays):
        out[i] = a
    return Tensor._from_array(out, dtype=dtype)


def collate_tensor_fn(batch: Sequence[Tensor], *, collate_fn_map: CollateFnMap | None = None) -> Tensor:
    return stack_samples(batch)


def collate_numpy_array_fn(batch: Sequence[np.ndarray], *, collate_fn_map: CollateFnMap | None = None) -> Any:
    elem = batch[0]
    if np_str_obj_array_pattern.search(elem.dtype.str) is not None:     # strings or objects
        raise TypeError(default_collate_err_msg_format.format(elem.dtype))
    out = stack_arrays(batch)
    if out is not None:
        return out
    return collate([as_tensor(b) for b in batch], collate_fn_map=collate_fn_map)


def collate_numpy_scalar_fn(batch: Sequence[Any], *, collate_fn_map: CollateFnMap | None = None) -> Tensor:
    return as_tensor(np.asarray(batch))


def collate_float_fn(batch: Sequence[float], *, collate_fn_map: CollateFnMap | None = None) -> Tensor:
    return tensor(batch, dtype=D.float64)


def collate_int_fn(batch: Sequence[int], *, collate_fn_map: CollateFnMap | None = None) -> Tensor:
    if all(type(x) is int for x in batch):      # plain ints (not bools): int64 at once
        try:
            values = np.array(batch, dtype=np.int64)
        except OverflowError:
            return tensor(batch)
        out = aligned_empty(values.shape, np.int64)
        out[...] = values
        return Tensor._from_array(out)
    return tensor(batch)      # bools (or a mixture): the dtype PyTorch infers


def collate_str_fn(batch: Sequence[Any], *, collate_fn_map: CollateFnMap | None = None) -> Any:
    return batch


default_collate_fn_map: CollateFnMap = {
    Tensor: collate_tensor_fn,
    np.ndarray: collate_numpy_array_fn,           # and memmaps
    (np.bool_, np.number, np.object_): collate_numpy_scalar_fn,
    float: collate_float_fn,
    int: collate_int_fn,
    str: collate_str_fn,
    bytes: collate_str_fn,
}


def default_collate(batch: Sequence[Any]) -> Any:
    """A list of samples as one batch (see the module's docstring): PyTorch's default_collate.

    >>> default_collate([(1, "a"), (2, "b")])
    [tensor([1, 2]), ['a', 'b']]
    """
    return collate(batch, collate_fn_map=default_collate_fn_map)
