"""Elementwise math functions written directly in LLVM IR, branch-free but for large sin/cos arguments.

Role in the pipeline: a code-generation helper shared by the CPU backend
(LLVM IR -> native code through llvmlite's MCJIT) and the GPU backend
(LLVM IR -> PTX through the NVPTX target).  When a fused kernel needs
``exp``, ``log``, ``sin``, ... of a scalar it calls::

    emit_math(builder, "exp", x)

which defines ``fg.exp.f32`` (or ``.f64``) in ``builder.module`` on first use
and emits a call to it.

Why not libm or ``llvm.exp``: on the CPU a libm call inside a loop stops the
loop vectorizer, and on NVPTX there is no libm at all (``llvm.exp`` and
friends become calls to undefined symbols).  Every function here is
therefore a small ``internal alwaysinline`` LLVM function made of
straight-line code: selects instead of branches, no loops, no tables, no
calls except to intrinsics that both backends lower to instructions:
``llvm.fabs``, ``llvm.floor``, ``llvm.rint``, ``llvm.copysign``,
``llvm.fshl`` (integer funnel shift), ``llvm.fmuladd`` (polynomials; fused
where the target has FMA) and ``llvm.fma`` (only where an exact product is
needed: the sin/cos argument reduction, the division in tanh and the
double-double logarithm of f64 ``pow``).  Every NVPTX GPU, every x86 CPU with
FMA3 (x86-64-v3) and every AArch64 CPU has FMA; on an x86 CPU without it LLVM
turns ``llvm.fma`` into a libm ``fma`` call, which is still correct but is
not vectorized.  After inlining, LLVM's loop vectorizer widens a loop calling
any of these functions (8 x f32 / 4 x f64 with AVX2).

The one exception is the large-argument path of sin/cos (|x| >= 2^18 for
f32, 2^40 for f64): a branch around a call to ``fg.<sin|cos>.large.<type>``.
On NVPTX that function is inlined (threads with small arguments skip it).
On the CPU it stays out of line, and the call names masked vector variants
``fg.<sin|cos>.large.<type>.v<2|4|8|16>`` (LLVM's vector function ABI,
``vector-function-abi-variant``): the loop vectorizer keeps the cheap path
vectorized and calls the variant once per vector iteration, which returns at
once unless some lane is large.  Computing the large path with selects in
every lane instead made a sin loop about 4x slower.

A kernel with very many calls (a fused chain of hundreds of ``tanh``) asks
for them out of line: ``emit_math(..., out_of_line=True)`` calls
``fg.<name>.<type>.outline``, a ``noinline`` function holding the inlined
body, tagged with unmasked vector variants ``fg.<name>.<type>.v<lanes>``,
each a loop over its lanes calling the inline function, which the loop
vectorizer widens (loop metadata: that width, no unrolling).  The lanes get
the instructions an inlined call gets, so the results are the same bits, and
LLVM optimises each function's body a handful of times instead of once per
call.  (NVPTX always inlines.)

A call whose arguments are the same at every element of a kernel's loop (a
scalar, such as Adam's bias correction ``beta ** t`` in its update of every
element) asks for the plain out-of-line function, without vector variants:
``emit_math(..., invariant=True)`` calls ``fg.<name>.<type>.outline``, which
LICM hoists out of the loop as it would the inlined body, so the kernel runs
at the same speed and gets the same bits, while LLVM optimises the body once,
not once per call (an f64 ``pow`` inlined twice was half of an Adam kernel's
compile time).

Algorithms (polynomial coefficients are our own minimax fits: a weighted
Remez exchange in mpmath minimising the relative error of the result on the
stated interval, coefficients rounded to the format one at a time with the
rest refitted):

* exp:   k = rint(x / ln2), r = x - k ln2 (Cody-Waite, ln2 split so that
         k ln2_hi is exact), exp(r) = 1 + r + r^2 Q(r) on |r| <= ln2/2, times
         2^k applied as two power-of-two factors: correctly scaled gradual
         underflow (denormal results, like numpy) and no spurious overflow.
* expm1: the exp reduction, then 2^k (1 + expm1(r)) - 1 evaluated at half
         scale as (2^(k-1) - 1/2) + 2^(k-1) r + ... with an exact Fast2Sum, so
         no cancellation error.
* log, log1p: x = 2^k m with m in [sqrt(1/2), sqrt(2)) by integer
         arithmetic on the bits (musl's trick), f = m - 1,
         log(1+f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f/(2+f) (fdlibm);
         log1p adds fdlibm's correction c/u for the rounding of u = 1 + x.
         Denormal inputs are scaled by 2^mant_bits first.
* sin, cos: for |x| < 2^18 (f32) or 2^40 (f64) k = rint(x 2/pi),
         r + r_lo = x - k pi/2 with pi/2 in three parts (fma steps, the first
         exact) (Cody-Waite).  Larger |x| = M 2^E (M the integer mantissa):
         Payne-Hanek in integer arithmetic, |x| 2/pi mod 4 = M W mod 4 where
         W is the window of 2/pi bits (128 bits for f32, 192 for f64) that
         still matters after scaling by 2^E, picked from 1344 stored bits by
         selects and a funnel shift (no memory table, so nothing to place in
         a GPU module); the product is rounded to the nearest quadrant and the
         rest, kept to 2^-62 (f32) or 2^-126 (f64) of a quadrant, becomes
         r + r_lo through f64 (double-double for f64).  The rest is never
         below 2^-62 quadrants for an f64 (2^-61.5 at the worst case,
         6381956970095103 2^797), so over 60 bits survive the cancellation.  Then an odd
         polynomial for sin(r), an even one for cos(r)
         (with fdlibm's compensation of 1 - r^2/2), r_lo applied to first
         order; k mod 4 picks sin/cos and the sign.
* tanh:  tanh|x| = T / (T + 2), T = expm1(2|x|) kept unrounded as a
         double-word, divided with one correction step; |x| capped where tanh
         rounds to 1.
* pow:   |x|^y = exp(y log|x|).  f32: this module's f64 log and exp, rounded
         once to f32.  f64: log|x| as a double-double (relative error about
         2^-62), y log|x| as a double-double whose low part enters the exp
         reduction.  C99's special cases are applied with selects at the end.
* erf:   |x| < 1: x + x Q(x^2); 1 <= |x| < 6: 1 - exp(-x^2) R(|x| - 7/2), with
         x^2 split exactly (fma) and its low part fed to the exp reduction; 1 from
         6 on (erf rounds to 1 from 5.93).  Both parts are evaluated and a select
         picks one.  Q and R are weighted least-squares fits at 400 Chebyshev
         nodes (mpmath, 60 digits), R weighted by exp(-x^2) so that the
         absolute error of erfc is below 2^-54.  f32: the same scheme in f32
         lanes with shorter fits (Q degree 6, R degree 9 around 5/2, the erfc
         part capped at 4 where f32 erf is 1; near-minimax fits against libm's
         f64 erf, coefficients rounded to f32).  Measured: f64 <= 1 ulp
         against mpmath; f32 <= 1 ulp on 30 million inputs of [-4.2, 4.2]
         (98.6 % correctly rounded).

Accuracy: the maximum distance in ulp to the correctly rounded result is 1 for
every function and type (f32 reference: numpy in float64; f64 reference:
numpy in 80-bit long double; tests/compiler/codegen/test_mathlib.py asserts <= 2):
exhaustively over all f32 inputs for the unary f32 functions (sin/cos over
|x| <= 1e4), and on ~10^6 random and edge inputs per function otherwise.
sin/cos are measured <= 1 ulp over the whole finite range of both types
(log-uniform samples up to the largest finite value, and the floats nearest
to multiples of pi/2, including the f64 worst case 6381956970095103 2^797);
pow up to the overflow/underflow thresholds (|y log x| <= 745).

Special values follow IEEE/C99 (and numpy): exp(-inf) = 0, exp(inf) = inf,
overflow gives inf, underflow gives denormals and then 0; log(0) = -inf,
log(x < 0) = nan, log(inf) = inf, denormal inputs are handled; log1p(-1) =
-inf; sin/cos(+-inf) = nan; tanh(+-inf) = erf(+-inf) = +-1; x itself for tiny x in sin,
tanh, expm1, log1p (signed zeros and denormals kept); a nan argument gives
nan, except pow(x, 0) = pow(1, y) = 1 (pow follows C99 throughout: signs for
negative bases and odd integral y, nan for negative bases and non-integral
y, +-0 and +-inf bases, infinite exponents).  On a GPU compiled with
flush-to-zero, denormal inputs and results become zeros.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import llvmlite.ir as ir

__all__ = ["MATH_FUNCTIONS", "emit_math"]

MATH_FUNCTIONS = frozenset({"exp", "expm1", "log", "log1p", "sin", "cos", "tanh", "pow", "erf"})

_ARITY = {"pow": 2}

_INF = float("inf")
_NAN = float("nan")


@dataclass(frozen=True)
class _Format:
    """Bit layout and algorithm constants of one IEEE binary format."""

    name: str
    ftype: ir.Type
    itype: ir.IntType
    mant_bits: int
    bias: int
    # ln2 = ln2_hi + ln2_lo where ln2_hi has enough trailing zero bits that
    # k*ln2_hi is exact for every k the reductions produce (Cephes expf for
    # f32, fdlibm for f64).
    ln2_hi: float
    ln2_lo: float
    log2e: float
    # exp input clamp: below exp_min the result is 0, above exp_max it is inf;
    # rint(x*log2e) stays within the range of two power-of-two factors.
    exp_min: float
    exp_max: float
    # exp(r) = 1 + r + r^2 * Q(r), minimax on |r| <= ln2/2.
    exp_poly: tuple
    # expm1(x) = -1 (after rounding) below expm1_min; x itself below tiny.
    expm1_min: float
    expm1_tiny: float
    # log(1+f) = f - f^2/2 + s*(f^2/2 + R), R = z * P(z), z = s^2,
    # s = f/(2+f), minimax on |s| <= (sqrt2 - 1)/(sqrt2 + 1).
    log_poly: tuple
    sqrt_half_bits: int
    min_normal: float
    # pi/2 = pio2[0] + pio2[1] + pio2[2], each the format rounding of the rest.
    pio2: tuple
    two_over_pi: float
    # sin(r) = r + r^3 * S(r^2), cos(r) = 1 - r^2/2 + r^4 * C(r^2), minimax on
    # |r| <= pi/4 + 0.01 (f32) or pi/4 + 0.001 (f64): the margin covers the
    # rounding of x*2/pi in the accurate range.
    sin_poly: tuple
    cos_poly: tuple
    sin_tiny: float
    # |x| >= trig_big takes the Payne-Hanek reduction, with a window of
    # trig_window_words 64-bit words of 2/pi bits (enough that the product
    # with the mantissa keeps ~60 bits after the worst cancellation).
    trig_big: float
    trig_window_words: int
    # tanh(x) rounds to +-1 beyond tanh_max.
    tanh_max: float


_F32 = _Format(
    name="f32",
    ftype=ir.FloatType(),
    itype=ir.IntType(32),
    mant_bits=23,
    bias=127,
    ln2_hi=0.693359375,
    ln2_lo=-2.12194440e-4,
    log2e=1.44269504088896341,
    exp_min=-104.0,
    exp_max=89.0,
    exp_poly=(0.49999994, 0.16666517, 0.041668102, 0.0083691925, 0.0013838903),
    expm1_min=-20.0,
    expm1_tiny=2.0**-26,
    log_poly=(0.66666776, 0.39977583, 0.2987083),
    sqrt_half_bits=0x3F3504F3,
    min_normal=2.0**-126,
    pio2=(float.fromhex("0x1.921fb6p+0"), float.fromhex("-0x1.777a5cp-25"),
          float.fromhex("-0x1.ee59dap-50")),
    two_over_pi=0.63661977236758134,
    sin_poly=(-0.16666654, 0.008332104, -0.00019507446),
    cos_poly=(0.041666646, -0.0013887294, 2.4429415e-05),
    sin_tiny=2.0**-12,
    trig_big=2.0**18,
    trig_window_words=2,
    tanh_max=10.0,
)

_F64 = _Format(
    name="f64",
    ftype=ir.DoubleType(),
    itype=ir.IntType(64),
    mant_bits=52,
    bias=1023,
    ln2_hi=float.fromhex("0x1.62e42fee00000p-1"),
    ln2_lo=float.fromhex("0x1.a39ef35793c76p-33"),
    log2e=float.fromhex("0x1.71547652b82fep+0"),
    exp_min=-746.0,
    exp_max=710.0,
    exp_poly=tuple(float.fromhex(c) for c in (
        "0x1.0000000000000p-1", "0x1.555555555555bp-3", "0x1.5555555555503p-5",
        "0x1.111111110ec5dp-7", "0x1.6c16c16c3048dp-10", "0x1.a01a01b37e3b4p-13",
        "0x1.a01a01368f6b7p-16", "0x1.71ddf020c5f0ep-19", "0x1.27e5b4465d3c2p-22",
        "0x1.af6be7f1e5496p-26", "0x1.1e3d2cf865017p-29")),
    expm1_min=-40.0,
    expm1_tiny=2.0**-54,
    log_poly=tuple(float.fromhex(c) for c in (
        "0x1.5555555555555p-1", "0x1.9999999999d10p-2", "0x1.24924924399adp-2",
        "0x1.c71c724b43a82p-3", "0x1.745ce1d40cf7ap-3", "0x1.3b202297cf1b0p-3",
        "0x1.0f676e42db4cbp-3", "0x1.0f0c6085f998fp-3")),
    sqrt_half_bits=0x3FE6A09E667F3BCD,
    min_normal=2.0**-1022,
    pio2=(float.fromhex("0x1.921fb54442d18p+0"), float.fromhex("0x1.1a62633145c07p-54"),
          float.fromhex("-0x1.f1976b7ed8fbcp-110")),
    two_over_pi=float.fromhex("0x1.45f306dc9c883p-1"),
    sin_poly=tuple(float.fromhex(c) for c in (
        "-0x1.5555555555555p-3", "0x1.1111111111069p-7", "-0x1.a01a019ffe523p-13",
        "0x1.71de3a33a5802p-19", "-0x1.ae642c51b49b0p-26", "0x1.6109bd7e558d5p-33",
        "-0x1.9ffd8128c1c2dp-41")),
    cos_poly=tuple(float.fromhex(c) for c in (
        "0x1.555555555554bp-5", "-0x1.6c16c16c15000p-10", "0x1.a01a019c8bab8p-16",
        "-0x1.27e4f7ee48660p-22", "0x1.1ee9d9287e387p-29", "-0x1.8fa4f7764cb1dp-37")),
    sin_tiny=2.0**-27,
    trig_big=2.0**40,
    trig_window_words=3,
    tanh_max=20.0,
)


def emit_math(builder: ir.IRBuilder, name: str, *args: ir.Value, out_of_line: bool = False,
              invariant: bool = False) -> ir.Value:
    """Emit ``name(*args)`` at the builder's position and return the result.

    ``name`` is one of MATH_FUNCTIONS; the arguments are scalar ``float`` or
    ``double`` values, all of the same type (``pow`` takes two).  The
    function ``fg.<name>.<f32|f64>`` is defined in ``builder.module`` the first
    time it is needed and reused afterwards.  ``out_of_line``: call it through
    its out-of-line form with vector variants (module doc; not on NVPTX). ``invariant``:
    the arguments are the same at every element of the loop around the call; call the
    out-of-line form without vector variants (module doc; not on NVPTX).
    """
    if name not in MATH_FUNCTIONS:
        raise ValueError(f"unknown math function {name!r}; expected one of {sorted(MATH_FUNCTIONS)}")
    arity = _ARITY.get(name, 1)
    if len(args) != arity:
        raise TypeError(f"{name} takes {arity} argument(s), got {len(args)}")
    fmt = _format_of(args[0].type)
    if any(a.type != fmt.ftype for a in args):
        raise TypeError(f"{name}: all arguments must have type {fmt.ftype}")
    fn = _math_function(builder.module, name, fmt)
    if _is_nvptx(builder.module):
        return builder.call(fn, args)
    if invariant:
        return builder.call(_noinline_function(builder.module, fn), args)
    if out_of_line:
        return _call_out_of_line(builder, fn, args)
    return builder.call(fn, args)


def _format_of(ty: ir.Type) -> _Format:
    if isinstance(ty, ir.FloatType):
        return _F32
    if isinstance(ty, ir.DoubleType):
        return _F64
    raise TypeError(f"math functions take float or double scalars, got {ty}")


def _math_function(module: ir.Module, name: str, fmt: _Format) -> ir.Function:
    symbol = f"fg.{name}.{fmt.name}"
    existing = module.globals.get(symbol)
    if existing is not None:
        return existing
    arity = _ARITY.get(name, 1)
    fn = ir.Function(module, ir.FunctionType(fmt.ftype, [fmt.ftype] * arity), symbol)
    fn.linkage = "internal"
    for attr in ("alwaysinline", "nounwind", "readnone"):
        fn.attributes.add(attr)
    ops = _Ops(ir.IRBuilder(fn.append_basic_block("entry")), fmt)
    ops.b.ret(_BODIES[name](ops, *fn.args))
    return fn


class _Ops:
    """Scalar arithmetic in one float format on top of an IRBuilder."""

    def __init__(self, builder: ir.IRBuilder, fmt: _Format):
        self.b = builder
        self.fmt = fmt

    # constants
    def const(self, value):
        return ir.Constant(self.fmt.ftype, value)

    def iconst(self, value):
        return ir.Constant(self.fmt.itype, value)

    def i32(self, value):
        return ir.Constant(ir.IntType(32), value)

    # arithmetic (no fast-math flags: LLVM keeps every rounding as written)
    def add(self, a, b):
        return self.b.fadd(a, b)

    def sub(self, a, b):
        return self.b.fsub(a, b)

    def mul(self, a, b):
        return self.b.fmul(a, b)

    def div(self, a, b):
        return self.b.fdiv(a, b)

    def neg(self, a):
        return self.b.fneg(a)

    def fma(self, a, b, c):
        """a*b + c with a single rounding (needed for exact products)."""
        return self._intrinsic("llvm.fma", 3, a, b, c)

    def muladd(self, a, b, c):
        """a*b + c, fused or not as the target prefers (polynomials)."""
        return self._intrinsic("llvm.fmuladd", 3, a, b, c)

    def horner(self, x, coeffs):
        """coeffs[0] + x*coeffs[1] + x^2*coeffs[2] + ..."""
        acc = self.const(coeffs[-1])
        for c in reversed(coeffs[:-1]):
            acc = self.muladd(acc, x, self.const(c))
        return acc

    def abs(self, a):
        return self._intrinsic("llvm.fabs", 1, a)

    def floor(self, a):
        return self._intrinsic("llvm.floor", 1, a)

    def rint(self, a):
        return self._intrinsic("llvm.rint", 1, a)

    def copysign(self, mag, sign):
        return self._intrinsic("llvm.copysign", 2, mag, sign)

    # comparisons and selection; ordered comparisons are false for nan
    def cmp(self, op, a, b):
        return self.b.fcmp_ordered(op, a, b)

    def is_nan(self, a, b=None):
        return self.b.fcmp_unordered("uno", a, a if b is None else b)

    def select(self, cond, a, b):
        return self.b.select(cond, a, b)

    def clamp(self, x, lo, hi):
        """min(max(x, lo), hi) where nan maps to hi; callers restore nan."""
        below_hi = self.select(self.cmp("<", x, self.const(hi)), x, self.const(hi))
        return self.select(self.cmp(">", below_hi, self.const(lo)), below_hi, self.const(lo))

    # bit manipulation
    def to_bits(self, a):
        return self.b.bitcast(a, self.fmt.itype)

    def from_bits(self, i):
        return self.b.bitcast(i, self.fmt.ftype)

    def to_i32(self, integral):
        """Convert an integral float known to fit in i32."""
        return self.b.fptosi(integral, ir.IntType(32))

    def from_i32(self, i):
        return self.b.sitofp(i, self.fmt.ftype)

    def pow2(self, k):
        """2^k for an i32 k in the normal exponent range."""
        biased = self.b.add(k, self.i32(self.fmt.bias))
        if self.fmt.itype.width != 32:
            biased = self.b.sext(biased, self.fmt.itype)
        return self.from_bits(self.b.shl(biased, self.iconst(self.fmt.mant_bits)))

    def _intrinsic(self, name, nargs, *args):
        ftype = self.fmt.ftype
        symbol = f"{name}.{ftype.intrinsic_name}"
        module = self.b.module
        fn = module.globals.get(symbol)
        if fn is None:
            fn = ir.Function(module, ir.FunctionType(ftype, [ftype] * nargs), symbol)
        return self.b.call(fn, args)


# ---------------------------------------------------------------- error-free transformations

def _two_sum(o: _Ops, a, b):
    """(s, e) with s + e == a + b exactly, any magnitudes (Knuth's TwoSum)."""
    s = o.add(a, b)
    b_virtual = o.sub(s, a)
    a_virtual = o.sub(s, b_virtual)
    return s, o.add(o.sub(a, a_virtual), o.sub(b, b_virtual))


def _two_sum_ordered(o: _Ops, a, b):
    """(s, e) with s + e == a + b exactly, for |a| >= |b| or a == 0 (Fast2Sum)."""
    s = o.add(a, b)
    return s, o.sub(b, o.sub(s, a))


def _two_prod(o: _Ops, a, b):
    """(p, e) with p + e == a * b exactly."""
    p = o.mul(a, b)
    return p, o.fma(a, b, o.neg(p))


# ---------------------------------------------------------------- exp family

def _exp_reduction(o: _Ops, x, lo=None):
    """(k, r, q) with exp(x + lo) ~= 2^k (1 + r + q), |r| <= ln2/2, |q| < r^2.

    x must be clamped to [exp_min, exp_max]; lo is a tiny addend or None.
    k is an integral float.
    """
    f = o.fmt
    kf = o.rint(o.mul(x, o.const(f.log2e)))
    r_hi = o.sub(x, o.mul(kf, o.const(f.ln2_hi)))  # exact: exact product, Sterbenz
    tail = o.neg(o.mul(kf, o.const(f.ln2_lo)))
    if lo is not None:
        tail = o.add(tail, lo)
    r, dr = _two_sum_ordered(o, r_hi, tail)
    # exp(r + dr) - 1 - r ~= r^2 Q(r) + dr
    return kf, r, o.muladd(o.mul(r, r), o.horner(r, f.exp_poly), dr)


def _exp_reduced(o: _Ops, x, lo=None):
    """exp(x + lo) for x clamped to [exp_min, exp_max] (lo tiny or None)."""
    kf, r, q = _exp_reduction(o, x, lo)
    p = o.add(o.const(1.0), o.add(r, q))
    # 2^k as two factors: both are normal for every k of the clamped range,
    # and only the second product can round (gradual underflow).
    k = o.to_i32(kf)
    k1 = o.b.ashr(k, o.i32(1))
    k2 = o.b.sub(k, k1)
    return o.mul(o.mul(p, o.pow2(k1)), o.pow2(k2))


def _exp(o: _Ops, x):
    result = _exp_reduced(o, o.clamp(x, o.fmt.exp_min, o.fmt.exp_max))
    return o.select(o.is_nan(x), x, result)


def _expm1_halves(o: _Ops, x):
    """(s, e) with expm1(x) ~= 2 (s + e), |e| <= |s|, for x in [expm1_min, exp_max]."""
    kf, r, q = _exp_reduction(o, x)
    # expm1(x) = 2 (t - 1/2 + t r + t q) with t = 2^(k-1): t - 1/2 and t r
    # are exact and |t - 1/2| >= |t r| (or t - 1/2 == 0), so Fast2Sum gives
    # their sum exactly.  Working at half scale keeps t finite for k = 2^bits
    # (results just below the overflow threshold).
    t = o.pow2(o.b.sub(o.to_i32(kf), o.i32(1)))
    s, err = _two_sum_ordered(o, o.sub(t, o.const(0.5)), o.mul(t, r))
    return s, o.muladd(t, q, err)


def _expm1(o: _Ops, x):
    f = o.fmt
    s, e = _expm1_halves(o, o.clamp(x, f.expm1_min, f.exp_max))
    result = o.mul(o.const(2.0), o.add(s, e))
    result = o.select(o.cmp("<", o.abs(x), o.const(f.expm1_tiny)), x, result)
    return o.select(o.is_nan(x), x, result)


def _tanh(o: _Ops, x):
    # tanh|x| = T / (T + 2) = h / (h + 1) with T = expm1(2|x|) = 2h: the
    # relative error of T is damped by 2 / (T + 2) <= 1, and the quotient is
    # formed from h as a double-word h + h_lo with one correction step, so
    # the result is within about half an ulp of rounding.
    two_max = 2.0 * o.fmt.tanh_max
    doubled = o.add(o.abs(x), o.abs(x))
    capped = o.select(o.cmp("<", doubled, o.const(two_max)), doubled, o.const(two_max))
    h, h_lo = _two_sum_ordered(o, *_expm1_halves(o, capped))
    d, d_lo = _two_sum(o, h, o.const(1.0))
    d_lo = o.add(d_lo, h_lo)
    inv = o.div(o.const(1.0), d)
    q = o.mul(h, inv)
    residual = o.sub(o.add(o.fma(o.neg(q), d, h), h_lo), o.mul(q, d_lo))
    result = o.copysign(o.muladd(residual, inv, q), x)
    return o.select(o.is_nan(x), x, result)


# ---------------------------------------------------------------- log family

def _split_exponent(o: _Ops, x):
    """x = 2^k * (1 + f) with 1 + f in [sqrt(1/2), sqrt(2)); x positive normal.

    Returns (k as i32, f).  Adding one_bits - sqrt_half_bits to the bits
    carries into the exponent exactly when the mantissa is >= sqrt(2)
    (musl's logf/log reduction); f = m - 1 is exact.
    """
    f = o.fmt
    one_bits = f.bias << f.mant_bits
    mant_mask = (1 << f.mant_bits) - 1
    bits = o.b.add(o.to_bits(x), o.iconst(one_bits - f.sqrt_half_bits))
    k = o.b.sub(o.b.lshr(bits, o.iconst(f.mant_bits)), o.iconst(f.bias))
    if f.itype.width != 32:
        k = o.b.trunc(k, ir.IntType(32))
    m_bits = o.b.add(o.b.and_(bits, o.iconst(mant_mask)), o.iconst(f.sqrt_half_bits))
    return k, o.sub(o.from_bits(m_bits), o.const(1.0))


def _split_positive(o: _Ops, x):
    """_split_exponent for any positive finite x, denormals included."""
    f = o.fmt
    denormal = o.cmp("<", x, o.const(f.min_normal))
    scaled = o.select(denormal, o.mul(x, o.const(2.0**f.mant_bits)), x)
    k, frac = _split_exponent(o, scaled)
    k = o.b.sub(k, o.b.select(denormal, o.i32(f.mant_bits), o.i32(0)))
    return k, frac


def _log_combine(o: _Ops, kf, f, c=None):
    """k*ln2 + log(1+f) + c for f in [sqrt(1/2)-1, sqrt(2)-1] (fdlibm's order)."""
    fmt = o.fmt
    s = o.div(f, o.add(o.const(2.0), f))
    z = o.mul(s, s)
    big_r = o.mul(z, o.horner(z, fmt.log_poly))
    hfsq = o.mul(o.const(0.5), o.mul(f, f))
    lo = o.mul(kf, o.const(fmt.ln2_lo))
    if c is not None:
        lo = o.add(lo, c)
    y = o.muladd(s, o.add(hfsq, big_r), lo)
    y = o.add(o.sub(y, hfsq), f)
    return o.add(y, o.mul(kf, o.const(fmt.ln2_hi)))  # exact product


def _log(o: _Ops, x):
    k, f = _split_positive(o, x)
    y = _log_combine(o, o.from_i32(k), f)
    finite = o.select(o.cmp("<", x, o.const(_INF)), y, o.const(_INF))
    nonpositive = o.select(o.cmp("==", x, o.const(0.0)), o.const(-_INF), o.const(_NAN))
    return o.select(o.cmp(">", x, o.const(0.0)), finite, nonpositive)


def _log1p(o: _Ops, x):
    one = o.const(1.0)
    u = o.add(one, x)
    k, f_u = _split_exponent(o, u)
    # fdlibm's correction c = (1 + x) - u, relative to u: log(1+x) ~ log(u) + c/u
    k_ge_2 = o.b.icmp_signed(">=", k, o.i32(2))
    c = o.select(k_ge_2, o.sub(one, o.sub(u, x)), o.sub(x, o.sub(u, one)))
    c = o.div(c, u)
    # when u is already in the primary range, use x itself (exact f, c = 0)
    primary = o.b.icmp_signed("==", k, o.i32(0))
    f = o.select(primary, x, f_u)
    c = o.select(primary, o.const(0.0), c)
    y = _log_combine(o, o.from_i32(k), f, c)
    y = o.select(o.cmp("==", x, o.const(0.0)), x, y)  # keeps -0
    finite = o.select(o.cmp("<", x, o.const(_INF)), y, o.const(_INF))
    below = o.select(o.cmp("==", x, o.const(-1.0)), o.const(-_INF), o.const(_NAN))
    return o.select(o.cmp(">", x, o.const(-1.0)), finite, below)


# ---------------------------------------------------------------- sin / cos

# The first 1344 bits of 2/pi = 0.a2f9836e4e44... (hexadecimal), enough for the
# Payne-Hanek window of the largest f64 exponent.
_TWO_OVER_PI_HEX = (
    "a2f9836e4e441529fc2757d1f534ddc0db6295993c439041fe5163abdebbc561b7246e3a424dd2e0"
    "06492eea09d1921cfe1deb1cb129a73ee88235f52ebb4484e99c7026b45f7e413991d639835339f4"
    "9c845f8bbdf9283b1ff897ffde05980fef2f118b5a0a6d1f6d367ecf27cb09b74f463f669e5fea2d"
    "7527bac7ebe5f17b3d0739f78a5292ea6bfb5fb11f8d5d0856033046fc7b6babf0cfbc209af4361d"
    "a9e391615ee61b08")

_I64 = ir.IntType(64)
_WORD_MASK = (1 << 64) - 1


@dataclass(frozen=True)
class _TrigTable:
    """Payne-Hanek constants of one format.

    ``words`` are 64-bit words of the bit string ``zero_bits`` zeros, then the
    bits of 2/pi: the bit of 2/pi worth 2^-i sits at position
    ``zero_bits + i - 1``, so for |x| = M 2^E (M the integer mantissa) the
    window that matters starts at ``E + zero_bits - 2``, which is 0 for
    |x| = trig_big.
    """

    zero_bits: int
    words: tuple


def _trig_table(fmt: _Format) -> _TrigTable:
    min_exponent = round(fmt.trig_big).bit_length() - 1 - fmt.mant_bits
    zero_bits = 2 - min_exponent
    max_start = fmt.bias - fmt.mant_bits + zero_bits - 2  # largest finite exponent
    count = (max_start >> 6) + fmt.trig_window_words + 1
    total_bits = zero_bits + 4 * len(_TWO_OVER_PI_HEX)
    assert 64 * count <= total_bits, "extend _TWO_OVER_PI_HEX"
    bits = int(_TWO_OVER_PI_HEX, 16)
    words = tuple((bits >> (total_bits - 64 * (j + 1))) & _WORD_MASK for j in range(count))
    return _TrigTable(zero_bits, words)


_TRIG_TABLES = {fmt.name: _trig_table(fmt) for fmt in (_F32, _F64)}


def _i64(value):
    return ir.Constant(_I64, value)


def _fshl(o: _Ops, hi, lo, shift):
    """The top 64 bits of (hi:lo) << shift, shift in [0, 63]."""
    module = o.b.module
    fn = module.globals.get("llvm.fshl.i64")
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(_I64, [_I64] * 3), "llvm.fshl.i64")
    return o.b.call(fn, [hi, lo, shift])


