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
from ..ir.registry import CPU, PTX, ElementwiseRule, ReductionRule, planned
from ..passes.fuse import Kernel
from ..passes.schedule import Schedule
from ..program import Launch
from . import nvptx
from .emit import Checks, Emitter, cast, combine, reduction_identity
from .kernel_plan import kernel_slots, node_pointers
from .llvm_util import I64, elem_ptr, i64

# ---------------------------------------------------------------- PTX lowerings, one per primitive
#
# The GPU backend emits the same LLVM IR as the CPU's (NVPTX then makes PTX of it), so most
# primitives register the CPU rule itself; each is named here, so a new primitive has no PTX
# lowering until someone checks that its CPU rule is valid on NVPTX (no libm, no frem, ...).

PTX.same_as(CPU, "input", "param", "const", "iota", "rand")                         # sources
PTX.same_as(CPU, "neg", "exp", "log", "sqrt", "recip", "sin", "cos", "tanh", "abs", "floor", "round", "erf")
PTX.same_as(CPU, "add", "sub", "mul", "div", "pow", "max", "min")
PTX.same_as(CPU, "lt", "le", "eq", "ne", "where", "cast")
PTX.same_as(CPU, "reshape", "permute", "expand", "slice", "window", "pad", "concat", "gather")  # views, indexing
PTX.same_as(CPU, "sum", "reduce_max", "reduce_min", "prod")    # combine rules (ptx.py, ptx_rows.py, nvptx.py)
PTX.register("scatter_add", planned("atomic scatter kernel (ptx.py)"))
PTX.register("matmul", planned("tiled GEMM kernels (ptx_gemm.py) with elementwise epilogues"))


def ptx_elementwise(*ops: str):
    """Register `fn(emitter, node, args)` as the PTX lowering of each elementwise op in `ops`."""
    def deco(fn):
        for op in ops:
            PTX.register(op, ElementwiseRule(fn))
        return fn
    return deco


@ptx_elementwise("fmod")
def _fmod(em, n, args):
    """NVPTX's frem is not exact: call the long-division fmod."""
    return em.b.call(nvptx.exact_fmod(em.b.module, args[0].type), args)


class GpuEmitter(Emitter):
    RULES = PTX

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


def open_kernel(module: ir.Module, sched: Schedule, k: Kernel, checks: Checks, name: str, block: int,
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
    """The dtype reduction `r` accumulates in: float32 in float64 where its rule widens
    (sums), like the CPU's."""
    rule = PTX[r.op]
    widen = isinstance(rule, ReductionRule) and rule.widen_float32
    return dtypes.float64 if widen and r.dtype is dtypes.float32 else r.dtype


def accumulator_identity(r) -> ir.Constant:
    return reduction_identity(r.op, accumulator_dtype(r))


def accumulate(b: ir.IRBuilder, r, acc: ir.Value, v: ir.Value) -> ir.Value:
    """acc (op) v, where v is a value of r's input and acc is in the accumulator dtype."""
    dt = accumulator_dtype(r)
    return combine(b, r.op, dt, acc, cast(b, v, r.inputs[0].dtype, dt))


def finish(b: ir.IRBuilder, r, acc: ir.Value) -> ir.Value:
    """The reduction's value from its accumulator."""
    return cast(b, acc, accumulator_dtype(r), r.dtype)
