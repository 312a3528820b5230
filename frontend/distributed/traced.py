"""The traced collective: `all_reduce_lazy` puts an all_reduce into the lazy graph, so a
`@fusegrad.compile`d data-parallel step keeps it inside its one native call.

`all_reduce_lazy(t)` is a primitive like any other (compiler/ir/ops.py: `all_reduce`, with
attributes `reduce` and `group`): it makes a lazy tensor, records autograd (its VJP
all-reduces the cotangent: sum for sum, average for average; max and min are not
differentiable) and is computed when something realizes it, eagerly or as part of a compiled
function's program. The compiled program runs it as a kernel of its own that calls the host
between the kernels around it (runtime/hostcalls.py): the function `install_host_calls`
registers, an MPI Allreduce (mpi4py) on zero-copy numpy views of the program's buffers.

Every process must realize the same all_reduce nodes in the same order (the same compiled
step, or the same eager realizations), as with any collective.
"""
from __future__ import annotations

import builtins
import functools
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..compiler.ir import dtypes
from ..prims import prim
from ..runtime import hostcalls

if TYPE_CHECKING:
    from ..tensor import Tensor

REDUCE_OPS = hostcalls.ALL_REDUCE_OPS          # 'sum', 'avg', 'max', 'min'


def all_reduce_lazy(t: Tensor, op: str = "sum", group: int = 0) -> Tensor:
    """`t` reduced across the processes of process group `group` (an int id), by `op`: 'sum',
    'avg' (floating point only), 'max' or 'min' (an object with a `name` such as a ReduceOp
    member is read by its name). A new lazy tensor of `t`'s shape and dtype, not an in-place
    update; differentiable for 'sum' and 'avg' (the gradient is all-reduced the same way).
    CPU tensors only: the GPU backend has no host calls yet."""
    name = op if isinstance(op, str) else getattr(op, "name", op)
    if not isinstance(name, str) or name.lower() not in REDUCE_OPS:
        raise ValueError(f"all_reduce: op must be one of {', '.join(REDUCE_OPS)}, got {op!r}")
    if isinstance(group, builtins.bool) or not isinstance(group, (builtins.int, np.integer)) or group < 0:
        raise ValueError(f"all_reduce: group must be a non-negative int (a process group id), got {group!r}")
    if t.device.type != "cpu":
        raise NotImplementedError(f"all_reduce: not supported on {t.device.type} tensors yet (the collective is a "
                                  "host call between kernels, which only the CPU backend makes)")
    result: Tensor = prim("all_reduce", [t], {"reduce": name.lower(), "group": builtins.int(group)})
    return result


def install_host_calls(communicator_of: Callable[[int], Any] | None,
                       wait: Callable[[Any, int], None] | None = None,
                       check: Callable[[int, str], None] | None = None) -> None:
    """Make every program's all_reduce an MPI Allreduce over `communicator_of(group)` (an
    mpi4py communicator for the group id the all_reduce was built with). With `wait`, the
    Allreduce is nonblocking and `wait(request, group)` completes it (the process group polls it
    against its timeout, so a rank that is gone makes the program fail instead of hang);
    without, it blocks. With `check`, every all_reduce first calls `check(group, description)`
    (element count, dtype, op), which raises on every rank unless every rank makes that call
    (the collectives' signature check, some 12 µs): ranks whose compiled programs disagree
    fail with a message naming both calls instead of reducing mismatched buffers. Every call,
    not only a signature's first: a rank that skipped the check would meet the other's check
    with its Allreduce, and MPI does not match collectives of different kinds. None: uninstall,
    so that all_reduce raises 'all_reduce needs fusegrad.distributed.init_process_group()'.
    mpi4py is imported at the first all_reduce."""
    hostcalls.register_all_reduce(None if communicator_of is None else _mpi_all_reduce(communicator_of, wait, check))


@functools.lru_cache(maxsize=256)
def _description(count: int, dtype: str, op: str) -> str:
    return f"all_reduce(numel={count}, dtype={dtype}, op={op.upper()})"


def _mpi_all_reduce(communicator_of: Callable[[int], Any], wait: Callable[[Any, int], None] | None,
                    check: Callable[[int, str], None] | None) -> hostcalls.AllReduceFn:
    def agree(count: int, dtype: str, op: str, group: int) -> None:
        if check is not None:
            check(group, _description(count, dtype, op))

    def reduce(comm: Any, group: int, source: Any, target: np.ndarray, mpi_op: Any) -> None:
        if wait is None:
            comm.Allreduce(source, target, op=mpi_op)
        else:
            wait(comm.Iallreduce(source, target, op=mpi_op), group)

    def all_reduce(src: np.ndarray, dst: np.ndarray, count: int, dtype: str, op: str, group: int) -> int:
        MPI = importlib.import_module("mpi4py.MPI")    # optional: only a distributed run needs mpi4py
        agree(count, dtype, op, group)
        comm = communicator_of(group)
        mpi_op = {"sum": MPI.SUM, "avg": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
        if dtype in ("float16", "bfloat16"):      # no MPI type: reduce in float32, round once
            dt = dtypes.from_name(dtype)
            work = np.array(dtypes.from_storage(src, dt), dtype=np.float32)
            reduce(comm, group, MPI.IN_PLACE, work, mpi_op)
            if op == "avg":
                work /= comm.Get_size()
            dst[...] = dtypes.to_storage(work, dt)
            return 0
        reduce(comm, group, MPI.IN_PLACE if dst is src else src, dst, mpi_op)
        if op == "avg":
            np.divide(dst, comm.Get_size(), out=dst)
        return 0
    return all_reduce
