"""NVPTX plumbing for the GPU backend: what a kernel needs from the target, as LLVM IR.

- a module for `nvptx64-nvidia-cuda` and kernel entry points (`!nvvm.annotations`: "kernel",
  and "maxntidx", the block size, so ptxas budgets registers for it);
- PTX special registers (`llvm.nvvm.read.ptx.sreg.*`) and the loops built on them: over
  elements (grid stride), over virtual blocks (block stride), over a row (thread stride);
- block barriers, warp shuffles (`llvm.nvvm.shfl.sync.bfly.*`) and block-wide reductions
  through shared memory (address space 3);
- atomics and fences;
- PTX text from LLVM IR with llvmlite's NVPTX target machine (the new pass manager at -O3).

Every loop over blocks strides by the grid size, so the runtime may launch fewer blocks than
a launch asks for (device limits) and every kernel still covers its whole space.
"""
from __future__ import annotations

import threading

import llvmlite.binding as llvm
from llvmlite import ir

from .emit import combine, reduction_identity
from .llvm_util import I8, I32, I64, PTR, VOID, Loop, binary_helper, i64, intrinsic, reg_type

TRIPLE = "nvptx64-nvidia-cuda"
DATA_LAYOUT = "e-i64:64-i128:128-v16:16-v32:32-n16:32:64"
DEFAULT_ARCH = "sm_80"
WARP = 32
SHARED = 3                      # the address space of shared memory
FULL_MASK = ir.Constant(I32, -1)

_LOCK = threading.Lock()
_MACHINES: dict = {}


# ---------------------------------------------------------------- module and kernels

def new_module(name: str) -> ir.Module:
    module = ir.Module(name=name)
    module.triple = TRIPLE
    module.data_layout = DATA_LAYOUT
    return module


def define_kernel(module: ir.Module, name: str, nparams: int, block: int) -> ir.Function:
    """`void name(ptr, ...)`: a kernel entry taking `nparams` device pointers (noalias: the
    schedule never gives one kernel two views of the same memory), launched with `block` threads."""
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR] * nparams), name)
    for a in fn.args:
        a.add_attribute("noalias")
    annotations = module.get_named_metadata("nvvm.annotations") if "nvvm.annotations" in module.namedmetadata \
        else module.add_named_metadata("nvvm.annotations")
    annotations.add(module.add_metadata([fn, "kernel", ir.Constant(I32, 1)]))
    annotations.add(module.add_metadata([fn, "maxntidx", ir.Constant(I32, block)]))
    return fn


def shared_array(module: ir.Module, name: str, ty: ir.Type, count: int) -> ir.GlobalVariable:
    """A static shared-memory array of `count` elements of `ty`, as an opaque addrspace(3) pointer."""
    arr = ir.ArrayType(ty, count)
    g = ir.GlobalVariable(module, arr, name, addrspace=SHARED)
    g.linkage = "internal"
    g.initializer = ir.Constant(arr, ir.Undefined)
    g.align = 16
    g.type = ir.PointerType(addrspace=SHARED)   # llvmlite types globals by their contents
    return g


def shared_ptr(b: ir.IRBuilder, array, index, ty: ir.Type):
    """Address of element `index` (i64 value or int) of type `ty` in a shared array."""
    return b.gep(array, [index if isinstance(index, ir.Value) else i64(index)], inbounds=True, source_etype=ty)


# ---------------------------------------------------------------- special registers

def _sreg(b: ir.IRBuilder, name: str) -> ir.Value:
    full = f"llvm.nvvm.read.ptx.sreg.{name}"
    fn = b.module.globals.get(full) or ir.Function(b.module, ir.FunctionType(I32, []), full)
    return b.zext(b.call(fn, []), I64)


def thread_index(b: ir.IRBuilder) -> ir.Value:
    return _sreg(b, "tid.x")


def block_index(b: ir.IRBuilder) -> ir.Value:
    return _sreg(b, "ctaid.x")


def grid_blocks(b: ir.IRBuilder) -> ir.Value:
    return _sreg(b, "nctaid.x")


