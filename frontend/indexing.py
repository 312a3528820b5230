"""Indexing: `x[...]` reads and `x[...] = v` writes, with PyTorch's rules.

Basic indices (ints, slices, None, ...) make a view: one slice and one reshape primitive on
the base, so writes go back through the view (inplace.py). Integer-tensor indices are a
gather over the indexed dims flattened into one; a boolean mask is turned into the integer
indices of its True elements (its values decide the result's shape, so it is realized, as
PyTorch synchronizes on it). Writes through tensor indices are a where/scatter update.

Like the other op modules, this one imports only the layers below Tensor: index tensors made
here are built through the indexed tensor (`x._wrap`, `x._result`: see tensor_base.py), and
`IndexingMethods`, at the end, holds Tensor's indexing methods, which tensor.py composes.
"""
from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from . import dtypes as D
from . import inplace, ops, shape_ops, trace_hooks
from .conversion import to_array
from .prims import iota_node
from .storage import Storage
from .tensor_base import TensorBase, leaf_node

if TYPE_CHECKING:
    from .tensor import Tensor


def _as_index_list(x, index):
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    for item in index:
        if isinstance(item, (list, np.ndarray)) and not isinstance(item, TensorBase):
            item = _array_tensor(x, to_array(item, None))     # fusegrad.tensor(item)
        out.append(item)
    return out


def _array_tensor(like, array: np.ndarray):
    """A leaf tensor holding `array` (built through the tensor `like`)."""
    return like._wrap(Storage(leaf_node(array), buffer=array))


def _expand_ellipsis(items, rank):
    used = builtins.sum(1 for i in items if i is not None and i is not Ellipsis and not _is_bool_tensor(i)) + \
        builtins.sum(i.dim() for i in items if _is_bool_tensor(i))
    if builtins.sum(1 for i in items if i is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    out = []
    for i in items:
        if i is Ellipsis:
            out.extend([slice(None)] * (rank - used))
        else:
            out.append(i)
    return out


def _is_bool_tensor(i) -> bool:
    return isinstance(i, TensorBase) and i.dtype.is_bool


def _bool_to_long(items, shape):
    """A boolean mask index becomes the integer indices of its True elements, one per dim."""
    out, d = [], 0
    for i in items:
        if _is_bool_tensor(i):
            _check_mask(i, shape, d)
            coords = np.nonzero(i._host_values())
            out.extend(_array_tensor(i, np.ascontiguousarray(c.astype(np.int64))) for c in coords)
            d += i.dim()
        elif isinstance(i, builtins.bool):
            out.append(None if i else slice(0, 0))
        else:
            out.append(i)
            d += i is not None
    return out


def _check_mask(mask, shape, at: int):
    """A mask indexing dims at, at+1, ... must have their sizes."""
    for k, size in enumerate(mask.shape):
        if at + k < len(shape) and size != shape[at + k]:
            raise IndexError(f"The shape of the mask {list(mask.shape)} at index {k} does not match the shape of the "
                             f"indexed tensor {list(shape)} at index {at + k}")


def _basic(x, items):
    """Apply ints/slices/None; return the view and, per remaining dim, its tensor index (or None)."""
    if x.dim() == 0 and any(i is not None for i in items):
        raise IndexError("invalid index of a 0-dim tensor. Use `tensor.item()` in Python or `tensor.item<T>()` "
                         "in C++ to convert a 0-dim tensor to a number")
    shape = tuple(x.shape)
    if builtins.sum(1 for i in items if i is not None) > len(shape):
        raise IndexError(f"too many indices for tensor of dimension {len(shape)}")
    ranges, out_shape, tensor_at, d, name = {}, [], [], 0, "SliceBackward0"
    for item in items:
        if item is None:
            out_shape.append(1)
            tensor_at.append(None)
            name = "UnsqueezeBackward0"
            continue
        size = shape[d]
        if isinstance(item, (builtins.int, np.integer)):
            i = builtins.int(item)
            if not -size <= i < size:
                raise IndexError(f"index {i} is out of bounds for dimension {d} with size {size}")
            i %= size
            ranges[d] = (i, i + 1, 1)
            name = "SelectBackward0"
        elif isinstance(item, slice):
            start, stop, step = item.indices(size) if item.step is None or item.step > 0 else (0, 0, 1)
            if item.step is not None and item.step <= 0:
                raise ValueError("step must be greater than zero")
            stop = builtins.max(stop, start)
            ranges[d] = (start, stop, step)
            out_shape.append(len(range(start, stop, step)))
            tensor_at.append(None)
        elif isinstance(item, TensorBase):
            if item.dtype.is_floating_point:
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            out_shape.append(size)
            tensor_at.append(item)
        else:
            raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables are "
                             f"valid indices (got {type(item).__name__})")
        d += 1
    out_shape += shape[d:]
    tensor_at += [None] * (len(shape) - d)
    v = shape_ops.slice_dims(x, ranges, name)
    if tuple(v.shape) != tuple(out_shape):
        v = shape_ops.make_view(v, "reshape", {"shape": tuple(out_shape)}, name)
    return v, tensor_at


