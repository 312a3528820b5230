"""Host calls: Python functions a compiled program calls between its kernels (collectives).

The compiler lowers a collective (`all_reduce`) to a kernel that calls through a
function-pointer global of the program (codegen/cpu.py: `fg_host_all_reduce`):

    i64 fg_host_all_reduce(ptr in, ptr out, i64 count, i32 dtype_code, i32 op_code, i32 group)

runtime/cpu.py fills that global with the address of this module's C trampoline, made once
and kept for the life of the process. The trampoline runs on the thread that made the
program's native call (ctypes releases the GIL for that call; the trampoline takes it back)
and calls the Python function registered here with zero-copy numpy views of the two buffers:

    fn(src: np.ndarray, dst: np.ndarray, count: int, dtype: str, op: str, group: int) -> int | None

`src` and `dst` hold `count` elements of the program's storage type for `dtype` ('float32',
'bfloat16' as its uint16 bits, ...; `dst is src` when the program reduces in place); `op`
is 'sum', 'avg', 'max' or 'min'; `group` the process group id the program was traced with.
The views are valid during the call only. `fn` returns 0 or None when `dst` holds the
result; anything else, or an exception, is a failure. Who registers `fn` is the frontend
(fusegrad.distributed: the MPI Allreduce of its process group); the runtime never imports the
frontend or an MPI library. With nothing registered every all_reduce fails.

A failure is recorded here, per thread, and the trampoline returns non-zero: the kernel
writes its check (ERR_HOST) into the program's error word, the entry point stops, and
runtime/cpu.py's `raise_check` calls `raise_failure`, which raises `HostCallError` saying
why, at the user's line (an exception that is not an Exception, KeyboardInterrupt say, is
raised as it is).
"""
from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Callable, NoReturn, Optional

import numpy as np

from .buffers import storage_dtype

#: the host-call ABI, as codegen/cpu.py and ir/ops.py write it (tests compare the two sides)
HOST_DTYPES = ("float32", "float64", "float16", "bfloat16", "int32", "int64", "uint8", "bool")  # dtype_code
ALL_REDUCE_OPS = ("sum", "avg", "max", "min")                                                  # op_code
ERR_HOST = 4                    # codegen/emit.py's ERR_HOST: the check a failed host call records

NOT_INITIALIZED = "all_reduce needs fusegrad.distributed.init_process_group()"

AllReduceFn = Callable[[np.ndarray, np.ndarray, int, str, str, int], Optional[int]]
ALL_REDUCE_CALL = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                   ctypes.c_int32, ctypes.c_int32, ctypes.c_int32)


class HostCallError(RuntimeError):
    """A host call of a compiled program (a collective) failed, or there was nothing to call."""


@dataclass(frozen=True)
class Failure:
    reason: str                          # why, in words
    exception: BaseException | None      # what the host function raised, if it raised
    whole: bool = False                  # the reason is the whole message (no check text before it)


_REGISTERED: dict[str, AllReduceFn | None] = {"all_reduce": None}
_LOCAL = threading.local()               # .failure: the last failure on this thread, until taken
_STATE: dict = {}                        # 'all_reduce': the trampoline (kept alive: programs hold its address)


def register_all_reduce(fn: AllReduceFn | None) -> AllReduceFn | None:
    """Make `fn` the function every program's all_reduce calls (None: none, so they fail
    with NOT_INITIALIZED). Returns the function registered before."""
    if fn is not None and not callable(fn):
        raise TypeError(f"register_all_reduce: expected a callable or None, got {type(fn).__name__}")
    previous = _REGISTERED["all_reduce"]
    _REGISTERED["all_reduce"] = fn
    return previous


def registered_all_reduce() -> AllReduceFn | None:
    return _REGISTERED["all_reduce"]


def all_reduce_address() -> int:
    """The address of the C trampoline that programs' `fg_host_all_reduce` global points at."""
    call = _STATE.get("all_reduce")
    if call is None:
        call = _STATE["all_reduce"] = ALL_REDUCE_CALL(_all_reduce)
    address = ctypes.cast(call, ctypes.c_void_p).value
    assert address is not None
    return address


def buffer_view(address: int, count: int, dtype: str) -> np.ndarray:
    """A writable numpy array of `count` elements of `dtype`'s storage type at `address`
    (no copy: the memory stays the caller's)."""
    np_dtype = storage_dtype(dtype)
    raw = (ctypes.c_char * (count * np_dtype.itemsize)).from_address(address)
    return np.frombuffer(memoryview(raw), dtype=np_dtype, count=count)


def _all_reduce(src: int | None, dst: int | None, count: int, dtype_code: int, op_code: int, group: int) -> int:
    """The trampoline's body: never lets an exception out (ctypes would print and return 0)."""
    try:
        fn = _REGISTERED["all_reduce"]
        if fn is None:
            _LOCAL.failure = Failure(NOT_INITIALIZED, None, whole=True)
            return 1
        dtype, op = HOST_DTYPES[dtype_code], ALL_REDUCE_OPS[op_code]
        a = buffer_view(src or 0, count, dtype)
        b = a if dst == src else buffer_view(dst or 0, count, dtype)
        result = fn(a, b, count, dtype, op, group)
    except BaseException as e:  # noqa: BLE001 - raised again after the native call returns
        _LOCAL.failure = Failure(f"{type(e).__name__}: {e}", e)
        return 2
    if result is not None and result != 0:
        _LOCAL.failure = Failure(f"the host function returned {result!r}", None)
        return 3
    return 0


def take_failure() -> Failure | None:
    """The failure recorded on this thread since the last take, if any (and forget it)."""
    failure = getattr(_LOCAL, "failure", None)
    _LOCAL.failure = None
    return failure


def raise_failure(message: str, where: str) -> NoReturn:
    """Raise the failed host call's error: `message` is the failing check's text (the op and
    its operand type), `where` the user's line (' (at m.py:3)' or '')."""
    failure = take_failure()
    if failure is None:
        raise HostCallError(f"{message}{where}")
    if failure.exception is not None and not isinstance(failure.exception, Exception):
        raise failure.exception          # KeyboardInterrupt, SystemExit: as they are
    text = failure.reason if failure.whole else f"{message}: {failure.reason}"
    raise HostCallError(f"{text}{where}") from failure.exception
