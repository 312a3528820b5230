"""Element types of the IR: the six dtypes every pass and backend understands.

A DType is an immutable singleton: `float32`, `float64`, `int32`, `int64`, `uint8`, `bool_`.
The frontend re-exports them as `fusegrad.float32` etc., so their repr is the user-facing one;
the IR printer uses the short names (`f32`, `i64`, `b8`).
"""
from __future__ import annotations

import numpy as np


class DType:
    __slots__ = ("name", "short", "np", "itemsize", "kind")

    def __init__(self, name: str, short: str, np_dtype, kind: str):
        self.name = name          # 'float32'
        self.short = short        # 'f32' (IR text)
        self.np = np.dtype(np_dtype)
        self.itemsize = self.np.itemsize
        self.kind = kind          # 'f' float, 'i' signed int, 'u' unsigned int, 'b' bool

    is_floating_point = property(lambda self: self.kind == "f")
    is_int = property(lambda self: self.kind in "iu")
    is_bool = property(lambda self: self.kind == "b")
    is_signed = property(lambda self: self.kind in "fi")

    def __repr__(self):
        return f"fusegrad.{self.name}"

    def __reduce__(self):
        return (from_name, (self.name,))


float32 = DType("float32", "f32", np.float32, "f")
float64 = DType("float64", "f64", np.float64, "f")
int32 = DType("int32", "i32", np.int32, "i")
int64 = DType("int64", "i64", np.int64, "i")
uint8 = DType("uint8", "u8", np.uint8, "u")
bool_ = DType("bool", "b8", np.bool_, "b")

ALL = (float32, float64, int32, int64, uint8, bool_)
_BY_SHORT = {d.short: d for d in ALL}
_BY_NAME = {d.name: d for d in ALL}
_BY_NP = {d.np: d for d in ALL}


def from_short(short: str) -> DType:
    return _BY_SHORT[short]


def from_name(name: str) -> DType:
    return _BY_NAME[name]


def from_numpy(np_dtype) -> DType:
    """The DType of a numpy dtype; TypeError for dtypes the IR has no kernel for."""
    dt = np.dtype(np_dtype)
    try:
        return _BY_NP[dt]
    except KeyError:
        raise TypeError(f"can't convert np.ndarray of type numpy.{dt.name}. The only supported types "
                        "are: float64, float32, int64, int32, uint8, and bool.") from None


# Category order for promotion: bool < integers < floats.
_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}


def category(dt: DType) -> int:
    return _CATEGORY[dt.kind]


def promote(a: DType, b: DType) -> DType:
    """PyTorch's promotion of two tensor dtypes of the same dimension class."""
    if a is b:
        return a
    ca, cb = category(a), category(b)
    if ca != cb:
        return a if ca > cb else b
    if ca == 1:  # integers: uint8 with a signed int widens to that int (no int16 here)
        if a is uint8:
            return b
        if b is uint8:
            return a
    return a if a.itemsize >= b.itemsize else b