def _bit_window(o: _Ops, words, start, count):
    """``count`` 64-bit words of the bit string ``words`` from bit ``start`` on.

    A barrel shifter of selects over the constant words (by 2^b words for each
    bit b of start / 64), then a funnel shift by start mod 64: no memory
    table, so the GPU module needs no global.
    """
    b = o.b
    word_index = b.lshr(start, _i64(6))
    stages = max(1, (len(words) - count - 1).bit_length())
    padded = list(words) + [0] * (count + (1 << stages) - len(words))
    cells = [_i64(w) for w in padded]
    for bit in reversed(range(stages)):
        step = 1 << bit
        taken = b.icmp_unsigned("!=", b.and_(word_index, _i64(step)), _i64(0))
        cells = [b.select(taken, cells[i + step], cells[i]) for i in range(count + step)]
    shift = b.and_(start, _i64(63))
    return [_fshl(o, cells[i], cells[i + 1], shift) for i in range(count)]


def _mul_64x64(o: _Ops, a, c):
    """(hi, lo) of the 128-bit product of two u64, from 32-bit halves.

    Each partial product is a mul of zero-extended 32-bit values, which
    vectorizes (pmuludq) where an i128 multiply would not.
    """
    b = o.b
    half, mask = _i64(32), _i64(0xFFFFFFFF)
    a_lo, a_hi = b.and_(a, mask), b.lshr(a, half)
    c_lo, c_hi = b.and_(c, mask), b.lshr(c, half)
    ll, lh = b.mul(a_lo, c_lo), b.mul(a_lo, c_hi)
    hl, hh = b.mul(a_hi, c_lo), b.mul(a_hi, c_hi)
    mid = b.add(b.add(b.lshr(ll, half), b.and_(lh, mask)), b.and_(hl, mask))
    lo = b.or_(b.shl(mid, half), b.and_(ll, mask))
    hi = b.add(b.add(hh, b.lshr(lh, half)), b.add(b.lshr(hl, half), b.lshr(mid, half)))
    return hi, lo


