"""Buffers: 64-byte-aligned numpy arrays, the memory every kernel reads and writes, and their
addresses for the buffer table (cached, since numpy's `.ctypes` costs microseconds).

Large buffers come from a small pool: a fresh multi-megabyte array costs a page fault per
page on first write (about as long as the kernel that fills it), so memory whose arrays have
all died is handed out again. An allocation is free when nothing but the pool refers to it.
"""
from __future__ import annotations

import sys
import weakref
from collections.abc import Sequence

import numpy as np
from numpy.typing import DTypeLike

ALIGN = 64
SLAB_BYTES = 1 << 16          # small outputs are carved from slabs of this size
SMALL_BYTES = 4096            # ... when they are at most this big (a live one keeps its slab alive)

POOL_MIN_BYTES = 1 << 20      # buffers at least this big are pooled ...
POOL_PER_SIZE = 4             # ... keeping at most this many allocations of one size
POOL_MAX_BYTES = 1 << 29      # ... and at most this much memory in all

_ADDRESSES: dict = {}         # id(array) -> (weakref to it, address)
_POOL: dict = {}              # allocation size -> [uint8 arrays]
_POOLED_BYTES = [0]


# numpy has no bfloat16: its buffers hold the 16-bit patterns (the program's dtype names are numpy's otherwise)
_STORAGE = {"bfloat16": np.dtype(np.uint16)}


def storage_dtype(name: str) -> np.dtype:
    """The numpy dtype of the elements of a program buffer of dtype `name` ('float32', 'bfloat16', ...)."""
    return _STORAGE.get(name) or np.dtype(name)


def aligned_empty(shape: Sequence[int], dtype: DTypeLike, align: int = ALIGN) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an `align`-byte boundary."""
    dtype = np.dtype(dtype)
    n = dtype.itemsize
    for d in shape:
        n *= d
    raw = _pooled(n + align) if n >= POOL_MIN_BYTES else np.empty(n + align, dtype=np.uint8)
    base = address(raw)
    start = (-base) % align
    out = raw[start:start + n].view(dtype).reshape(shape)
    _remember(out, base + start)
    return out


def _pooled(size: int) -> np.ndarray:
    """`size` bytes: a pooled allocation no array uses any more, else a new one (pooled while
    the pool has room)."""
    entries = _POOL.setdefault(size, [])
    for raw in entries:
        if sys.getrefcount(raw) == 3:       # the pool's list, this loop, getrefcount's argument
            return raw
    raw = np.empty(size, dtype=np.uint8)
    if len(entries) < POOL_PER_SIZE and _POOLED_BYTES[0] + size <= POOL_MAX_BYTES:
        entries.append(raw)
        _POOLED_BYTES[0] += size
    return raw


def address(a: np.ndarray) -> int:
    """The address of `a`'s first element."""
    entry = _ADDRESSES.get(id(a))
    if entry is not None and entry[0]() is a:
        return entry[1]
    ptr = a.__array_interface__["data"][0]
    _remember(a, ptr)
    return ptr


def _remember(a: np.ndarray, ptr: int) -> None:
    key = id(a)

    def forget(_: object) -> None:
        _ADDRESSES.pop(key, None)

    _ADDRESSES[key] = (weakref.ref(a, forget), ptr)


class _Slab:
    def __init__(self) -> None:
        self.memory = np.empty(SLAB_BYTES, dtype=np.uint8)
        self.base = address(self.memory)
        self.used = (-self.base) % ALIGN


_SLAB: list[_Slab | None] = [None]


def new_buffer(shape: Sequence[int], dtype: np.dtype, nbytes: int) -> tuple[np.ndarray, int]:
    """A fresh output buffer and its address: small ones are carved from shared slabs (no
    allocation call, address by arithmetic), large ones are aligned arrays of their own."""
    if nbytes > SMALL_BYTES:
        a = aligned_empty(shape, dtype)
        return a, address(a)
    slab = _SLAB[0]
    if slab is None or slab.used + nbytes > SLAB_BYTES:
        slab = _SLAB[0] = _Slab()
    start = slab.used
    slab.used += -(-max(nbytes, 1) // ALIGN) * ALIGN
    return np.ndarray(shape, dtype, buffer=slab.memory, offset=start), slab.base + start


def is_aligned(a: np.ndarray, align: int = ALIGN) -> bool:
    return address(a) % align == 0