def grid_stride_loop(b: ir.IRBuilder, total: int, block: int, name="i") -> Loop:
    """`for i in [0, total)` spread over every thread of the grid, consecutive threads on
    consecutive i (coalesced)."""
    start = b.add(b.mul(block_index(b), i64(block)), thread_index(b))
    return Loop(b, start, total, name=name, step=b.mul(grid_blocks(b), i64(block)))


def block_stride_loop(b: ir.IRBuilder, count: int, name="vb") -> Loop:
    """`for vb in [0, count)` over virtual blocks: each block of the grid takes every
    gridDim-th one (the loop is uniform across a block, so it may contain barriers)."""
    return Loop(b, block_index(b), count, name=name, step=grid_blocks(b))


def thread_stride_loop(b: ir.IRBuilder, lo, hi, block: int, carried=(), name="j") -> Loop:
    """`for j in [lo, hi)` over the threads of one block, thread t taking lo+t, lo+t+block, ..."""
    lo = lo if isinstance(lo, ir.Value) else i64(lo)
    return Loop(b, b.add(lo, thread_index(b)), hi, carried, name=name, step=block)


# ---------------------------------------------------------------- synchronisation

def barrier(b: ir.IRBuilder) -> None:
    """`bar.sync 0`: every thread of the block arrives before any goes on."""
    fn = b.module.globals.get("llvm.nvvm.barrier0") or ir.Function(b.module, ir.FunctionType(VOID, []),
                                                                  "llvm.nvvm.barrier0")
    b.call(fn, [])


def fence(b: ir.IRBuilder) -> None:
    """A sequentially consistent fence: writes before it are seen by other blocks before
    anything after it (CUDA's __threadfence, here at system scope)."""
    b.fence("seq_cst")


def atomic_add(b: ir.IRBuilder, dt, ptr, v) -> None:
    """`*ptr += v` atomically (a scatter-add; bools add as "or", as PyTorch's)."""
    if dt.is_floating_point:
        b.atomic_rmw("fadd", ptr, v, "monotonic")
    elif dt.is_bool:
        b.atomic_rmw("or", ptr, b.zext(v, I8), "monotonic")
    else:
        b.atomic_rmw("add", ptr, v, "monotonic")


# ---------------------------------------------------------------- warp and block reductions

def shuffle_xor(b: ir.IRBuilder, v: ir.Value, lane_mask: int) -> ir.Value:
    """The value `v` of the lane whose index differs from this one's in the bits of
    `lane_mask` (every lane of the warp takes part). 64-bit values move as two halves."""
    ty = v.type
    if ty == I32 or isinstance(ty, ir.FloatType):
        suffix = "i32" if ty == I32 else "f32"
        name = f"llvm.nvvm.shfl.sync.bfly.{suffix}"
        fn = b.module.globals.get(name) or ir.Function(b.module, ir.FunctionType(ty, [I32, ty, I32, I32]), name)
        return b.call(fn, [FULL_MASK, v, ir.Constant(I32, lane_mask), ir.Constant(I32, WARP - 1)])
    if isinstance(ty, ir.DoubleType) or ty == I64:
        bits = b.bitcast(v, I64) if isinstance(ty, ir.DoubleType) else v
        lo = shuffle_xor(b, b.trunc(bits, I32), lane_mask)
        hi = shuffle_xor(b, b.trunc(b.lshr(bits, i64(32)), I32), lane_mask)
        out = b.or_(b.shl(b.zext(hi, I64), i64(32)), b.zext(lo, I64))
        return b.bitcast(out, ty) if isinstance(ty, ir.DoubleType) else out
    return b.trunc(shuffle_xor(b, b.zext(v, I32), lane_mask), ty)     # i1, i8


def warp_reduce(b: ir.IRBuilder, op: str, dt, v: ir.Value) -> ir.Value:
    """The reduction of `v` over the warp, in every lane (a butterfly of shuffles)."""
    step = WARP // 2
    while step:
        v = combine(b, op, dt, v, shuffle_xor(b, v, step))
        step //= 2
    return v