def _mantissa_times_window(o: _Ops, mant, window):
    """The top len(window)-1 words of mant * window mod 2^(64 len(window)).

    window is most significant word first; the lowest word of the product and
    the carries out of it are dropped (an error below 2 units of the last
    word returned).
    """
    b = o.b
    n = len(window)
    result = [None] * (n - 1)
    carry = None
    high_below = _mul_64x64(o, mant, window[n - 1])[0]
    for i in reversed(range(n - 1)):
        if i == 0:
            low, high = b.mul(mant, window[0]), None  # only needed mod 2^64
        else:
            high, low = _mul_64x64(o, mant, window[i])
        word = b.add(low, high_below)
        carry_out = b.icmp_unsigned("<", word, low)
        if carry is not None:
            with_carry = b.add(word, b.zext(carry, _I64))
            carry_out = b.or_(carry_out, b.icmp_unsigned("<", with_carry, word))
            word = with_carry
        result[i], carry, high_below = word, carry_out, high
    return result


def _fixed_to_double_double(d: _Ops, frac, lower):
    """frac + lower 2^-64 as a double-double (h, l); frac signed, lower unsigned or None.

    The conversion of frac rounds; the integer remainder of that rounding is
    exact and joins the low part.
    """
    hi = d.b.sitofp(frac, d.fmt.ftype)
    if lower is None:
        return hi, d.const(0.0)
    rem = d.b.sub(frac, d.b.fptosi(hi, _I64))  # |rem| <= 2^9, exact
    lo = d.muladd(d.b.uitofp(lower, d.fmt.ftype), d.const(2.0**-64), d.b.sitofp(rem, d.fmt.ftype))
    return _two_sum_ordered(d, hi, lo)


