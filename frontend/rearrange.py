"""Ops that cut, repeat, reorder or mask a tensor's elements, and the `new_*` factories
(issue 13, "real models"): split, chunk, unbind, tensor_split, tril, triu, repeat,
repeat_interleave, flip, roll, new_zeros/ones/full/empty/tensor.

Everything is composed from existing primitives, so autograd and `@compile` need nothing
of their own:
- split, chunk, unbind and tensor_split return views (slices of the operand, as PyTorch's);
- tril/triu keep the elements where two `iota`s compare (the mask is free inside the fused
  kernel: nothing on the host, nothing to upload);
- repeat and int repeat_interleave are a reshape, an expand and a reshape; flip is a
  gather of reversed `iota` indices; roll concatenates two slices;
- new_zeros/new_ones/new_full/new_empty are constants (computed where they are used), on
  the operand's device and of its dtype unless told otherwise; new_tensor copies its data.

Like the other op modules, this one imports only the layers below Tensor and builds its
results through its operands; `RearrangeMethods`, at the end, holds the Tensor methods.
"""
from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import dtypes as D
from . import ops, shape_ops
from .conversion import sizes as _sizes
from .conversion import to_array
from .device import as_device
from .inplace import _inplace
from .prims import const, iota_node, make_view, named, op_error, prim, reshape_value
from .storage import Storage
from .tensor_base import TensorBase, leaf_node, normalize_dims

if TYPE_CHECKING:
    from .tensor import Tensor


def _device_of(x: TensorBase) -> Any:
    """`x`'s device as the lazy layer places values (None for the CPU)."""
    return None if x.device.type == "cpu" else x.device


def _axis(x: TensorBase, dim: int, op: str) -> int:
    """One dim of `x`, as PyTorch's ops that need a dim to cut along (none for a 0-d tensor)."""
    if x.dim() == 0:
        raise op_error(IndexError, op, f"Dimension specified as {dim} but tensor has no dimensions", [x])
    return normalize_dims(x, dim, op)[0]


def _piece(x: TensorBase, axis: int, start: int, stop: int, name: str | None) -> Tensor:
    """x[..., start:stop, ...] along `axis`, as a view (also when it is all of x)."""
    starts = tuple(start if d == axis else 0 for d in range(x.dim()))
    stops = tuple(stop if d == axis else s for d, s in enumerate(x.shape))
    return make_view(x, "slice", {"starts": starts, "stops": stops, "steps": (1,) * x.dim()}, name)


# ---------------------------------------------------------------- cutting into pieces

def split(tensor: TensorBase, split_size_or_sections: int | Sequence[int], dim: int = 0) -> tuple[Tensor, ...]:
    """Pieces of `split_size` along `dim` (the last one smaller), or of the listed sizes."""
    x = tensor
    axis = _axis(x, dim, "split")
    n = x.shape[axis]
    if isinstance(split_size_or_sections, (list, tuple)):
        return split_with_sizes(x, split_size_or_sections, axis)
    size = builtins.int(split_size_or_sections)  # type: ignore[arg-type]
    if size < 0:
        raise op_error(RuntimeError, "split", f"split expects split_size be non-negative, but got split_size={size}",
                       [x])
    if size == 0:
        if n != 0:
            raise op_error(RuntimeError, "split", "split_size can only be 0 if dimension size is 0, but got "
                           f"dimension size of {n}", [x])
        return (_piece(x, axis, 0, 0, "SplitBackward0"),)
    starts = range(0, builtins.max(n, 1), size)
    return tuple(_piece(x, axis, s, builtins.min(s + size, n), "SplitBackward0") for s in starts)


def split_with_sizes(x: TensorBase, split_sizes: Sequence[int], dim: int = 0) -> tuple[Tensor, ...]:
    axis = _axis(x, dim, "split_with_sizes")
    sizes = [builtins.int(s) for s in split_sizes]
    if builtins.any(s < 0 for s in sizes):
        raise op_error(RuntimeError, "split_with_sizes", "split_with_sizes expects split_sizes have only "
                       f"non-negative entries, but got split_sizes={sizes}", [x])
    if builtins.sum(sizes) != x.shape[axis]:
        raise op_error(RuntimeError, "split_with_sizes", "split_with_sizes expects split_sizes to sum exactly to "
                       f"{x.shape[axis]} (input tensor's size at dimension {axis}), but got split_sizes={sizes}", [x])
    out, start = [], 0
    for s in sizes:
        out.append(_piece(x, axis, start, start + s, "SplitWithSizesBackward0"))
        start += s
    return tuple(out)


