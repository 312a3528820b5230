"""LLVM IR building blocks shared by the CPU and GPU backends: types, constants, loops.

Everything here works on llvmlite.ir objects and knows nothing of graphs or kernels.
"""
from __future__ import annotations

from llvmlite import ir

from ..ir import dtypes

I1, I8, I16, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
F16, F32, F64 = ir.HalfType(), ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()
VOID = ir.VoidType()



class BFloatType(ir.types._BaseFloatType):
    """LLVM's `bfloat`, which llvmlite lacks (its IR is text: the name is all it needs)."""
    null = "0.0"
    intrinsic_name = "bf16"

    def __str__(self):
        return "bfloat"


BFloatType._create_instance()
BF16 = BFloatType()

# float16 and bfloat16 are storage types: float32 in registers (kernels compute in float32 and
# round when they store or cast). float16 is LLVM's `half` in memory (F16C's vcvtps2ph/vcvtph2ps
# on x86, cvt.f32.f16 / cvt.rn.f16.f32 in PTX). bfloat16 is an i16 in memory: on the CPU it is
# converted by bit manipulation (LLVM would call a library function without AVX512-BF16, and
# that instruction flushes subnormals: the same integer code on every host gives the same
# bits); on the GPU through LLVM's `bfloat` (cvt.rn.bf16.f32; cvt.f32.bf16 on sm_90).
_REG = {dtypes.float32: F32, dtypes.float64: F64, dtypes.float16: F32, dtypes.bfloat16: F32,
        dtypes.int32: I32, dtypes.int64: I64, dtypes.uint8: I8, dtypes.bool_: I1}
_MEM = {**_REG, dtypes.bool_: I8, dtypes.float16: F16, dtypes.bfloat16: I16}


def reg_type(dt) -> ir.Type:
    """The type a value has in registers (bool is i1, 16-bit floats are float32)."""
    return _REG[dt]


def mem_type(dt) -> ir.Type:
    """The type a value has in memory (bool is a byte, bfloat16 an i16 of its bits)."""
    return _MEM[dt]


def to_storage(b: ir.IRBuilder, v: ir.Value, dt) -> ir.Value:
    """A register value (float32 for 16-bit floats) as dtype `dt`'s memory value."""
    if dt is dtypes.bool_:
        return b.zext(v, I8)
    if dt is dtypes.float16:
        return b.fptrunc(v, F16)
    if dt is dtypes.bfloat16:
        if _on_gpu(b):
            return b.bitcast(b.fptrunc(v, BF16), I16)
        return b.trunc(b.lshr(bfloat16_round_bits(b, v), ir.Constant(I32, 16)), I16)
    return v


def from_storage(b: ir.IRBuilder, v: ir.Value, dt) -> ir.Value:
    """A memory value of dtype `dt` as its register value (exact)."""
    if dt is dtypes.bool_:
        return b.icmp_unsigned("!=", v, ir.Constant(I8, 0))
    if dt is dtypes.float16:
        return b.fpext(v, F32)
    if dt is dtypes.bfloat16:
        if _on_gpu(b):
            return b.fpext(b.bitcast(v, BF16), F32)
        return b.bitcast(b.shl(b.zext(v, I32), ir.Constant(I32, 16)), F32)
    return v


def _on_gpu(b: ir.IRBuilder) -> bool:
    return b.module.triple.startswith("nvptx")