def _advanced(v, tensor_at):
    """Gather for tensor indices at the dims `tensor_at` marks (PyTorch's placement rules)."""
    dims = [d for d, t in enumerate(tensor_at) if t is not None]
    idx = [ops.cast(tensor_at[d], D.int64) for d in dims]
    bshape = tuple(np.broadcast_shapes(*[tuple(i.shape) for i in idx]))
    rest = [d for d in range(v.dim()) if d not in dims]
    moved = shape_ops.permute(v, dims + rest) if dims != list(range(len(dims))) else v
    sizes = [v.shape[d] for d in dims]
    linear = None
    for i, size in zip(idx, sizes):
        i = ops.where(ops.lt(i, 0), ops.add(i, size), i)
        linear = i if linear is None else ops.add(ops.mul(linear, size), i)
    linear = linear.expand(bshape) if tuple(linear.shape) != bshape else linear
    rest_shape = tuple(v.shape[d] for d in rest)
    n = 1
    for s in sizes:
        n *= s
    flat = shape_ops.reshape_value(moved, (n,) + rest_shape)
    nb = 1
    for s in bshape:
        nb *= s
    index = shape_ops.reshape_value(linear, (nb,) + (1,) * len(rest_shape))
    index = index.expand((nb,) + rest_shape) if rest_shape else index
    picked = ops.prim("gather", [flat, index], {"axis": 0}, name="IndexBackward0")
    out = shape_ops.reshape_value(picked, bshape + rest_shape)
    adjacent = dims == list(range(dims[0], dims[0] + len(dims)))
    if adjacent and dims[0] > 0:
        k, lead = len(bshape), dims[0]
        perm = list(range(k, k + lead)) + list(range(k)) + list(range(k + lead, out.dim()))
        out = shape_ops.permute(out, perm)
    return ops.named(out, "IndexBackward0")


def _on_device_of(x, items):
    """Index tensors go to x's device, as PyTorch moves them (they are often made on the CPU)."""
    dev = x._storage.device
    if dev is None:
        return items
    return [i.to(x.device) if isinstance(i, TensorBase) and i._storage.device != dev else i for i in items]


def getitem(x, index):
    items = _bool_to_long(_expand_ellipsis(_as_index_list(x, index), x.dim()), tuple(x.shape))
    items = _on_device_of(x, items)
    v, tensor_at = _basic(x, items)
    if all(t is None for t in tensor_at):
        return v
    return _advanced(v, tensor_at)


def setitem(x, index, value):
    items = _on_device_of(x, _expand_ellipsis(_as_index_list(x, index), x.dim()))
    if len(items) == 1 and _is_bool_tensor(items[0]) and tuple(items[0].shape) == tuple(x.shape[:items[0].dim()]) \
            and (not isinstance(value, TensorBase) or value.numel() == 1):
        mask = items[0]
        if mask.dim() < x.dim():
            mask = shape_ops.reshape_value(mask, tuple(mask.shape) + (1,) * (x.dim() - mask.dim()))
        inplace.assign(x, ops.where(mask, value if isinstance(value, TensorBase) else value, x), "index_put_")
        return
    items = _on_device_of(x, _bool_to_long(items, tuple(x.shape)))
    v, tensor_at = _basic(x, items)
    if all(t is None for t in tensor_at):
        if isinstance(value, TensorBase):
            inplace.assign(v, value, "copy_")
        else:
            inplace.fill_(v, value)
        return
    _index_put(v, tensor_at, value)