def chunk(input: TensorBase, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """`chunks` pieces of ceil(n / chunks) along `dim` (fewer where that runs out first)."""
    x = input
    if chunks <= 0:
        raise op_error(RuntimeError, "chunk", f"chunk expects `chunks` to be greater than 0, got: {chunks}", [x])
    if x.dim() == 0:
        raise op_error(RuntimeError, "chunk", "chunk expects at least a 1-dimensional tensor", [x])
    axis = _axis(x, dim, "chunk")
    n = x.shape[axis]
    if n == 0:
        return split_with_sizes(x, [0] * chunks, axis)
    return split(x, (n + chunks - 1) // chunks, axis)


def unbind(input: TensorBase, dim: int = 0) -> tuple[Tensor, ...]:
    """The slices of `input` along `dim`, that dim removed (views)."""
    x = input
    axis = _axis(x, dim, "unbind")
    shape = tuple(s for d, s in enumerate(x.shape) if d != axis)
    out = []
    for i in range(x.shape[axis]):
        out.append(make_view(_piece(x, axis, i, i + 1, "UnbindBackward0"), "reshape", {"shape": shape},
                             "UnbindBackward0"))
    return tuple(out)


def tensor_split(input: TensorBase, indices_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """numpy.array_split: `sections` near-equal pieces (the first n % sections one longer), or
    the pieces between the listed indices (Python slice bounds: clamped, negatives wrap)."""
    x = input
    if isinstance(indices_or_sections, TensorBase):
        if indices_or_sections.dtype.is_floating_point or indices_or_sections.dtype.is_bool or \
                indices_or_sections.dim() > 1:
            raise op_error(RuntimeError, "tensor_split", "tensor_split expected tensor_indices_or_sections to be a "
                           "zero-dimensional or one-dimensional tensor, but got a tensor with "
                           f"{indices_or_sections.dim()} dims", [x, indices_or_sections])
        indices_or_sections = indices_or_sections.tolist()
    axis = _axis(x, dim, "tensor_split")
    n = x.shape[axis]
    if isinstance(indices_or_sections, (list, tuple)):
        bounds = [builtins.int(i) for i in indices_or_sections]
        out, start = [], 0
        for stop in bounds + [n]:
            a, b, _ = builtins.slice(start, stop).indices(n)
            out.append(_piece(x, axis, a, builtins.max(a, b), "SliceBackward0"))
            start = stop
        return tuple(out)
    sections = builtins.int(indices_or_sections)
    if sections <= 0:
        raise op_error(RuntimeError, "tensor_split", f"number of sections must be larger than 0, got {sections}",
                       [x])
    small, extra = divmod(n, sections)
    out, start = [], 0
    for size in [small + 1] * extra + [small] * (sections - extra):
        out.append(_piece(x, axis, start, start + size, "SliceBackward0"))
        start += size
    return tuple(out)


# ---------------------------------------------------------------- triangles

def _triangle(x: TensorBase, diagonal: int, lower: bool, op: str) -> Tensor:
    if x.dim() < 2:
        raise op_error(RuntimeError, op, f"{op}: input tensor must have at least 2 dimensions", [x])
    rows, cols = x.shape[-2], x.shape[-1]
    dev = _device_of(x)
    row = x._result(iota_node((rows, cols), 0, D.int64, dev))
    col = x._result(iota_node((rows, cols), 1, D.int64, dev))
    offset = ops.sub(col, row)
    keep = ops.le(offset, diagonal) if lower else ops.ge(offset, diagonal)
    zero = const(0, x.dtype, device=dev, like=x)
    return prim("where", [keep, x, zero], name="TrilBackward0" if lower else "TriuBackward0")


def tril(input: TensorBase, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (on and below the `diagonal`-th), zeros elsewhere."""
    return _triangle(input, builtins.int(diagonal), True, "tril")


def triu(input: TensorBase, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (on and above the `diagonal`-th), zeros elsewhere."""
    return _triangle(input, builtins.int(diagonal), False, "triu")


# ---------------------------------------------------------------- repeating

def repeat(x: TensorBase, *sizes: Any) -> Tensor:
    """x tiled `sizes` times along each dim (leading new dims for extra sizes): a copy."""
    if not sizes:
        raise TypeError('repeat() missing 1 required positional arguments: "repeats"')
    reps = tuple(builtins.int(s) for s in (sizes[0] if len(sizes) == 1 and isinstance(sizes[0], (tuple, list))
                                           else sizes))
    if len(reps) < x.dim():
        raise op_error(RuntimeError, "repeat", "Number of dimensions of repeat dims can not be smaller than number "
                       "of dimensions of tensor", [x])
    shape = (1,) * (len(reps) - x.dim()) + tuple(x.shape)
    out_shape = tuple(r * s for r, s in zip(reps, shape))
    if builtins.any(r < 0 for r in reps):
        raise op_error(RuntimeError, "repeat", f"Trying to create tensor with negative dimension "
                       f"{builtins.min(out_shape)}: {list(out_shape)}", [x])
    interleaved = tuple(v for s in shape for v in (1, s))
    grown = tuple(v for r, s in zip(reps, shape) for v in (r, s))
    t = shape_ops.expand(reshape_value(x, interleaved), grown)
    return named(prim("reshape", [t], {"shape": out_shape}), "RepeatBackward0")


def repeat_interleave(input: TensorBase, repeats: Any = None, dim: int | None = None, *,
                      output_size: int | None = None) -> Tensor:
    """Each element repeated `repeats` times in place along `dim` (of the flattened input
    without one). `repeats` may be a tensor with one count per element along the dim; its
    values decide the result's shape, so they are read (as PyTorch synchronizes on them).
    `repeat_interleave(counts)` alone gives arange(len(counts)) repeated by the counts."""
    x = input
    if repeats is None:
        if x.dtype.is_floating_point or x.dtype.is_bool or x.dim() != 1:
            raise op_error(RuntimeError, "repeat_interleave", "repeats must be 0-dim or 1-dim tensor", [x])
        counts = _counts(x, x.shape[0], x)
        index = np.ascontiguousarray(np.repeat(np.arange(x.shape[0], dtype=np.int64), counts))
        out: Any = x._wrap(Storage(leaf_node(index), buffer=index))
        return out.to(x.device) if x.device.type != "cpu" else out
    if dim is None:
        x = reshape_value(x, (x.numel(),))
        dim = 0
    axis = _axis(x, dim, "repeat_interleave")
    n = x.shape[axis]
    if isinstance(repeats, TensorBase) and (repeats.dim() > 0 and repeats.numel() != 1 or repeats.dim() > 1):
        counts = _counts(repeats, n, x)
        index = np.ascontiguousarray(np.repeat(np.arange(n, dtype=np.int64), counts))
        return _gather_index(x, axis, index)
    r = builtins.int(repeats.item() if isinstance(repeats, TensorBase) else repeats)
    if r < 0:
        raise op_error(RuntimeError, "repeat_interleave", "Repeats must be non-negative", [x])
    if output_size is not None and output_size != n * r:
        raise op_error(RuntimeError, "repeat_interleave", "allocated size does not match required size", [x])
    shape = tuple(x.shape)
    grown = shape[:axis + 1] + (r,) + shape[axis + 1:]
    t = shape_ops.expand(reshape_value(x, shape[:axis + 1] + (1,) + shape[axis + 1:]), grown)
    return prim("reshape", [t], {"shape": shape[:axis] + (n * r,) + shape[axis + 1:]}, name="ViewBackward0")


def _counts(repeats: TensorBase, n: int, x: TensorBase) -> np.ndarray:
    """The values of a 1-D repeats tensor, checked against the `n` elements they repeat."""
    if repeats.dim() > 1 or repeats.dtype.is_floating_point or repeats.dtype.is_bool:
        raise op_error(RuntimeError, "repeat_interleave", "repeats must be 0-dim or 1-dim tensor", [x, repeats])
    if repeats.shape[0] != n:
        raise op_error(RuntimeError, "repeat_interleave", "repeats must have the same size as input along dim, but "
                       f"got repeats.size(0) = {repeats.shape[0]} and input.size(0) = {n}", [x, repeats])
    counts = np.asarray(repeats._host_values(), dtype=np.int64).reshape(-1)
    if (counts < 0).any():
        raise op_error(RuntimeError, "repeat_interleave", "repeats can not be negative", [x, repeats])
    return counts


def _gather_index(x: TensorBase, axis: int, index: np.ndarray) -> Tensor:
    """x's elements at `index` (host integers) along `axis`: a gather, differentiable in x."""
    m = index.shape[0]
    idx = x._wrap(Storage(leaf_node(index), buffer=index))
    if x.device.type != "cpu":
        idx = idx.to(x.device)  # type: ignore[attr-defined]
    view = (1,) * axis + (m,) + (1,) * (x.dim() - axis - 1)
    full = tuple(m if d == axis else s for d, s in enumerate(x.shape))
    return shape_ops.gather_along(x, axis, shape_ops.expand(reshape_value(idx, view), full))


# ---------------------------------------------------------------- reordering

def flip(input: TensorBase, *dims: Any) -> Tensor:
    """The elements in reverse order along each of `dims` (a copy)."""
    x = input
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    axes = [normalize_dims(x, d, "flip")[0] for d in dims]
    _check_unique(x, axes, "flip")
    if x.dim() == 0:
        axes = []          # a 0-d tensor's one element, flipped
    out: Any = x
    dev = _device_of(x)
    for axis in axes:
        n = x.shape[axis]
        reversed_index = ops.sub(n - 1, x._result(iota_node(tuple(x.shape), axis, D.int64, dev)))
        out = shape_ops.gather_along(out, axis, reversed_index)
    if out is x:
        out = shape_ops.clone(x)
    return named(out, "FlipBackward0")


def _check_unique(x: TensorBase, axes: Sequence[int], op: str) -> None:
    for i, a in enumerate(axes):
        if a in axes[:i]:
            raise op_error(RuntimeError, op, f"dim {a} appears multiple times in the list of dims", [x])


def fliplr(input: TensorBase) -> Tensor:
    if input.dim() < 2:
        raise op_error(RuntimeError, "fliplr", "Input must be >= 2-d.", [input])
    return flip(input, (1,))


def flipud(input: TensorBase) -> Tensor:
    if input.dim() < 1:
        raise op_error(RuntimeError, "flipud", "Input must be >= 1-d.", [input])
    return flip(input, (0,))


def roll(input: TensorBase, shifts: int | Sequence[int], dims: int | Sequence[int] | None = None) -> Tensor:
    """Elements moved `shifts` places along `dims`, wrapping around (of the flattened tensor,
    shape kept, without dims): a copy."""
    x = input
    shift_list = [shifts] if isinstance(shifts, builtins.int) else list(shifts)
    if dims is None:
        if len(shift_list) != 1:
            raise op_error(RuntimeError, "roll", f"shifts and dimensions must align. shifts: {len(shift_list)}, "
                           "dims:0", [x])
        flat = reshape_value(x, (x.numel(),))
        return named(reshape_value(roll(flat, shift_list[0], 0), tuple(x.shape)), "RollBackward0")
    dim_list = [dims] if isinstance(dims, builtins.int) else list(dims)
    if not shift_list:
        raise op_error(RuntimeError, "roll", "`shifts` required", [x])
    if len(shift_list) != len(dim_list):
        raise op_error(RuntimeError, "roll", f"shifts and dimensions must align. shifts: {len(shift_list)}, "
                       f"dims:{len(dim_list)}", [x])
    out: Any = x
    for shift, d in zip(shift_list, dim_list):
        axis = _axis(x, d, "roll")
        n = x.shape[axis]
        s = builtins.int(shift) % n if n else 0
        if s:
            out = shape_ops.cat([_piece(out, axis, n - s, n, None), _piece(out, axis, 0, n - s, None)], axis)
    if out is x:
        out = shape_ops.clone(x)
    return named(out, "RollBackward0")


# ---------------------------------------------------------------- new_* factories

def _new_options(x: TensorBase, dtype: Any, device: Any) -> tuple[D.DType, Any]:
    dt = D.as_dtype(dtype) if dtype is not None else x.dtype
    dev = as_device(device) if device is not None else x.device
    return dt, None if dev.type == "cpu" else dev


def new_full(x: TensorBase, size: Any, fill_value: Any, *, dtype: Any = None, device: Any = None,
             requires_grad: bool = False, layout: Any = None, pin_memory: bool = False) -> Tensor:
    """A tensor of `size` filled with `fill_value`, of x's dtype and on x's device unless told."""
    shape = _sizes(size if isinstance(size, (tuple, list)) else (size,))
    dt, dev = _new_options(x, dtype, device)
    t = const(fill_value, dt, shape, dev, like=x)
    if requires_grad:
        t.requires_grad_(True)
    return t


def new_zeros(x: TensorBase, *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False,
              layout: Any = None, pin_memory: bool = False) -> Tensor:
    return new_full(x, _sizes(size), 0, dtype=dtype, device=device, requires_grad=requires_grad)


def new_ones(x: TensorBase, *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False,
             layout: Any = None, pin_memory: bool = False) -> Tensor:
    return new_full(x, _sizes(size), 1, dtype=dtype, device=device, requires_grad=requires_grad)


def new_empty(x: TensorBase, *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False,
              layout: Any = None, pin_memory: bool = False) -> Tensor:
    """Uninitialised in PyTorch; zeros here."""
    return new_full(x, _sizes(size), 0, dtype=dtype, device=device, requires_grad=requires_grad)


def new_tensor(x: TensorBase, data: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False,
               layout: Any = None, pin_memory: bool = False) -> Tensor:
    """A new leaf holding a copy of `data`, of x's dtype and on x's device unless told."""
    dt, dev = _new_options(x, dtype, device)
    array = to_array(data, dt)
    t: Any = x._wrap(Storage(leaf_node(array), buffer=array))
    if dev is not None:
        t = t.to(dev)
    if requires_grad:
        t.requires_grad_(True)
    return t


tril_ = _inplace(tril, "tril_")
triu_ = _inplace(triu, "triu_")


# ---------------------------------------------------------------- Tensor's methods

class RearrangeMethods(TensorBase):
    """Tensor methods that cut, repeat, reorder or mask elements, and the new_* factories."""

    __slots__ = ()

    def split(self, split_size: int | Sequence[int], dim: int = 0) -> tuple[Tensor, ...]:
        return split(self, split_size, dim)

    def split_with_sizes(self, split_sizes: Sequence[int], dim: int = 0) -> tuple[Tensor, ...]:
        return split_with_sizes(self, split_sizes, dim)

    def chunk(self, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
        return chunk(self, chunks, dim)

    def unbind(self, dim: int = 0) -> tuple[Tensor, ...]:
        return unbind(self, dim)

    def tensor_split(self, indices_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
        return tensor_split(self, indices_or_sections, dim)

    def tril(self, diagonal: int = 0) -> Tensor:
        return tril(self, diagonal)

    def triu(self, diagonal: int = 0) -> Tensor:
        return triu(self, diagonal)

    def tril_(self, diagonal: int = 0) -> Any:
        return tril_(self, diagonal)

    def triu_(self, diagonal: int = 0) -> Any:
        return triu_(self, diagonal)

    def repeat(self, *sizes: Any) -> Tensor:
        return repeat(self, *sizes)

    def repeat_interleave(self, repeats: Any = None, dim: int | None = None, *,
                          output_size: int | None = None) -> Tensor:
        return repeat_interleave(self, repeats, dim, output_size=output_size)

    def flip(self, *dims: Any) -> Tensor:
        return flip(self, *dims)

    def fliplr(self) -> Tensor:
        return fliplr(self)

    def flipud(self) -> Tensor:
        return flipud(self)

    def roll(self, shifts: int | Sequence[int], dims: int | Sequence[int] | None = None) -> Tensor:
        return roll(self, shifts, dims)

    def new_full(self, size: Any, fill_value: Any, **kwargs: Any) -> Tensor:
        return new_full(self, size, fill_value, **kwargs)

    def new_zeros(self, *size: Any, **kwargs: Any) -> Tensor:
        return new_zeros(self, *size, **kwargs)

    def new_ones(self, *size: Any, **kwargs: Any) -> Tensor:
        return new_ones(self, *size, **kwargs)

    def new_empty(self, *size: Any, **kwargs: Any) -> Tensor:
        return new_empty(self, *size, **kwargs)

    def new_tensor(self, data: Any, **kwargs: Any) -> Tensor:
        return new_tensor(self, data, **kwargs)
