"""MPI operations on numpy arrays: reduce ops, MPI buffers and datatypes, a checked all-reduce.

The layer below the tensor collectives (collectives.py), and what a compiled program's host
call uses to all-reduce a buffer (`allreduce_array`): it knows MPI and numpy, not tensors.

Every collective is checked first (process_group.py's `check_signature`).
"""
from __future__ import annotations

import enum
import functools
import time
from typing import Any

import numpy as np

from .process_group import check_signature, check_usable, group_of, mpi, wait

__all__ = ["RedOpType", "ReduceOp", "as_op", "mpi_op", "mpi_buffer", "check_signature", "allreduce_array"]



class RedOpType(enum.Enum):
    SUM = 0
    AVG = 1
    PRODUCT = 2
    MIN = 3
    MAX = 4
    BAND = 5
    BOR = 6
    BXOR = 7


class ReduceOp:
    """The reductions of all_reduce and reduce_scatter, as `dist.ReduceOp.SUM` (PyTorch's names).
    AVG is SUM divided by the group's size (floating-point tensors only)."""
    SUM = RedOpType.SUM
    AVG = RedOpType.AVG
    PRODUCT = RedOpType.PRODUCT
    MIN = RedOpType.MIN
    MAX = RedOpType.MAX
    BAND = RedOpType.BAND
    BOR = RedOpType.BOR
    BXOR = RedOpType.BXOR
    RedOpType = RedOpType


def as_op(op: Any) -> RedOpType:
    """`op` as a RedOpType: a ReduceOp member or its name ("sum", "AVG", ...)."""
    if op.__class__ is RedOpType:
        return op
    if isinstance(op, str) and op.upper() in RedOpType.__members__:
        return RedOpType[op.upper()]
    raise ValueError(f"unknown reduce op {op!r}: use fusegrad.distributed.ReduceOp.SUM, AVG, PRODUCT, MIN, MAX, "
                     f"BAND, BOR or BXOR")


_MPI_OPS = {RedOpType.SUM: "SUM", RedOpType.AVG: "SUM", RedOpType.PRODUCT: "PROD", RedOpType.MIN: "MIN",
            RedOpType.MAX: "MAX", RedOpType.BAND: "BAND", RedOpType.BOR: "BOR", RedOpType.BXOR: "BXOR"}
# a bool tensor reduces as 0/1 bytes: a sum or max is "any", a product or min is "all"
_BOOL_OPS = {RedOpType.SUM: "MAX", RedOpType.MAX: "MAX", RedOpType.BOR: "MAX", RedOpType.PRODUCT: "MIN",
             RedOpType.MIN: "MIN", RedOpType.BAND: "MIN", RedOpType.BXOR: "BXOR"}
_MPI_TYPES = {"float32": "FLOAT", "float64": "DOUBLE", "int8": "INT8_T", "int16": "INT16_T", "int32": "INT32_T",
              "int64": "INT64_T", "uint8": "UINT8_T", "uint16": "UINT16_T", "uint32": "UINT32_T",
              "uint64": "UINT64_T"}


_OP_CACHE: dict[tuple, Any] = {}
_TYPE_CACHE: dict[int, Any] = {}       # numpy dtype number -> MPI datatype (numpy's dtype.name is slow Python)


def mpi_op(op: RedOpType, dtype: np.dtype, is_bool: bool = False) -> Any:
    """The MPI.Op reducing arrays of numpy `dtype` (bool tensors travel as uint8 0/1) with `op`."""
    key = (op, dtype.num, is_bool)
    found = _OP_CACHE.get(key)
    if found is not None:
        return found
    if op in (RedOpType.BAND, RedOpType.BOR, RedOpType.BXOR) and dtype.kind == "f":
        raise TypeError(f"ReduceOp.{op.name} needs an integer or bool tensor, not {dtype}")
    if op is RedOpType.AVG and (dtype.kind != "f" or is_bool):
        raise TypeError(f"ReduceOp.AVG needs a floating-point tensor, not {'bool' if is_bool else dtype}")
    found = _OP_CACHE[key] = getattr(mpi(), (_BOOL_OPS if is_bool else _MPI_OPS)[op])
    return found


def mpi_buffer(array: np.ndarray) -> list:
    """[array, MPI datatype] for a C-contiguous array of a numeric dtype MPI knows by name."""
    found = _TYPE_CACHE.get(array.dtype.num)
    if found is None:
        name = _MPI_TYPES.get(array.dtype.name)
        if name is None:
            raise TypeError(f"fusegrad.distributed: no MPI datatype for {array.dtype}")
        found = _TYPE_CACHE[array.dtype.num] = getattr(mpi(), name)
    return [array, found]


@functools.lru_cache(maxsize=1024)
def describe(what: str, shape: tuple, dtype: Any, **extra: Any) -> str:
    """`all_reduce(shape=[4, 3], dtype=float32, op=SUM)`: a call as the signature check and its errors show it."""
    name = getattr(dtype, "name", str(dtype))
    parts = [f"shape={list(shape)}", f"dtype={name}"] + [f"{k}={v}" for k, v in extra.items()]
    return f"{what}({', '.join(parts)})"


def allreduce_array(array: np.ndarray, op: Any = RedOpType.SUM, group_id: int = 0, what: str = "all_reduce",
                    check: bool = True) -> None:
    """All-reduce the C-contiguous numpy `array` in place across the group with id `group_id`
    (numeric dtypes MPI names; AVG divides the sum by the group's size), checked and bounded by
    the group's timeout like every collective. For a compiled program's host call."""
    group = group_of(group_id)
    started = time.monotonic()
    op = as_op(op)
    if not array.flags.c_contiguous or not array.flags.writeable:
        raise ValueError("allreduce_array needs a writable C-contiguous array")
    if check:
        check_signature(group, what, describe(what, array.shape, array.dtype, op=op.name), started)
    else:
        check_usable(group)
    if group.size() > 1 and array.size:
        request = group.comm.Iallreduce(mpi().IN_PLACE, mpi_buffer(array), mpi_op(op, array.dtype))
        wait(request, what, group, started)
    if op is RedOpType.AVG:
        np.divide(array, group.size(), out=array)