def bfloat16_round_bits(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    """The float32 bit pattern of `v` rounded to bfloat16 (to nearest, ties to even) with its
    low 16 bits clear; every NaN is the quiet NaN 0x7FC0 (as PyTorch's; adding to a NaN's
    bits could carry it to infinity)."""
    bits = b.bitcast(v, I32)
    c = lambda x: ir.Constant(I32, x)
    lsb = b.and_(b.lshr(bits, c(16)), c(1))
    rounded = b.and_(b.add(bits, b.add(lsb, c(0x7FFF))), c(0xFFFF0000 - (1 << 32)))
    return b.select(b.fcmp_unordered("uno", v, v), c(0x7FC00000), rounded)


def round_to(b: ir.IRBuilder, v: ir.Value, dt) -> ir.Value:
    """A float32 register value rounded to 16-bit float `dt` (still a float32 register)."""
    if dt is dtypes.float16:
        return b.fpext(b.fptrunc(v, F16), F32)
    if dt is dtypes.bfloat16:
        if _on_gpu(b):
            return b.fpext(b.fptrunc(v, BF16), F32)
        return b.bitcast(bfloat16_round_bits(b, v), F32)
    return v


def const(dt, value) -> ir.Constant:
    ty = reg_type(dt)
    if dt.is_floating_point:
        return ir.Constant(ty, float(value))
    if dt.is_bool:
        return ir.Constant(ty, int(bool(value)))
    return ir.Constant(ty, int(value) & ((1 << ty.width) - 1))


def i64(value: int) -> ir.Constant:
    return ir.Constant(I64, value)


def elem_ptr(b: ir.IRBuilder, ptr, index, ty: ir.Type):
    """Address of element `index` of type `ty` in the buffer at `ptr` (inbounds GEP)."""
    return b.gep(ptr, [index if isinstance(index, ir.Value) else i64(index)], inbounds=True, source_etype=ty)


def load_value(b: ir.IRBuilder, ptr, index, dt) -> ir.Value:
    """Element `index` of a buffer of dtype `dt`, as a register value (bool bytes become i1)."""
    v = b.load(elem_ptr(b, ptr, index, mem_type(dt)), typ=mem_type(dt))
    return from_storage(b, v, dt)


def store_value(b: ir.IRBuilder, ptr, index, v, dt) -> None:
    """Store a register value of dtype `dt` at element `index` (bools as bytes, 16-bit floats
    rounded from float32)."""
    b.store(to_storage(b, v, dt), elem_ptr(b, ptr, index, mem_type(dt)))


def intrinsic(b: ir.IRBuilder, name: str, types: list, args: list, ret: ir.Type | None = None):
    """Call an overloaded LLVM intrinsic such as llvm.maximum.f32 (declared on first use)."""
    suffix = ".".join(_mangle(t) for t in types)
    full = f"{name}.{suffix}" if suffix else name
    module = b.module
    fn = module.globals.get(full)
    if fn is None:
        fnty = ir.FunctionType(ret if ret is not None else args[0].type, [a.type for a in args])
        fn = ir.Function(module, fnty, full)
    return b.call(fn, args)


def binary_helper(module: ir.Module, name: str, ty: ir.Type) -> tuple[ir.Function, bool]:
    """The module's internal function `name` of type (ty, ty) -> ty, and whether it was
    declared just now (then the caller writes its body; each helper is defined once per module)."""
    if name in module.globals:
        return module.globals[name], False
    fn = ir.Function(module, ir.FunctionType(ty, [ty, ty]), name)
    fn.linkage = "internal"
    return fn, True


def _mangle(t: ir.Type) -> str:
    if isinstance(t, ir.HalfType):
        return "f16"
    if isinstance(t, ir.FloatType):
        return "f32"
    if isinstance(t, ir.DoubleType):
        return "f64"
    if isinstance(t, ir.IntType):
        return f"i{t.width}"
    raise TypeError(t)


class Loop:
    """A counted loop `for i in [start, stop)` (by `step`, a positive i64) with loop-carried values.

    On construction the builder is left in the body; `close(next_values)` branches back and
    leaves the builder after the loop, where `results` hold the carried values' final values."""

    def __init__(self, b: ir.IRBuilder, start, stop, carried=(), name="i", step=1):
        self.b = b
        self.step = step if isinstance(step, ir.Value) else i64(step)
        pre = b.block
        self.head = b.append_basic_block(f"{name}.head")
        self.body = b.append_basic_block(f"{name}.body")
        self.exit = b.append_basic_block(f"{name}.exit")
        b.branch(self.head)
        b.position_at_end(self.head)
        self.index = b.phi(I64, name)
        self.index.add_incoming(start if isinstance(start, ir.Value) else i64(start), pre)
        self.carried = []
        for v in carried:
            phi = b.phi(v.type)
            phi.add_incoming(v, pre)
            self.carried.append(phi)
        stop = stop if isinstance(stop, ir.Value) else i64(stop)
        b.cbranch(b.icmp_signed("<", self.index, stop), self.body, self.exit)
        b.position_at_end(self.body)

    def close(self, next_values=()) -> list:
        b = self.b
        nxt = b.add(self.index, self.step, flags=("nsw", "nuw"))
        latch = b.block
        b.branch(self.head)
        self.index.add_incoming(nxt, latch)
        for phi, v in zip(self.carried, next_values):
            phi.add_incoming(v, latch)
        b.position_at_end(self.exit)
        self.results = list(self.carried)
        return self.results


def nest(b: ir.IRBuilder, ranges) -> list:
    """Nested loops over [(lo, hi), ...]; returns the loops (outermost first)."""
    return [Loop(b, lo, hi, name=f"d{d}") for d, (lo, hi) in enumerate(ranges)]


def close_nest(loops) -> None:
    for loop in reversed(loops):
        loop.close()