def _index_put(v, tensor_at, value):
    """v[tensor indices] = value: scatter the values and a hit mask, then select."""
    dev = v._storage.device
    positions = _advanced(_iota_like(v), tensor_at)       # flat positions of the written elements
    target = tuple(positions.shape)
    vals = value if isinstance(value, TensorBase) else ops.const(value, v.dtype, (), dev, like=v)
    vals = ops.cast(vals, v.dtype).expand(target) if tuple(vals.shape) != target else ops.cast(vals, v.dtype)
    n = v.numel()
    flat_pos = shape_ops.reshape_value(positions, (positions.numel(),))
    flat_vals = shape_ops.reshape_value(vals, (vals.numel(),))
    if not trace_hooks.active():
        flat_pos, flat_vals = _last_write_wins(flat_pos, flat_vals)
    zeros = ops.const(0, v.dtype, (n,), dev, like=v)
    scattered = ops.prim("scatter_add", [zeros, flat_pos, flat_vals], {"axis": 0})
    hits = ops.prim("scatter_add", [ops.const(0, D.int64, (n,), dev, like=v), flat_pos,
                                    ops.const(1, D.int64, (flat_pos.numel(),), dev, like=v)], {"axis": 0})
    old = shape_ops.reshape_value(v, (n,))
    new = ops.where(ops.gt(hits, 0), scattered, old)
    inplace.assign(v, shape_ops.reshape_value(new, tuple(v.shape)), "index_put_")


def _last_write_wins(positions, values):
    """Keep only the last write to each position, as PyTorch's CPU does (eagerly: the positions
    are realized; in a trace, repeated indices stay undefined, as PyTorch documents)."""
    pos = positions.cpu().numpy()
    _, last_reversed = np.unique(pos[::-1], return_index=True)
    keep = np.sort(len(pos) - 1 - last_reversed)
    if len(keep) == len(pos):
        return positions, values
    keep_t = _array_tensor(positions, np.ascontiguousarray(keep.astype(np.int64)))
    kept = _array_tensor(positions, np.ascontiguousarray(pos[keep])).to(positions.device)
    return kept, getitem(values, keep_t)


def _iota_like(v):
    flat = v._result(iota_node((v.numel(),), 0, D.int64, v._storage.device))
    return shape_ops.reshape_value(flat, tuple(v.shape))


def index_select(x, dim, index):
    (axis,) = ops.normalize_dims(x, dim, "index_select")
    items = [slice(None)] * axis + [index]
    return ops.named(getitem(x, tuple(items)), "IndexSelectBackward0")


def masked_fill(x, mask, value):
    return ops.named(ops.where(mask, value, x), "MaskedFillBackward0")


def scatter_add(x, dim, index, src):
    (axis,) = ops.normalize_dims(x, dim, "scatter_add")
    return ops.prim("scatter_add", [x, index, src], {"axis": axis}, name="ScatterAddBackward0")



# ---------------------------------------------------------------- Tensor's methods

class IndexingMethods(TensorBase):
    """Tensor methods that index: `x[...]`, `x[...] = v`, iteration, index_select, ..."""

    __slots__ = ()

    def __getitem__(self, index: Any) -> Tensor:
        return getitem(self, index)

    def __setitem__(self, index: Any, value: Any) -> None:
        setitem(self, index, value)

    def __iter__(self) -> Iterator[Tensor]:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (getitem(self, i) for i in range(self.shape[0]))

    def index_select(self, dim: int, index: Tensor) -> Tensor:
        return index_select(self, dim, index)

    def masked_fill(self, mask: Tensor, value: Any) -> Tensor:
        return masked_fill(self, mask, value)