def block_reduce(b: ir.IRBuilder, op: str, dt, v: ir.Value, block: int, exchange) -> ir.Value:
    """The reduction of `v` over the whole block, in every thread. `exchange` is a shared
    array of WARP 8-byte slots; it is free again when this returns."""
    v = warp_reduce(b, op, dt, v)
    warps = block // WARP
    if warps == 1:
        return v
    ty = reg_type(dt)
    tid = thread_index(b)
    lane = b.and_(tid, i64(WARP - 1))
    with b.if_then(b.icmp_unsigned("==", lane, i64(0))):
        b.store(v, shared_ptr(b, exchange, b.lshr(tid, i64(5)), ty))
    barrier(b)
    mine = b.load(shared_ptr(b, exchange, lane, ty), typ=ty)
    v = warp_reduce(b, op, dt, b.select(b.icmp_unsigned("<", lane, i64(warps)), mine, reduction_identity(op, dt)))
    barrier(b)
    return v


def is_thread_zero(b: ir.IRBuilder) -> ir.Value:
    return b.icmp_unsigned("==", thread_index(b), i64(0))


# ---------------------------------------------------------------- PTX

# ---------------------------------------------------------------- exact fmod

def exact_fmod(module: ir.Module, ty: ir.Type) -> ir.Function:
    """C's fmod, exact (as CUDA's fmodf/fmod): LLVM lowers `frem` for NVPTX to x - trunc(x/y)*y,
    which is wrong once x/y is large. Long division instead: |y| doubled to just above |x|/2,
    then halved back to |y|, subtracting wherever it fits (each subtraction is exact, the
    doubled values are exact multiples of |y|). NaN for x inf/NaN or y 0/NaN; x for y = inf."""
    fn, new = binary_helper(module, f"fg.fmod.{'f32' if isinstance(ty, ir.FloatType) else 'f64'}", ty)
    if not new:
        return fn
    x, y = fn.args
    entry, grow, reduce, done, nan = (fn.append_basic_block(s) for s in ("entry", "grow", "reduce", "done", "nan"))
    b = ir.IRBuilder(entry)
    ax, ay = (intrinsic(b, "llvm.fabs", [ty], [v]) for v in (x, y))
    ok = b.and_(b.fcmp_ordered("<", ax, ir.Constant(ty, float("inf"))), b.fcmp_ordered(">", ay, ir.Constant(ty, 0.0)))
    b.cbranch(ok, grow, nan)
    b.position_at_end(grow)                      # t: the largest |y| * 2^k with 2t > |x|
    t = b.phi(ty)
    t.add_incoming(ay, entry)
    twice = b.fmul(t, ir.Constant(ty, 2.0))
    t.add_incoming(twice, grow)
    b.cbranch(b.fcmp_ordered("<=", twice, ax), grow, reduce)
    b.position_at_end(reduce)                    # r < 2t throughout; subtract t where r >= t
    r, u = b.phi(ty), b.phi(ty)
    r.add_incoming(ax, grow)
    u.add_incoming(t, grow)
    r_next = b.select(b.fcmp_ordered(">=", r, u), b.fsub(r, u), r)
    u_next = b.fmul(u, ir.Constant(ty, 0.5))
    r.add_incoming(r_next, reduce)
    u.add_incoming(u_next, reduce)
    b.cbranch(b.fcmp_ordered(">=", u_next, ay), reduce, done)
    b.position_at_end(done)
    b.ret(intrinsic(b, "llvm.copysign", [ty], [r_next, x]))
    b.position_at_end(nan)
    b.ret(ir.Constant(ty, float("nan")))
    return fn


def _machine(arch: str):
    tm = _MACHINES.get(arch)
    if tm is None:
        llvm.initialize_all_targets()
        llvm.initialize_all_asmprinters()
        tm = _MACHINES[arch] = llvm.Target.from_triple(TRIPLE).create_target_machine(cpu=arch, opt=3)
    return tm


def to_ptx(ir_text: str, arch: str = DEFAULT_ARCH) -> str:
    """PTX assembly for `arch` (sm_80, sm_90, ...) of an NVPTX module, optimised at -O3."""
    with _LOCK:
        tm = _machine(arch)
        mod = llvm.parse_assembly(ir_text)
        mod.verify()
        pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=3))
        pb.getModulePassManager().run(mod, pb)
        return tm.emit_assembly(mod)

