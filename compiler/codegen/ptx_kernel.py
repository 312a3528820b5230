"""One PTX entry point of a fused kernel: its parameters, its Emitter, its launch record.

The GPU drivers (ptx.py, ptx_rows.py, ptx_gemm.py) open a `KernelFunction` per entry they
emit. Its parameters are a device pointer per buffer-table slot the kernel touches, slot 0
(the error word) first, and, when the entry asks for scratch, a last pointer to scratch
memory (zeroed once by the runtime, kept for the entry across launches). The builder starts
in the entry block; the driver builds the thread loops and calls the Emitter inside them.

Also here, shared by the reduction drivers: the type a reduction accumulates in (float32
sums in float64, as on the CPU) and the `GpuEmitter`, whose failed checks race safely.
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from ..ir import dtypes
from ..passes.fuse import Kernel
from ..passes.schedule import Schedule
from ..program import Launch
from .emit import Emitter, cast, combine, reduction_identity
from .kernel_plan import kernel_slots, node_pointers
from .llvm_util import I64, elem_ptr, i64
from . import nvptx


class GpuEmitter(Emitter):
    def elementwise(self, n, args: list) -> ir.Value:
        if n.op == "fmod":      # NVPTX's frem is not exact: call the long-division fmod
            return self.b.call(nvptx.exact_fmod(self.b.module, args[0].type), args)
        return super().elementwise(n, args)

    def record_failure(self, code: int, check_id: int) -> None:
        """Many threads may fail at once: the first to swap the code into the zero error
        word also writes its check id, so code and id always belong to one check."""
        b = self.b
        won = b.extract_value(b.cmpxchg(self.error_ptr, i64(0), i64(code), "monotonic", "monotonic"), 1)
        with b.if_then(won):
            b.store(i64(check_id), elem_ptr(b, self.error_ptr, 1, I64))


@dataclass
class KernelFunction:
    kernel: Kernel
    name: str
    block: int
    args: tuple            # buffer-table slots, in parameter order
    b: ir.IRBuilder
    em: GpuEmitter
    ptr_of_slot: dict
    stores: list           # (node, pointer) the kernel writes
    scratch: ir.Value | None
    scratch_bytes: int

    def launch(self, grid: int) -> Launch:
        """Close the entry and describe its launch with at most `grid` blocks."""
        self.b.ret_void()
        return Launch(self.name, self.kernel.name, self.args, max(1, grid), self.block, self.scratch_bytes)


def open_kernel(module: ir.Module, sched: Schedule, k: Kernel, checks: list, name: str, block: int,
                scratch_bytes: int = 0) -> KernelFunction:
    args = (0,) + tuple(s for s in kernel_slots(sched, k) if s != 0)
    fn = nvptx.define_kernel(module, name, len(args) + (1 if scratch_bytes else 0), block)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    ptr_of_slot = dict(zip(args, fn.args))
    em = GpuEmitter(b, k, node_pointers(sched, k, ptr_of_slot), ptr_of_slot[0], checks)
    stores = [(n, ptr_of_slot[s]) for n, s in k.stores]
    scratch = fn.args[len(args)] if scratch_bytes else None
    return KernelFunction(k, name, block, args, b, em, ptr_of_slot, stores, scratch, scratch_bytes)


# ---------------------------------------------------------------- accumulators

def accumulator_dtype(r):
    """The dtype reduction `r` accumulates in: float32 sums in float64, like the CPU's."""
    return dtypes.float64 if r.op == "sum" and r.dtype is dtypes.float32 else r.dtype


def accumulator_identity(r) -> ir.Constant:
    return reduction_identity(r.op, accumulator_dtype(r))


def accumulate(b: ir.IRBuilder, r, acc: ir.Value, v: ir.Value) -> ir.Value:
    """acc (op) v, where v is a value of r's input and acc is in the accumulator dtype."""
    dt = accumulator_dtype(r)
    return combine(b, r.op, dt, acc, cast(b, v, r.inputs[0].dtype, dt))


def finish(b: ir.IRBuilder, r, acc: ir.Value) -> ir.Value:
    """The reduction's value from its accumulator."""
    return cast(b, acc, accumulator_dtype(r), r.dtype)