def _quarter_turns_to_radians(d: _Ops, h, lo):
    """(h + lo) 2^-62 pi/2 as a double-double, in f64."""
    pio2 = _F64.pio2
    h = d.mul(h, d.const(2.0**-62))
    lo = d.mul(lo, d.const(2.0**-62))
    r = d.mul(h, d.const(pio2[0]))
    err = d.fma(h, d.const(pio2[0]), d.neg(r))
    err = d.add(err, d.muladd(h, d.const(pio2[1]), d.mul(lo, d.const(pio2[0]))))
    return _two_sum_ordered(d, r, err)


def _payne_hanek_reduction(o: _Ops, x: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
    """(q, r, r_lo) with x = q pi/2 + r + r_lo mod 2 pi, |r| <= pi/4, q an i32 in [0, 4).

    For finite |x| >= trig_big; smaller |x| give finite garbage (the window
    start is clamped to 0).  With |x| = M 2^E, the bits of 2/pi worth 4 or more after
    scaling by 2^E contribute multiples of 4 to M 2^E 2/pi, so |x| 2/pi mod 4 is
    M times a window of 2/pi bits, in fixed point.
    """
    f = o.fmt
    table = _TRIG_TABLES[f.name]
    b = o.b
    bits = o.to_bits(o.abs(x))
    if f.itype.width != 64:
        bits = b.zext(bits, _I64)
    mant = b.or_(b.and_(bits, _i64((1 << f.mant_bits) - 1)), _i64(1 << f.mant_bits))
    exponent_offset = table.zero_bits - 2 - f.bias - f.mant_bits
    start = b.add(b.lshr(bits, _i64(f.mant_bits)), _i64(exponent_offset))
    start = b.select(b.icmp_signed("<", start, _i64(0)), _i64(0), start)
    window = _bit_window(o, table.words, start, f.trig_window_words)
    product = _mantissa_times_window(o, mant, window)
    # product[0] is |x| 2/pi mod 4 in units of 2^-62: round to the nearest quadrant
    quadrant = b.lshr(b.add(product[0], _i64(1 << 61)), _i64(62))
    frac = b.sub(product[0], b.shl(quadrant, _i64(62)))
    d = _Ops(b, _F64)
    r, r_lo = _quarter_turns_to_radians(d, *_fixed_to_double_double(d, frac, (product + [None])[1]))
    if f is _F32:
        r32 = b.fptrunc(r, f.ftype)
        r_lo = b.fptrunc(d.add(d.sub(r, b.fpext(r32, d.fmt.ftype)), r_lo), f.ftype)
        r = r32
    q = b.trunc(quadrant, ir.IntType(32))
    negative = o.cmp("<", x, o.const(0.0))  # sin(-x) = -sin(x): quadrant -q, remainder -r
    q = b.select(negative, b.and_(b.sub(o.i32(0), q), o.i32(3)), q)
    return q, o.select(negative, o.neg(r), r), o.select(negative, o.neg(r_lo), r_lo)


def _cody_waite_reduction(o: _Ops, x: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
    """(q, r, r_lo) as _payne_hanek_reduction, accurate for |x| < trig_big."""
    f = o.fmt
    kf = o.rint(o.mul(x, o.const(f.two_over_pi)))
    neg_k = o.neg(kf)
    # r + r_lo = x - k pi/2: the first step is exact while k pi/2 has few
    # enough bits, the second is a TwoSum of an exact product, and the third
    # part of pi/2 only matters in r_lo.
    r1 = o.fma(neg_k, o.const(f.pio2[0]), x)
    p, p_lo = _two_prod(o, neg_k, o.const(f.pio2[1]))
    r, r_lo = _two_sum(o, r1, p)
    r_lo = o.add(r_lo, o.muladd(neg_k, o.const(f.pio2[2]), p_lo))
    # quadrant k mod 4 computed in floating point: exact for any integral kf
    quarter = o.floor(o.mul(kf, o.const(0.25)))
    q = o.to_i32(o.sub(kf, o.mul(quarter, o.const(4.0))))
    return q, r, r_lo


def _sin_or_cos(o: _Ops, x, quadrant_offset):
    """sin(x) (offset 0) or cos(x) = sin(x + pi/2) (offset 1)."""
    finite = o.cmp("<", o.abs(x), o.const(_INF))
    xs = o.select(finite, x, o.const(0.0))  # no nan/inf into the reductions
    v = _sin_or_cos_reduced(o, *_cody_waite_reduction(o, xs), quadrant_offset)
    big = o.cmp(">=", o.abs(xs), o.const(o.fmt.trig_big))
    v = _replace_where_large(o, big, v, xs, quadrant_offset)
    return o.select(finite, v, o.const(_NAN))


def _replace_where_large(o: _Ops, big, v, x, quadrant_offset):
    """v, or where ``big`` the Payne-Hanek result: a branch around a call.

    A branch, not a select, so the large-argument code only runs for large
    arguments.  On the CPU the callee stays out of line and the call carries
    masked vector variants (see _add_vector_variants): the loop vectorizer
    then keeps the cheap path vectorized and calls the variant, which returns
    at once unless a lane is large.  On NVPTX the callee is inlined and the
    branch is taken only by threads with large arguments.
    """
    module = o.b.module
    fn = _large_trig_function(module, o.fmt, quadrant_offset)
    entry = o.b.block
    large = o.b.append_basic_block("large")
    done = o.b.append_basic_block("done")
    o.b.cbranch(big, large, done)
    o.b.position_at_end(large)
    v_large = o.b.call(fn, [x])
    if not _is_nvptx(module):
        _add_vector_variants(module, fn, v_large)
    o.b.branch(done)
    o.b.position_at_end(done)
    phi = o.b.phi(o.fmt.ftype)
    phi.add_incoming(v, entry)
    phi.add_incoming(v_large, large)
    return phi


def _is_nvptx(module: ir.Module) -> bool:
    return str(module.triple).startswith("nvptx")


def _large_trig_function(module: ir.Module, fmt: _Format, quadrant_offset: int) -> ir.Function:
    """``fg.<sin|cos>.large.<fmt>``: sin/cos through the Payne-Hanek reduction."""
    symbol = f"fg.{('sin', 'cos')[quadrant_offset]}.large.{fmt.name}"
    existing = module.globals.get(symbol)
    if existing is not None:
        return existing
    fn = ir.Function(module, ir.FunctionType(fmt.ftype, [fmt.ftype]), symbol)
    fn.linkage = "internal"
    inline = "alwaysinline" if _is_nvptx(module) else "noinline"
    for attr in (inline, "nounwind", "readnone"):
        fn.attributes.add(attr)
    o = _Ops(ir.IRBuilder(fn.append_basic_block("entry")), fmt)
    (x,) = fn.args
    o.b.ret(_sin_or_cos_reduced(o, *_payne_hanek_reduction(o, x), quadrant_offset))
    return fn


_VECTOR_LANES = (2, 4, 8, 16)  # SSE f64 ... AVX-512 f32


def _add_vector_variants(module: ir.Module, fn: ir.Function, call) -> None:
    """Tag ``call`` with masked vector variants of ``fn`` (LLVM's vector function ABI).

    Without a vector variant the loop vectorizer refuses a loop containing a
    call.  With one, it calls the variant once per vector iteration with the
    lanes' mask.  The variants are external so that global dead-code
    elimination, which runs before the vectorizer, keeps them.
    """
    names = [_masked_vector_variant(module, fn, lanes).name for lanes in _VECTOR_LANES]
    mappings = ",".join(f"_ZGV_LLVM_M{lanes}v_{fn.name}({name})" for lanes, name in zip(_VECTOR_LANES, names))
    # llvmlite only accepts attribute names it knows; string attributes pass
    # through its set unchanged
    set.add(call.attributes, f'"vector-function-abi-variant"="{mappings}"')


def _masked_vector_variant(module: ir.Module, fn: ir.Function, lanes: int) -> ir.Function:
    """``<lanes x T> fn.v<lanes>(<lanes x T> x, <lanes x i1> mask)``: fn per lane if any mask bit is set."""
    symbol = f"{fn.name}.v{lanes}"
    existing = module.globals.get(symbol)
    if existing is not None:
        return existing
    vty = ir.VectorType(fn.function_type.return_type, lanes)
    vec = ir.Function(module, ir.FunctionType(vty, [vty, ir.VectorType(ir.IntType(1), lanes)]), symbol)
    x, mask = vec.args
    b = ir.IRBuilder(vec.append_basic_block("entry"))
    work, skip = vec.append_basic_block("work"), vec.append_basic_block("skip")
    mask_bits = ir.IntType(lanes)
    b.cbranch(b.icmp_unsigned("!=", b.bitcast(mask, mask_bits), mask_bits(0)), work, skip)
    b.position_at_end(skip)
    b.ret(ir.Constant(vty, None))  # every lane masked off: the caller ignores them
    b.position_at_end(work)
    result = ir.Constant(vty, None)
    for i in range(lanes):
        lane = ir.IntType(32)(i)
        result = b.insert_element(result, b.call(fn, [b.extract_element(x, lane)]), lane)
    b.ret(result)
    return vec


def _call_out_of_line(builder: ir.IRBuilder, fn: ir.Function, args) -> ir.Value:
    """A call of ``<fn>.outline`` tagged with unmasked vector variants of it (LLVM's vector
    function ABI), so the loop vectorizer still widens the calling loop."""
    call = builder.call(_out_of_line_function(builder.module, fn), args)
    # llvmlite only accepts attribute names it knows; string attributes pass
    # through its set unchanged
    set.add(call.attributes, _variants_attribute(fn.name, len(fn.args)))
    return call


def _out_of_line_function(module: ir.Module, fn: ir.Function) -> ir.Function:
    """``<fn>.outline`` (_noinline_function) with its vector variants ``<fn>.v<lanes>``."""
    wrapper = _noinline_function(module, fn)
    for lanes in _VECTOR_LANES:
        _vector_variant(module, fn, lanes)
    return wrapper


def _noinline_function(module: ir.Module, fn: ir.Function) -> ir.Function:
    """``<fn>.outline``: ``fn`` inlined into a function that is itself never inlined, defined
    once per module."""
    symbol = f"{fn.name}.outline"
    existing = module.globals.get(symbol)
    if existing is not None:
        return existing
    wrapper = ir.Function(module, fn.function_type, symbol)
    wrapper.linkage = "internal"
    for attr in ("noinline", "nounwind", "readnone"):
        wrapper.attributes.add(attr)
    b = ir.IRBuilder(wrapper.append_basic_block("entry"))
    b.ret(b.call(fn, wrapper.args))
    return wrapper


@functools.lru_cache(maxsize=None)
def _variants_attribute(name: str, arity: int) -> str:
    """The call-site attribute mapping ``<name>.outline`` to its vector variants."""
    params = "v" * arity
    mappings = ",".join(f"_ZGV_LLVM_N{lanes}{params}_{name}.outline({name}.v{lanes})" for lanes in _VECTOR_LANES)
    return f'"vector-function-abi-variant"="{mappings}"'


def _vector_variant(module: ir.Module, fn: ir.Function, lanes: int) -> ir.Function:
    """``<lanes x T> fn.v<lanes>(<lanes x T> ...)``: ``fn`` on every lane. External, as the
    masked variants are (global dead-code elimination runs before the vectorizer)."""
    symbol = f"{fn.name}.v{lanes}"
    existing = module.globals.get(symbol)
    if existing is not None:
        return existing
    vty = ir.VectorType(fn.function_type.return_type, lanes)
    vec = ir.Function(module, ir.FunctionType(vty, [vty] * len(fn.args)), symbol)
    b = ir.IRBuilder(vec.append_basic_block("entry"))
    b.ret((_each_lane_unrolled if lanes == 2 else _each_lane_in_a_loop)(b, fn, vec.args, vty))
    return vec


def _each_lane_unrolled(b: ir.IRBuilder, fn: ir.Function, args, vty: ir.VectorType) -> ir.Value:
    """``fn`` on each lane of ``args``, one call per lane (two lanes: SSE's f64 vectors)."""
    result = ir.Constant(vty, None)
    for i in range(vty.count):
        lane = ir.IntType(32)(i)
        result = b.insert_element(result, b.call(fn, [b.extract_element(a, lane) for a in args]), lane)
    return result


def _each_lane_in_a_loop(b: ir.IRBuilder, fn: ir.Function, args, vty: ir.VectorType) -> ir.Value:
    """``fn`` on each lane of ``args``: a loop over the lanes (through stack arrays) that the
    loop vectorizer widens to one iteration of ``vty``, as it widens a kernel calling ``fn``
    inline, so the lanes get the very instructions an inlined call gets. (Two lanes are
    left to _each_lane_unrolled: SROA turns their arrays into values the vectorizer refuses.)"""
    ty, lanes, i64 = vty.element, vty.count, ir.IntType(64)
    arrays = [b.alloca(ir.ArrayType(ty, lanes)) for _ in range(len(args) + 1)]
    for a, array in zip(args, arrays):
        b.store(a, b.bitcast(array, vty.as_pointer()))
    entry = b.block
    head, body, done = (b.function.append_basic_block(s) for s in ("head", "body", "done"))
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(i64, "lane")
    i.add_incoming(i64(0), entry)
    b.cbranch(b.icmp_signed("<", i, i64(lanes)), body, done)
    b.position_at_end(body)
    at = lambda array: b.gep(array, [i64(0), i], inbounds=True)
    b.store(b.call(fn, [b.load(at(array), typ=ty) for array in arrays[:-1]]), at(arrays[-1]))
    i.add_incoming(b.add(i, i64(1), flags=("nsw", "nuw")), body)
    b.branch(head).set_metadata("llvm.loop", _vectorize_loop(b.module, lanes))
    b.position_at_end(done)
    return b.load(b.bitcast(arrays[-1], vty.as_pointer()))


def _vectorize_loop(module: ir.Module, width: int) -> ir.values.MDValue:
    """A loop ID (which names itself first): vectorize ``width`` wide, never unroll (the full
    unroller would otherwise take a short loop before the vectorizer sees it)."""
    options = [module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")]),
               module.add_metadata([ir.MetaDataString(module, "llvm.loop.vectorize.width"), ir.IntType(32)(width)])]
    loop_id = ir.values.MDValue(module, options, name=str(len(module.metadata)))
    loop_id.operands = (loop_id, *options)      # llvmlite has no self-reference of its own
    return loop_id


def _sin_or_cos_reduced(o: _Ops, q, r, r_lo, quadrant_offset):
    """sin (offset 0) or cos (offset 1) of q pi/2 + r + r_lo."""
    f = o.fmt
    q = o.b.add(q, o.i32(quadrant_offset))
    z = o.mul(r, r)
    hz = o.mul(o.const(0.5), z)
    # sin(r + r_lo) = r + r^3 S(r^2) + r_lo (1 - r^2/2)
    sin_corr = o.muladd(o.neg(r_lo), hz, r_lo)
    sin_r = o.add(r, o.muladd(o.mul(r, z), o.horner(z, f.sin_poly), sin_corr))
    # cos(r + r_lo) = w + ((1 - w) - r^2/2 + r^4 C(r^2) - r r_lo), w = 1 - r^2/2
    # (the compensation of 1 - r^2/2 is fdlibm's)
    w = o.sub(o.const(1.0), hz)
    cos_corr = o.muladd(o.neg(r), r_lo, o.sub(o.sub(o.const(1.0), w), hz))
    cos_r = o.add(w, o.muladd(o.mul(z, z), o.horner(z, f.cos_poly), cos_corr))
    use_cos = o.b.icmp_unsigned("!=", o.b.and_(q, o.i32(1)), o.i32(0))
    negate = o.b.icmp_unsigned("!=", o.b.and_(q, o.i32(2)), o.i32(0))
    v = o.select(use_cos, cos_r, sin_r)
    return o.select(negate, o.neg(v), v)


def _sin(o: _Ops, x):
    v = _sin_or_cos(o, x, 0)
    return o.select(o.cmp("<", o.abs(x), o.const(o.fmt.sin_tiny)), x, v)


def _cos(o: _Ops, x):
    return _sin_or_cos(o, x, 1)


# ---------------------------------------------------------------- pow

def _pow_special_cases(o: _Ops, x, y, generic):
    """C99 pow special cases applied on top of generic = |x|^y."""
    zero, one, inf = o.const(0.0), o.const(1.0), o.const(_INF)
    ax, ay = o.abs(x), o.abs(y)
    y_neg = o.cmp("<", y, zero)
    y_int = o.cmp("==", o.floor(y), y)  # true for +-inf, false for nan
    half = o.mul(y, o.const(0.5))
    y_odd = o.b.and_(y_int, o.cmp("!=", o.floor(half), half))
    r = generic
    r = o.select(o.cmp("==", ax, zero), o.select(y_neg, inf, zero), r)
    r = o.select(o.cmp("==", ax, inf), o.select(y_neg, zero, inf), r)
    grows = o.b.icmp_unsigned("==", o.cmp("<", ax, one), y_neg)  # |x|^(+-inf) = inf
    inf_y = o.select(o.cmp("==", ax, one), one, o.select(grows, inf, zero))
    r = o.select(o.cmp("==", ay, inf), inf_y, r)
    r = o.select(y_odd, o.copysign(r, x), r)  # negative x (and -0, -inf), odd y
    finite_neg_x = o.b.and_(o.cmp("<", x, zero), o.cmp(">", x, o.const(-_INF)))
    r = o.select(o.b.and_(finite_neg_x, o.b.not_(y_int)), o.const(_NAN), r)
    r = o.select(o.is_nan(x, y), o.add(x, y), r)
    return o.select(o.b.or_(o.cmp("==", y, zero), o.cmp("==", x, one)), one, r)


def _pow_f32(o: _Ops, x, y):
    # |x|^y via this module's f64 log and exp: their error (about
    # |y log x| 2^-52 relative, below 2^-45 wherever the f32 result is finite
    # and nonzero) is far below an f32 ulp, so only the final rounding counts.
    d = _Ops(o.b, _F64)
    ax = o.b.fpext(o.abs(x), d.fmt.ftype)
    z = d.mul(o.b.fpext(y, d.fmt.ftype), emit_math(o.b, "log", ax))
    generic = o.b.fptrunc(emit_math(o.b, "exp", z), o.fmt.ftype)
    return _pow_special_cases(o, x, y, generic)


# f64 pow's logarithm: 2 atanh(s) = 2s + (2/3) s^3 + s^5 T(s^2), with the s^3
# term in double-double; T is a minimax fit of (2 atanh(s)/s - 2 - 2z/3)/z^2
# on z = s^2 <= 0.02944 (its contribution to the log's relative error < 2^-66).
_TWO_THIRDS = (float.fromhex("0x1.5555555555555p-1"), float.fromhex("0x1.5555555555555p-55"))
_POW_LOG_TAIL_POLY = tuple(float.fromhex(c) for c in (
    "0x1.9999999999b2fp-2", "0x1.2492492457f16p-2", "0x1.c71c722d438afp-3",
    "0x1.745ce9ee24dd8p-3", "0x1.3b1eea490b58ep-3", "0x1.0f800e9ec67ecp-3",
    "0x1.0e417634542e5p-3"))


def _log_f64_dd(o: _Ops, x):
    """log(x) as a double-double (hi, lo), relative error about 2^-62, x positive finite."""
    f = o.fmt
    k, frac = _split_positive(o, x)
    kf = o.from_i32(k)
    two = o.const(2.0)
    # s + s_lo = frac / (2 + frac), with d + d_lo = 2 + frac exactly
    d, d_lo = _two_sum_ordered(o, two, frac)
    inv = o.div(o.const(1.0), d)
    s = o.mul(frac, inv)
    residual = o.sub(o.fma(o.neg(s), d, frac), o.mul(s, d_lo))
    s_lo = o.mul(residual, inv)
    # (2/3) s^3 as t3 + t3_lo
    z, z_lo = _two_prod(o, s, s)
    s3, s3_lo = _two_prod(o, s, z)
    s3_lo = o.muladd(s, z_lo, s3_lo)
    t3, t3_lo = _two_prod(o, o.const(_TWO_THIRDS[0]), s3)
    t3_lo = o.muladd(o.const(_TWO_THIRDS[0]), s3_lo, o.muladd(o.const(_TWO_THIRDS[1]), s3, t3_lo))
    rest = o.mul(o.mul(s3, z), o.horner(z, _POW_LOG_TAIL_POLY))
    # k ln2 + 2s + t3 + (small terms); k*ln2_hi is exact and dominates 2s + t3
    # unless k == 0, so both additions are exact Fast2Sums.
    h1, e1 = _two_sum_ordered(o, o.add(s, s), t3)
    h2, e2 = _two_sum_ordered(o, o.mul(kf, o.const(f.ln2_hi)), h1)
    # d(2 atanh s)/ds = 2/(1 - s^2) ~ 2 (1 + z) carries s_lo
    two_s_lo = o.add(s_lo, s_lo)
    small = o.add(o.muladd(two_s_lo, z, two_s_lo), o.muladd(kf, o.const(f.ln2_lo), rest))
    lo = o.add(e2, o.add(e1, o.add(t3_lo, small)))
    return _two_sum_ordered(o, h2, lo)


def _pow_f64(o: _Ops, x, y):
    f = o.fmt
    log_hi, log_lo = _log_f64_dd(o, o.abs(x))
    z = o.mul(y, log_hi)
    z_lo = o.muladd(y, log_lo, o.fma(y, log_hi, o.neg(z)))
    zc = o.clamp(z, f.exp_min, f.exp_max)
    z_lo = o.select(o.cmp("==", zc, z), z_lo, o.const(0.0))  # drop it when clamped
    return _pow_special_cases(o, x, y, _exp_reduced(o, zc, z_lo))


def _pow(o: _Ops, x, y):
    return (_pow_f32 if o.fmt is _F32 else _pow_f64)(o, x, y)


# ---------------------------------------------------------------- erf

# erf(x) = x + x Q(x^2) on |x| < 1: Q a fit of erf(x)/x - 1 (Q(0) = 2/sqrt(pi) - 1), absolute
# error of x Q about 2^-56 relative to erf(x).
_ERF_SMALL_POLY = tuple(float.fromhex(c) for c in (
    "0x1.06eba8214db68p-3", "-0x1.812746b0379c1p-2", "0x1.ce2f21a040fbfp-4", "-0x1.b82ce31204d17p-6",
    "0x1.565bccfa6f4bep-8", "-0x1.c02db06ca928fp-11", "0x1.f9a2bee1b1f05p-14", "-0x1.f4ca8c11f4161p-17",
    "0x1.b982295083cfcp-20", "-0x1.5c14fc0842667p-23", "0x1.d777c51831224p-27", "-0x1.acbabf57ef501p-31"))
# erfc(a) = exp(-a^2) R(a - 7/2) on 1 <= a <= 6: R a fit of erfc(a) exp(a^2) weighted by
# exp(-a^2), so the absolute error of erfc (what 1 - erfc keeps) is below 2^-54.
_ERFC_POLY_CENTER = 3.5
_ERFC_POLY = tuple(float.fromhex(c) for c in (
    "0x1.3e0a99a0dfaa4p-3", "-0x1.5285d2eb7b8e4p-5", "0x1.5d5811752d884p-7", "-0x1.5e5d7969a11d7p-9",
    "0x1.56322481eb8c2p-11", "-0x1.460c5884b864bp-13", "0x1.2f7135cfd9a4cp-15", "-0x1.14a16333ddb7ep-17",
    "0x1.ef84882ee3b44p-20", "-0x1.9858fd73c2996p-22", "0x1.b33cf4e000adbp-24", "-0x1.6b117287078eep-26",
    "-0x1.3b5b8cf52fc1ep-27", "-0x1.6028845771feap-27", "-0x1.13cb68540a015p-29", "0x1.72415e773067ep-30",
    "0x1.7e7200d4ad906p-30", "0x1.3c01e23b13052p-31", "0x1.2e0af6aae1592p-33", "0x1.442e32a679d77p-36",
    "0x1.3dd4a42bf9385p-40"))


# float32: the same two parts with fits good to float32 (absolute error of Q below 2^-26, of
# erfc below 2^-30), so erf is computed in float32 lanes (twice the vector width of float64).
# erf rounds to 1 in float32 from 3.83 on, so the erfc part stops at 4.
_ERF32_SMALL_POLY = tuple(float.fromhex(c) for c in (
    "0x1.06eba8p-3", "-0x1.81273ep-2", "0x1.ce2d2p-4", "-0x1.b7fbb4p-6", "0x1.5419f4p-8", "-0x1.a485dep-11",
    "0x1.4ae4aap-14"))
_ERFC32_POLY_CENTER = 2.5
_ERFC32_POLY = tuple(float.fromhex(c) for c in (
    "0x1.afbb3cp-3", "-0x1.3088fap-4", "0x1.98720ep-6", "-0x1.06266ep-7", "0x1.4a64eap-9", "-0x1.545b9cp-11",
    "0x1.d50596p-13", "-0x1.1db06ep-13", "-0x1.e4c04ap-15", "-0x1.d5af9cp-16"))


def _erf_parts(o: _Ops, x, small_poly, erfc_poly, center: float, cap: float):
    ax = o.abs(x)
    small = o.muladd(x, o.horner(o.mul(x, x), small_poly), x)
    # 1 - exp(-a^2) R(a) for a = min(|x|, cap) (erf rounds to 1 before cap); a^2 = h + l
    # exactly, and the exp takes l as its low part, so exp(-a^2) is good to about an ulp.
    a = o.select(o.cmp("<", ax, o.const(cap)), ax, o.const(cap))
    h, lo = _two_prod(o, a, a)
    erfc = o.mul(_exp_reduced(o, o.neg(h), o.neg(lo)), o.horner(o.sub(a, o.const(center)), erfc_poly))
    large = o.copysign(o.sub(o.const(1.0), erfc), x)
    # unordered: nan takes the small path, which returns it
    return o.select(o.b.fcmp_unordered("<", ax, o.const(1.0)), small, large)


def _erf(o: _Ops, x):
    if o.fmt is _F64:
        return _erf_parts(o, x, _ERF_SMALL_POLY, _ERFC_POLY, _ERFC_POLY_CENTER, 6.0)
    return _erf_parts(o, x, _ERF32_SMALL_POLY, _ERFC32_POLY, _ERFC32_POLY_CENTER, 4.0)


_BODIES: dict[str, Callable[..., ir.Value]] = {
    "exp": _exp,
    "expm1": _expm1,
    "log": _log,
    "log1p": _log1p,
    "sin": _sin,
    "cos": _cos,
    "tanh": _tanh,
    "pow": _pow,
    "erf": _erf,
}
