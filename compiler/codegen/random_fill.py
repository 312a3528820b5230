"""Size-generic Philox fills: the native code behind the eager random factories.

A program's kernels are specialised to their shapes; filling a fresh tensor with random
numbers should not cost a compile per shape. This module emits small LLVM modules (one
function each) that take the count and the range of positions as arguments, so a single
compile (cached in memory and on disk like any program's code) serves `rand`, `randn`,
`uniform_`, `normal_` and the `nn.init` functions for every shape.

Every function has the signature

    void fg_fill_<kind>_<f32|f64>(ptr out, i64 begin, i64 end, i64 n, i64 seed, i64 start,
                                   double a, double b, i64 digits)

and writes positions [begin, end) of `out` (so callers may split the work between threads).
The numbers are the ones the IR's `rand` op and the frontend's reference stream give for the
counters start .. start+n-1 of generator `seed` (`philox4x32` is the same code):

- `bits`:    the top `digits` bits of word 0 times 2^-digits (float32: 24 bits, float16: 11,
             bfloat16: 8), exact and below 1; `a`, `b` unused.
- `uniform`: a + (b - a) u with u the 53-bit uniform of words 0 and 1, in float64.
- `normal`:  a + b z, z standard normals by Box-Muller on the pairs of 53-bit uniforms
             (u1, u2) at counters start+2j, start+2j+1, for j < m = ceil(n/2):
             z[j] = r cos(2 pi u2) and z[m + j] = r sin(2 pi u2), r = sqrt(-2 log1p(-u1));
             positions are pair indices here, [begin, end) within [0, m).

float32 results are the float64 values rounded once (as numpy's astype rounds them).
"""
from __future__ import annotations

import math
from collections.abc import Callable

from llvmlite import ir

from . import mathlib
from .emit import philox4x32
from .llvm_util import F32, F64, I32, I64, PTR, VOID, Loop, i64

KINDS = ("bits", "uniform", "normal")
OUTPUTS = {"f32": F32, "f64": F64}
SIGNATURE = ir.FunctionType(VOID, [PTR, I64, I64, I64, I64, I64, F64, F64, I64])


def function_name(kind: str, out: str) -> str:
    return f"fg_fill_{kind}_{out}"


def module_text(kind: str, out: str) -> str:
    """The LLVM IR of one fill function: a module each, so a process compiles only the fills it
    uses (the normal one, with its log1p, sin and cos, costs several times the others)."""
    if kind not in KINDS or out not in OUTPUTS or (kind == "bits" and out != "f32"):
        raise ValueError(f"no random fill {kind!r} into {out!r}")
    module = ir.Module(name=f"fusegrad_{function_name(kind, out)}")
    _emit_fill(module, kind, out)
    return str(module)


def _emit_fill(module: ir.Module, kind: str, out: str) -> None:
    fn = ir.Function(module, SIGNATURE, function_name(kind, out))
    for name, arg in zip(("out", "begin", "end", "n", "seed", "start", "a", "b", "digits"), fn.args):
        arg.name = name
    fn.args[0].add_attribute("noalias")
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    _BODIES[kind](builder, fn.args, OUTPUTS[out])
    builder.ret_void()


def _uniform53(b: ir.IRBuilder, counter: ir.Value, seed: ir.Value) -> ir.Value:
    """53 bits of Philox words 0 (high) and 1 (low) at `counter`, as a double in [0, 1)."""
    words = philox4x32(b, counter, seed)
    bits = b.or_(b.shl(b.zext(words[0], I64), i64(32)), b.zext(words[1], I64))
    return b.fmul(b.uitofp(b.lshr(bits, i64(11)), F64), ir.Constant(F64, 2.0 ** -53))


def _store(b: ir.IRBuilder, out: ir.Value, index: ir.Value, value: ir.Value, ty: ir.Type) -> None:
    if ty is not value.type:
        value = b.fptrunc(value, ty)
    b.store(value, b.gep(out, [index], inbounds=True, source_etype=ty))


def _over_positions(b: ir.IRBuilder, args, body: Callable[[ir.Value], None]) -> None:
    """for i in [begin, end): body(i)."""
    loop = Loop(b, args[1], args[2])
    body(loop.index)
    loop.close()


def _bits(b: ir.IRBuilder, args, ty: ir.Type) -> None:
    out, _, _, _, seed, start, _, _, digits = args
    shift = b.trunc(b.sub(i64(32), digits), I32)
    scale = b.fptrunc(_pow2(b, b.neg(digits)), F32)

    def body(i):
        word = philox4x32(b, b.add(start, i), seed)[0]
        _store(b, out, i, b.fmul(b.uitofp(b.lshr(word, shift), F32), scale), ty)
    _over_positions(b, args, body)


def _pow2(b: ir.IRBuilder, exponent: ir.Value) -> ir.Value:
    """2.0 ** exponent for a small integer exponent, built from the double's bits."""
    return b.bitcast(b.shl(b.add(exponent, i64(1023)), i64(52)), F64)


def _uniform(b: ir.IRBuilder, args, ty: ir.Type) -> None:
    out, _, _, _, seed, start, lo, hi, _ = args
    width = b.fsub(hi, lo)

    def body(i):
        _store(b, out, i, b.fadd(lo, b.fmul(width, _uniform53(b, b.add(start, i), seed))), ty)
    _over_positions(b, args, body)


def _normal(b: ir.IRBuilder, args, ty: ir.Type) -> None:
    out, begin, end, n, seed, start, mean, std, _ = args
    pairs = b.sdiv(b.add(n, i64(1)), i64(2))            # m = ceil(n / 2)
    with_sine = b.sub(n, pairs)                          # pairs that give two numbers: m or m - 1
    both_end = b.select(b.icmp_signed("<", end, with_sine), end, with_sine)

    def pair(j, sine: bool):
        counter = b.add(start, b.mul(j, i64(2)))
        u1 = _uniform53(b, counter, seed)
        u2 = _uniform53(b, b.add(counter, i64(1)), seed)
        r = b.call(_sqrt(b.module), [b.fmul(mathlib.emit_math(b, "log1p", b.fneg(u1)), ir.Constant(F64, -2.0))])
        angle = b.fmul(ir.Constant(F64, 2 * math.pi), u2)
        scaled = lambda v: b.fadd(mean, b.fmul(std, b.fmul(r, v)))
        _store(b, out, j, scaled(mathlib.emit_math(b, "cos", angle)), ty)
        if sine:
            _store(b, out, b.add(pairs, j), scaled(mathlib.emit_math(b, "sin", angle)), ty)

    loop = Loop(b, begin, both_end)
    pair(loop.index, sine=True)
    loop.close()
    # an odd n: the last pair gives only its cosine
    last = b.sub(pairs, i64(1))
    odd_tail = b.and_(b.icmp_signed("<", with_sine, pairs),
                      b.and_(b.icmp_signed("<=", begin, last), b.icmp_signed("<", last, end)))
    with b.if_then(odd_tail):
        pair(last, sine=False)


def _sqrt(module: ir.Module) -> ir.Function:
    existing = module.globals.get("llvm.sqrt.f64")
    return existing if existing is not None else ir.Function(module, ir.FunctionType(F64, [F64]), "llvm.sqrt.f64")


_BODIES = {"bits": _bits, "uniform": _uniform, "normal": _normal}
