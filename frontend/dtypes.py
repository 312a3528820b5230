"""dtypes as users see them: `fusegrad.float32`, PyTorch's aliases and promotion rules.

The dtype objects are the IR's own (compiler/ir/dtypes.py); this module adds the names
PyTorch code uses (`float`, `long`, `double`, ...), the default dtype, and `result_type`:
PyTorch's promotion of an op's operands, where Python scalars and zero-dim tensors only
raise the result's category (bool < integer < float), never its width within a category.
"""
from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from .compiler.ir.dtypes import (
    ALL,
    DType,
    bfloat16,
    bool_,
    float16,
    float32,
    float64,
    from_numpy,
    from_storage,
    int32,
    int64,
    of_buffer,
    promote,
    round_to,
    to_storage,
    uint8,
)
from .traced_float import TracedFloat

float = float32    # noqa: A001 - PyTorch's aliases shadow the builtins on purpose
double = float64
half = float16
long = int64
int = int32        # noqa: A001
bool = bool_       # noqa: A001
_DEFAULT = [float32]

_NAMES = {d.name: d for d in ALL}
_NAMES.update({"float": float32, "double": float64, "half": float16, "long": int64, "int": int32})


def get_default_dtype() -> DType:
    return _DEFAULT[0]


def set_default_dtype(dt: DType) -> None:
    if dt not in (float32, float64, float16, bfloat16):
        raise TypeError("only floating-point types are supported as the default type")
    _DEFAULT[0] = dt


def as_dtype(value: Any) -> DType:
    """A DType from a DType, a numpy dtype, a Python type or a name; TypeError otherwise."""
    if isinstance(value, DType):
        return value
    if value is builtins.float:
        return get_default_dtype()
    if value is builtins.int:
        return int64
    if value is builtins.bool:
        return bool_
    if isinstance(value, str):
        name = value.split(".")[-1]
        if name in _NAMES:
            return _NAMES[name]
    else:
        try:
            return from_numpy(np.dtype(value))
        except (TypeError, ValueError):
            pass
    raise TypeError(f"unknown dtype {value!r}; fusegrad supports "
                    f"{', '.join('fusegrad.' + d.name for d in ALL)}")


def scalar_dtype(value: object) -> DType:
    """The dtype a Python scalar takes in an op (PyTorch's 'wrapped number')."""
    if isinstance(value, (builtins.bool, np.bool_)):
        return bool_
    if isinstance(value, (builtins.int, np.integer)):
        return int64
    if isinstance(value, (builtins.float, np.floating, TracedFloat)):
        return get_default_dtype()
    raise TypeError(f"unsupported operand {value!r} of type {type(value).__name__}")


def _combine(higher: DType | None, lower: DType | None) -> DType | None:
    if higher is None:
        return lower
    if lower is None or higher.is_floating_point:
        return higher
    if higher is bool_ or lower.is_floating_point:
        return promote(higher, lower)
    return higher


def eps(dt: DType) -> builtins.float:
    """The machine epsilon of a float dtype (torch.finfo(dt).eps)."""
    return 2.0 ** -7 if dt is bfloat16 else builtins.float(np.finfo(dt.np).eps)


def promote_types(type1: DType, type2: DType) -> DType:
    """PyTorch's promote_types: the smallest dtype both convert to (float16 with bfloat16: float32)."""
    return promote(as_dtype(type1), as_dtype(type2))


def result_type(*operands: object) -> DType:
    """PyTorch's result type for tensors (anything with .dtype and .dim()) and Python scalars."""
    if len(operands) == 2:
        same = _same_type(*operands)
        if same is not None:
            return same
    dim = zero = wrapped = None
    for x in operands:
        if hasattr(x, "dtype") and hasattr(x, "dim"):
            if x.dim() > 0:
                dim = x.dtype if dim is None else promote(dim, x.dtype)
            else:
                zero = x.dtype if zero is None else promote(zero, x.dtype)
        else:
            dt = scalar_dtype(x)
            wrapped = dt if wrapped is None else promote(wrapped, dt)
    result = _combine(dim, _combine(zero, wrapped))
    if result is None:
        raise TypeError("result_type() needs at least one operand")
    return result


def _same_type(a: object, b: object) -> DType | None:
    """The result type of the commonest pairs, without the general walk: two tensors of one
    dtype, or a tensor and a Python number its dtype already holds (a float with a float
    tensor, an int with a non-bool tensor, a bool with any); None for the rest."""
    ta, tb = getattr(a, "dtype", None), getattr(b, "dtype", None)
    if ta is not None and tb is not None:
        return ta if ta is tb and hasattr(a, "dim") and hasattr(b, "dim") else None
    dt, number = (ta, b) if ta is not None else (tb, a)
    if dt is None or not isinstance(dt, DType) or not hasattr(a if ta is not None else b, "dim"):
        return None
    kind = type(number)
    if kind is builtins.float:
        return dt if dt.is_floating_point else None
    if kind is builtins.int:
        return dt if dt is not bool_ else None
    return dt if kind is builtins.bool else None


__all__ = ["DType", "float32", "float64", "float16", "bfloat16", "int32", "int64", "uint8", "bool_", "float", "double",
           "half", "long", "int", "bool", "get_default_dtype", "set_default_dtype", "as_dtype", "scalar_dtype",
           "result_type", "promote_types", "eps", "to_storage", "from_storage", "round_to", "of_buffer"]
