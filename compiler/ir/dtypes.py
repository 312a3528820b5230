"""Element types of the IR: the eight dtypes every pass and backend understands.

A DType is an immutable singleton: `float32`, `float64`, `float16`, `bfloat16`, `int32`,
`int64`, `uint8`, `bool_`. The frontend re-exports them as `fusegrad.float32` etc., so their
repr is the user-facing one; the IR printer uses the short names (`f32`, `f16`, `bf16`, `i64`,
`b8`).

`float16` and `bfloat16` are storage types: kernels load them, compute in float32 and round
to the storage type when they store (or cast). `np` is the numpy dtype of a buffer's elements
(numpy has no bfloat16: its buffers hold the raw 16-bit patterns as uint16), `host` the numpy
dtype its values are read in on the host (float32 for bfloat16); `to_storage` and
`from_storage` convert between values and buffer elements.
"""
from __future__ import annotations

import numpy as np


class DType:
    __slots__ = ("name", "short", "np", "host", "itemsize", "kind")

    def __init__(self, name: str, short: str, np_dtype, kind: str, host=None):
        self.name = name          # 'float32'
        self.short = short        # 'f32' (IR text)
        self.np = np.dtype(np_dtype)                                  # a buffer's elements
        self.host = np.dtype(host) if host is not None else self.np   # values on the host
        self.itemsize = self.np.itemsize
        self.kind = kind          # 'f' float, 'i' signed int, 'u' unsigned int, 'b' bool

    is_floating_point = property(lambda self: self.kind == "f")
    is_int = property(lambda self: self.kind in "iu")
    is_bool = property(lambda self: self.kind == "b")
    is_signed = property(lambda self: self.kind in "fi")
    #: a 16-bit float stored in memory and computed on in float32 (float16, bfloat16)
    is_storage_float = property(lambda self: self.kind == "f" and self.itemsize == 2)

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
float16 = DType("float16", "f16", np.float16, "f")
bfloat16 = DType("bfloat16", "bf16", np.uint16, "f", host=np.float32)   # buffers: the raw bits

ALL = (float32, float64, float16, bfloat16, int32, int64, uint8, bool_)
_BY_SHORT = {d.short: d for d in ALL}
_BY_NAME = {d.name: d for d in ALL}
_BY_NP = {d.np: d for d in ALL if d.host == d.np}      # a user's uint16 array is not bfloat16 ...
_BY_STORAGE = {d.np: d for d in ALL}                     # ... a buffer of uint16 elements is


def from_short(short: str) -> DType:
    return _BY_SHORT[short]


def from_name(name: str) -> DType:
    return _BY_NAME[name]


def of_buffer(np_dtype) -> DType:
    """The DType of a buffer whose elements have numpy dtype `np_dtype` (uint16: bfloat16's bits)."""
    dt = _BY_STORAGE.get(np.dtype(np_dtype))
    return dt if dt is not None else from_numpy(np_dtype)     # TypeError for the others


def from_numpy(np_dtype) -> DType:
    """The DType of a numpy dtype; TypeError for dtypes the IR has no kernel for."""
    dt = np.dtype(np_dtype)
    try:
        return _BY_NP[dt]
    except KeyError:
        raise TypeError(f"can't convert np.ndarray of type numpy.{dt.name}. The only supported types "
                        "are: float64, float32, float16, int64, int32, uint8, and bool.") from None


def bfloat16_bits(values) -> np.ndarray:
    """float32 values rounded to bfloat16 (to nearest, ties to even), as their uint16 bit
    patterns: the upper half of the float32 pattern, plus one where the lower half rounds
    up. Every NaN becomes the quiet NaN 0x7FC0 (as PyTorch's c10::BFloat16); infinities and
    signed zeros stay themselves."""
    f = np.asarray(values, dtype=np.float32)
    bits = np.ascontiguousarray(f).view(np.uint32).astype(np.uint64).reshape(f.shape)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(f), np.uint16(0x7FC0), rounded)


def bfloat16_values(bits) -> np.ndarray:
    """bfloat16 bit patterns (uint16) as the float32 values they stand for (exact)."""
    b = np.asarray(bits, dtype=np.uint16)
    return np.ascontiguousarray(b.astype(np.uint32) << 16).view(np.float32).reshape(b.shape)


def to_storage(values, dt: DType) -> np.ndarray:
    """`values` (numbers, arrays) as buffer elements of `dt`: numpy's cast; 16-bit floats are
    rounded through float32 as PyTorch rounds them (bfloat16: their bit patterns)."""
    if dt is bfloat16:
        return bfloat16_bits(np.asarray(values, dtype=np.float32))
    if dt is float16:            # through float32 too, as PyTorch's c10::Half(float)
        with np.errstate(over="ignore"):
            return np.asarray(values, dtype=np.float32).astype(np.float16)
    return np.asarray(values).astype(dt.np)


def from_storage(array, dt: DType) -> np.ndarray:
    """Buffer elements of `dt` as values on the host (bfloat16: float32 values); others as they are."""
    if dt is bfloat16:
        return bfloat16_values(array)
    return np.asarray(array)


def round_to(values, dt: DType) -> np.ndarray:
    """`values` rounded to `dt` and read back on the host (the value a kernel stores)."""
    return from_storage(to_storage(values, dt), dt)


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
    if a.itemsize == b.itemsize and a is not b:
        return float32          # float16 with bfloat16: neither holds the other
    return a if a.itemsize >= b.itemsize else b
