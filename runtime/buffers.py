"""Buffers: 64-byte-aligned numpy arrays, the memory every kernel reads and writes."""
from __future__ import annotations

import numpy as np

ALIGN = 64


def aligned_empty(shape, dtype, align: int = ALIGN) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an `align`-byte boundary."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(n + align, dtype=np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start:start + n].view(dtype).reshape(shape)


def is_aligned(a: np.ndarray, align: int = ALIGN) -> bool:
    return a.ctypes.data % align == 0
