"""Python data and numpy arrays as tensor buffers: what `fusegrad.tensor(...)`, the legacy
constructor `Tensor([1, 2])` and list indices read.

Below Tensor (issue 12): tensor.py's legacy constructor and indexing.py use it, and
creation.py builds its factories on it. It reads a tensor's values through TensorBase.
"""
from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import dtypes as D
from .runtime import aligned_empty
from .tensor_base import TensorBase


def sizes(size: Sequence[Any]) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if len(size) == 1 and hasattr(size[0], "__iter__") and not isinstance(size[0], str):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, (builtins.int, np.integer)) or isinstance(s, builtins.bool):
            raise TypeError(f"expected a sequence of integers for size, but got {type(s).__name__}")
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: {list(size)}")
    return tuple(builtins.int(s) for s in size)


def aligned_copy(a: np.ndarray, dtype: np.dtype | D.DType | None = None) -> np.ndarray:
    """An aligned copy of `a`'s values, in numpy `dtype` or as buffer elements of a DType
    (16-bit floats rounded as PyTorch rounds them; bfloat16 as its bit patterns)."""
    np_dtype = dtype if not isinstance(dtype, D.DType) else dtype.np
    if isinstance(dtype, D.DType) and dtype.is_storage_float:
        a = D.to_storage(a, dtype)
    out = aligned_empty(a.shape, np_dtype or a.dtype)
    np.copyto(out, a, casting="unsafe")
    return out


def _infer_dtype(data: object) -> D.DType:
    """PyTorch's dtype for nested Python data: bools < ints < floats (the default dtype)."""
    kinds = set()
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, TensorBase):
            kinds.add(x.dtype.kind if x.dtype.is_floating_point else "i" if x.dtype.is_int else "b")
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
        elif isinstance(x, (builtins.bool, np.bool_)):
            kinds.add("b")
        elif isinstance(x, (builtins.int, np.integer)):
            kinds.add("i")
        elif isinstance(x, (builtins.float, np.floating)):
            kinds.add("f")
        else:
            raise _not_data(x)
    if "f" in kinds:
        return D.get_default_dtype()
    if "i" in kinds:
        return D.int64
    if "b" in kinds:
        return D.bool_
    return D.get_default_dtype()


def to_array(data: Any, dtype: D.DType | None) -> np.ndarray:
    if isinstance(data, TensorBase):
        a = data._host_values()
        return aligned_copy(a, dtype or data.dtype)
    if isinstance(data, (np.ndarray, np.generic)):   # numpy arrays and scalars keep their dtype
        data = np.asarray(data)
        check_native_byte_order(data)
        dt = dtype or D.from_numpy(data.dtype)
        return aligned_copy(data, dt)
    dt = dtype or _infer_dtype(data)
    data = _plain(data)
    _check_nesting(data, _nested_shape(data))
    try:
        raw = np.array(data, dtype=np.float64 if dt.is_floating_point else object)
        return aligned_copy(raw.astype(dt.host) if raw.dtype == object else raw, dt)
    except (ValueError, OverflowError) as e:
        raise ValueError(str(e)) from None


def check_native_byte_order(a: np.ndarray) -> None:
    """PyTorch takes numpy arrays in the machine's byte order only ('>f4' on x86: ValueError)."""
    if not a.dtype.isnative:
        raise ValueError("given numpy array has byte order different from the native byte order. "
                         "Conversion between byte orders is currently not supported.")


def _not_data(x: object) -> Exception:
    """PyTorch's error for an element that is not a number: TypeError for strings, else RuntimeError."""
    if isinstance(x, (str, bytes)):
        return TypeError(f"new(): invalid data type '{type(x).__name__}'")
    return RuntimeError(f"Could not infer dtype of {type(x).__name__}")


def _plain(data: Any) -> Any:
    if isinstance(data, TensorBase):
        return data._host_values().tolist()
    if isinstance(data, (list, tuple)):
        return [_plain(x) for x in data]
    return data


def _nested_shape(data: Any) -> tuple[int, ...]:
    """The shape of nested sequences, read (as PyTorch reads it) from the first element of each level."""
    shape = []
    while isinstance(data, (list, tuple)):
        shape.append(len(data))
        if not data:
            break
        data = data[0]
    return tuple(shape)


def _check_nesting(data: Any, shape: tuple[int, ...], dim: int = 0) -> None:
    """Every sequence at depth `dim` has length shape[dim] and numbers sit only at the last depth."""
    is_seq = isinstance(data, (list, tuple))
    if dim == len(shape):
        if is_seq:
            raise TypeError(f"'{type(data).__name__}' object cannot be interpreted as an integer")
        return
    if not is_seq:
        raise TypeError("not a sequence")
    if len(data) != shape[dim]:
        raise ValueError(f"expected sequence of length {shape[dim]} at dim {dim} (got {len(data)})")
    for x in data:
        _check_nesting(x, shape, dim + 1)


def legacy_constructor_array(args: tuple, dtype: D.DType) -> np.ndarray:
    """Tensor(2, 3) / Tensor([1, 2]) / Tensor(ndarray) / Tensor(): PyTorch's legacy forms."""
    if not args:
        return aligned_empty((0,), dtype.np)        # (bfloat16: the zeros' bits are zeros)
    if len(args) == 1 and not isinstance(args[0], (builtins.int, np.integer)):
        return to_array(args[0], dtype)
    out = aligned_empty(sizes(args), dtype.np)
    out.fill(0)
    return out
