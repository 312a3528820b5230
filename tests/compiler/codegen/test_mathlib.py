"""Tests for compiler.codegen.mathlib: accuracy, special values, vectorization, NVPTX.

Each math function is JIT-compiled (llvmlite MCJIT, -O3, host CPU) inside a
loop ``out[i] = f(a[i] [, b[i]])`` and compared with numpy: f32 results with
numpy's float64 result rounded to float32, f64 results with numpy's 80-bit
long double result rounded to float64 (for sin/cos of huge arguments that
is glibc's sinl/cosl, with its own full-range reduction; the hardest cases
are checked against mpmath too where it is installed).  Errors are measured
in ulp (distance in representable values); special values must match
exactly, including the sign of zero.
"""
import ctypes
import math
import re
import shutil
import subprocess

import llvmlite.binding as llvm
import llvmlite.ir as ir
import numpy as np
import pytest

from fusegrad.compiler.codegen.mathlib import MATH_FUNCTIONS, emit_math

llvm.initialize_native_target()
llvm.initialize_native_asmprinter()

TYPES = {np.float32: ir.FloatType(), np.float64: ir.DoubleType()}
REFERENCE_TYPE = {np.float32: np.float64, np.float64: np.longdouble}
NUMPY_FUNCTION = {"exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p,
                  "sin": np.sin, "cos": np.cos, "tanh": np.tanh, "pow": np.power,
                  "erf": np.vectorize(math.erf, otypes=[np.float64])}   # f64 reference: libm's erf (< 1 ulp)
ARITY = {"pow": 2}
SEED = 20240611
N = 1 << 17  # inputs per range; each function sees 4-8 ranges


def _loop_function(module, name, dtype):
    """void loop_<name>_<dtype>(ptr noalias a, ptr noalias b, ptr noalias out, i64 n)."""
    fty = TYPES[dtype]
    ptr = ir.PointerType()
    i64 = ir.IntType(64)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr, ptr, ptr, i64]),
                     f"loop_{name}_{dtype.__name__}")
    for arg in fn.args[:3]:
        arg.add_attribute("noalias")
    a, b, out, n = fn.args
    entry, body, done = (fn.append_basic_block(s) for s in ("entry", "body", "done"))
    builder = ir.IRBuilder(entry)
    builder.cbranch(builder.icmp_signed(">", n, i64(0)), body, done)
    builder.position_at_end(body)
    i = builder.phi(i64)
    i.add_incoming(i64(0), entry)
    operands = [builder.load(builder.gep(p, [i], source_etype=fty), typ=fty)
                for p in (a, b)[:ARITY.get(name, 1)]]
    builder.store(emit_math(builder, name, *operands), builder.gep(out, [i], source_etype=fty))
    i_next = builder.add(i, i64(1))
    i.add_incoming(i_next, body)
    builder.cbranch(builder.icmp_signed("<", i_next, n), body, done)
    builder.position_at_end(done)
    builder.ret_void()


def _host_target_machine():
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                        features=llvm.get_host_cpu_features().flatten(),
                                        opt=3, codemodel="jitdefault")


def _optimized(ir_module, tm):
    ir_module.triple = tm.triple
    ir_module.data_layout = str(tm.target_data)
    mod = llvm.parse_assembly(str(ir_module))
    mod.verify()
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=3))
    pb.getModulePassManager().run(mod, pb)
    return mod


@pytest.fixture(scope="module")
def kernels():
    """{(name, dtype): f(*arrays) -> array}, all loops JIT-compiled in one module."""
    module = ir.Module("mathlib_test")
    cases = [(name, dtype) for name in sorted(MATH_FUNCTIONS) for dtype in TYPES]
    for name, dtype in cases:
        _loop_function(module, name, dtype)
    tm = _host_target_machine()
    engine = llvm.create_mcjit_compiler(_optimized(module, tm), tm)
    engine.finalize_object()
    proto = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)

    def wrap(name, dtype):
        cfunc = proto(engine.get_function_address(f"loop_{name}_{dtype.__name__}"))

        def run(*inputs):
            arrays = [np.ascontiguousarray(v, dtype=dtype) for v in np.broadcast_arrays(*inputs)]
            out = np.empty_like(arrays[0])
            second = arrays[1] if len(arrays) > 1 else arrays[0]
            cfunc(arrays[0].ctypes.data, second.ctypes.data, out.ctypes.data, out.size)
            return out
        run.engine = engine  # the machine code lives as long as the engine
        return run

    return {case: wrap(*case) for case in cases}


def reference(name, dtype, *inputs):
    wide = REFERENCE_TYPE[dtype]
    with np.errstate(all="ignore"):
        return NUMPY_FUNCTION[name](*(np.asarray(v, dtype=dtype).astype(wide) for v in inputs)).astype(dtype)


def ulp_distance(got, want):
    """Number of representable values between got and want (nan == nan)."""
    itype = np.int32 if got.dtype == np.float32 else np.int64
    mask = np.iinfo(itype).max

    def ordinal(v):
        bits = v.view(itype)
        return np.where(bits < 0, -(bits & mask), bits)
    og, ow = ordinal(got), ordinal(want)
    same_side = (og >= 0) == (ow >= 0)
    # integer subtraction only where it cannot overflow (same side of zero)
    dist = np.where(same_side, np.abs(og - np.where(same_side, ow, og)).astype(np.float64),
                    np.abs(og).astype(np.float64) + np.abs(ow).astype(np.float64))
    both_nan = np.isnan(got) & np.isnan(want)
    one_nan = np.isnan(got) ^ np.isnan(want)
    return np.where(both_nan, 0.0, np.where(one_nan, np.inf, dist))


def check(kernels, name, dtype, inputs, max_ulp):
    """Assert the ulp bound, exact special values and signed zeros."""
    got = kernels[name, dtype](*inputs)
    want = reference(name, dtype, *inputs)
    dist = ulp_distance(got, want)
    worst = int(np.argmax(dist))
    args = ", ".join(repr(np.broadcast_arrays(*inputs)[j][worst]) for j in range(len(inputs)))
    assert dist[worst] <= max_ulp, (
        f"{name}.{dtype.__name__}({args}) = {got[worst]!r}, want {want[worst]!r}: {dist[worst]} ulp")
    special = ~np.isfinite(want) | (want == 0)
    mismatch = special & ~((got == want) | (np.isnan(got) & np.isnan(want)))
    zero_sign = (want == 0) & (np.signbit(got) != np.signbit(want))
    bad = np.flatnonzero(mismatch | zero_sign)
    assert bad.size == 0, f"{name}.{dtype.__name__}: special value mismatch at {bad[:5]}"


# ---------------------------------------------------------------- inputs

def _log_uniform(rng, lo, hi, n, signed=True):
    mag = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    return mag * rng.choice([-1.0, 1.0], n) if signed else mag


def _all_positive_floats(rng, dtype, n):
    """Uniform over bit patterns of positive finite values (denormals included)."""
    if dtype == np.float32:
        return rng.integers(1, 0x7F800000, n, dtype=np.uint32).view(np.float32)
    return rng.integers(1, 0x7FF0000000000000, n, dtype=np.uint64).view(np.float64)


def _near_multiples_of_half_pi(dtype, kmax, n):
    """Floats nearest to k*pi/2 and their neighbours: the hardest reductions."""
    k = np.linspace(1, kmax, n // 3).round().astype(np.longdouble)
    x = (k * (np.pi / np.longdouble(2))).astype(dtype)
    return np.concatenate([x, np.nextafter(x, dtype(np.inf)), np.nextafter(x, dtype(-np.inf)), -x])


EDGES = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, 2.0, 1e-45, 5e-324, 1e-300,
         1e-30, -1e-30, 1e30, -1e30, 1e300, -1e300, 88.72, 88.73, -87.3, -103.9, -104.1,
         709.78, 709.79, -708.4, -745.1, -745.2, 9.0, 19.0, 20.0, 0.34657, 0.6931,
         -0.6931, -0.9999999, -1.0000001]


def _edges(dtype):
    with np.errstate(over="ignore"):
        return np.array(EDGES, dtype=np.float64).astype(dtype)


# Floats whose reduction mod pi/2 is hardest or whose value is documented:
# 16367173 2^72 is within 1.6e-9 of a multiple of pi/2, 6381956970095103 2^797
# within 4.7e-19 (the f64 worst case); sin(3e38 as f32) = 0.8749...; the
# switch from the Cody-Waite to the Payne-Hanek reduction (2^18, 2^40).
HARD_TRIG = {
    np.float32: [16367173 * 2.0**72, 3e38, float(np.finfo(np.float32).max), 2.0**127, 2.0**18,
                 float(np.nextafter(np.float32(2.0**18), np.float32(0))), 1e22, 1e10, 123456789.0],
    np.float64: [6381956970095103 * 2.0**797, 16367173 * 2.0**72, 2.0**1023, float(np.finfo(np.float64).max),
                 2.0**40, float(np.nextafter(2.0**40, 0)), 1e22, 1e300, 1e100,
                 8.98846567431158e307, 1e15, 2.0**53, 2.0**53 + 2],
}


def _hard_trig(dtype):
    x = np.array(HARD_TRIG[dtype], dtype=dtype)
    with np.errstate(over="ignore"):  # the ulp above the largest float is inf
        near = np.concatenate([x, np.nextafter(x, dtype(0)), np.nextafter(x, dtype(np.inf))])
    return np.concatenate([near, -near])


def trig_inputs(dtype, rng):
    """sin/cos inputs over the whole finite range: each binade sampled alike,
    the floats nearest to multiples of pi/2 on both sides of the switch to the
    Payne-Hanek reduction, and the hard cases."""
    top = float(np.finfo(dtype).max)
    switch_k = 2.0**20 if dtype == np.float32 else 2.0**42   # k pi/2 past 2^18 / 2^40
    return [rng.uniform(-1e4, 1e4, N), rng.uniform(-4, 4, N),
            _log_uniform(rng, 1e-12 if dtype == np.float32 else 1e-20, 1.0, N),
            _log_uniform(rng, 1.0, top, N), _near_multiples_of_half_pi(dtype, 1e4 / 1.6, N),
            _near_multiples_of_half_pi(dtype, switch_k, N), _hard_trig(dtype)]


def unary_inputs(name, dtype, rng):
    f32 = dtype == np.float32
    exp_lo, exp_hi = (-110.0, 95.0) if f32 else (-750.0, 715.0)
    small = _log_uniform(rng, 1e-12 if f32 else 1e-20, 1.0, N)
    ranges = {
        "exp": [rng.uniform(exp_lo, exp_hi, N), rng.uniform(-1, 1, N), small],
        "expm1": [rng.uniform(-30, exp_hi, N), rng.uniform(-2, 2, N), small],
        "log": [_all_positive_floats(rng, dtype, N), rng.uniform(0.6, 1.5, N),
                1 + _log_uniform(rng, 1e-12, 1e-3, N)],
        "log1p": [_all_positive_floats(rng, dtype, N), rng.uniform(-1, 1, N), small,
                  -1 + _log_uniform(rng, 1e-12, 1, N, signed=False)],
        "sin": trig_inputs(dtype, rng),
        "tanh": [rng.uniform(-25, 25, N), rng.uniform(-1, 1, N), small],
        "erf": [rng.uniform(-6.5, 6.5, N), rng.uniform(-1.25, 1.25, N), small],
    }
    ranges["cos"] = ranges["sin"]
    with np.errstate(over="ignore"):
        arrays = [np.asarray(r, dtype=dtype) for r in ranges[name]]
    return np.concatenate(arrays + [_edges(dtype)])


MAX_ULP = 2  # the promised bound; measured maxima are 1 ulp (see mathlib's docstring)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(MATH_FUNCTIONS - {"pow"}))
def test_unary_accuracy(kernels, name, dtype):
    rng = np.random.default_rng(SEED)
    x = unary_inputs(name, dtype, rng)
    check(kernels, name, dtype, [x], MAX_ULP)


# (name, x, exact result) beyond what the reference comparison already pins
DOCUMENTED_VALUES = [
    ("exp", 0.0, 1.0), ("exp", -np.inf, 0.0), ("exp", np.inf, np.inf), ("exp", 1e4, np.inf),
    ("expm1", -np.inf, -1.0), ("expm1", -1e4, -1.0), ("expm1", -0.0, -0.0), ("expm1", 1e-30, 1e-30),
    ("log", 1.0, 0.0), ("log", 0.0, -np.inf), ("log", -0.0, -np.inf), ("log", -1.0, np.nan),
    ("log", np.inf, np.inf), ("log", -np.inf, np.nan),
    ("log1p", -1.0, -np.inf), ("log1p", -2.0, np.nan), ("log1p", -0.0, -0.0), ("log1p", 1e-30, 1e-30),
    ("sin", -0.0, -0.0), ("sin", 1e-30, 1e-30), ("sin", np.inf, np.nan), ("sin", -np.inf, np.nan),
    ("cos", 0.0, 1.0), ("cos", np.inf, np.nan),
    ("tanh", np.inf, 1.0), ("tanh", -np.inf, -1.0), ("tanh", 30.0, 1.0), ("tanh", -0.0, -0.0),
    ("tanh", 1e-30, 1e-30),
    ("erf", 0.0, 0.0), ("erf", -0.0, -0.0), ("erf", np.inf, 1.0), ("erf", -np.inf, -1.0), ("erf", 6.0, 1.0),
    ("erf", -30.0, -1.0),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_documented_values(kernels, dtype):
    for name, x, want in DOCUMENTED_VALUES + [(name, np.nan, np.nan) for name in MATH_FUNCTIONS - {"pow"}]:
        got = kernels[name, dtype](np.array([x], dtype=dtype))[0]
        assert (got == want and np.signbit(got) == np.signbit(want)) or (np.isnan(got) and np.isnan(want)), \
            f"{name}.{dtype.__name__}({x}) = {got}, want {want}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["sin", "tanh", "expm1", "log1p"])
def test_denormals_pass_through_where_f_x_is_x(kernels, name, dtype):
    tiny = np.finfo(dtype).smallest_subnormal * np.array([1, -1, 3, -1000], dtype=dtype)
    assert np.array_equal(kernels[name, dtype](tiny), tiny)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_pow_accuracy(kernels, dtype):
    rng = np.random.default_rng(SEED)
    x = _log_uniform(rng, 1e-3, 1e3, N, signed=False)
    y = rng.uniform(-10, 10, N)
    # negative bases with integral exponents
    xn = -_log_uniform(rng, 1e-2, 1e2, N, signed=False)
    yn = rng.integers(-20, 21, N).astype(np.float64)
    # |y log x| up to the overflow/underflow thresholds, x near 1 included
    limit = 90 if dtype == np.float32 else 720
    xz = np.concatenate([_log_uniform(rng, 1e-30, 1e30, N // 2, signed=False), rng.uniform(0.5, 2, N // 2)])
    yz = rng.uniform(-limit, limit, N) / np.log(xz)
    xs = np.concatenate([x, xn, xz]).astype(dtype)
    ys = np.concatenate([y, yn, yz]).astype(dtype)
    check(kernels, "pow", dtype, [xs, ys], MAX_ULP)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_pow_special_values(kernels, dtype):
    values = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, 2.5, -2.5,
                       np.inf, -np.inf, np.nan], dtype=dtype)
    x, y = (v.ravel() for v in np.meshgrid(values, values))
    check(kernels, "pow", dtype, [x, y], 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_pow_overflow_and_underflow(kernels, dtype):
    rng = np.random.default_rng(SEED)
    x = _log_uniform(rng, 1e-6, 1e6, N, signed=True).astype(dtype)
    y = rng.integers(-400 if dtype == np.float32 else -3000, 401 if dtype == np.float32 else 3001,
                     N).astype(dtype)
    got = kernels["pow", dtype](x, y)
    want = reference("pow", dtype, x, y)
    saturated = ~np.isfinite(want) | (want == 0)
    assert np.array_equal(got[saturated], want[saturated])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["sin", "cos"])
def test_trig_across_the_reduction_switch(kernels, name, dtype):
    """Every 4th f32 in [2^17, 2^19), 10^6 f64 within 1.3e5 of 2^40: around the switch
    from Cody-Waite to Payne-Hanek."""
    if dtype == np.float32:
        lo, hi = np.array([2.0**17, 2.0**19], dtype=np.float32).view(np.uint32)
        x = np.arange(lo, hi, 4, dtype=np.uint32).view(np.float32)
    else:
        x = 2.0**40 + np.arange(-(1 << 19), 1 << 19, dtype=np.float64) * 2.0**-12 * 1021
    check(kernels, name, dtype, [x], MAX_ULP)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_trig_hard_cases_against_mpmath(kernels, dtype):
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.prec = 2200   # enough for the reduction of the largest f64
    x = _hard_trig(dtype)
    for name in ("sin", "cos"):
        want = np.array([float(getattr(mpmath, name)(mpmath.mpf(float(v)))) for v in x]).astype(dtype)
        dist = ulp_distance(kernels[name, dtype](x), want)
        assert dist.max() <= 1, f"{name}.{dtype.__name__}({x[np.argmax(dist)]!r}): {dist.max()} ulp"


def test_two_over_pi_bits():
    mpmath = pytest.importorskip("mpmath")
    from fusegrad.compiler.codegen import mathlib
    bits = 4 * len(mathlib._TWO_OVER_PI_HEX)
    mpmath.mp.prec = bits + 64
    assert int(mathlib._TWO_OVER_PI_HEX, 16) == int(mpmath.floor(2 / mpmath.pi * mpmath.mpf(2) ** bits))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_trig_through_the_public_api(dtype):
    """fusegrad.tensor(x).sin() over the whole range (the CPU backend's fused kernels)."""
    import fusegrad
    rng = np.random.default_rng(SEED)
    x = np.concatenate([_log_uniform(rng, 1e-3, float(np.finfo(dtype).max), 1 << 14), _hard_trig(dtype),
                        rng.uniform(-10, 10, 1 << 12)]).astype(dtype)
    for name in ("sin", "cos"):
        got = getattr(fusegrad.tensor(x), name)().numpy()
        assert got.dtype == dtype
        dist = ulp_distance(got, reference(name, dtype, x))
        assert dist.max() <= MAX_ULP, f"{name}.{dtype.__name__}({x[np.argmax(dist)]!r}): {dist.max()} ulp"
    assert abs(float(fusegrad.tensor(np.array([3e38], np.float32)).sin().numpy()[0]) - 0.8749049) < 1e-6


def test_definitions_are_reused_and_typed():
    assert MATH_FUNCTIONS == {"exp", "expm1", "log", "log1p", "sin", "cos", "tanh", "pow", "erf"}
    module = ir.Module()
    fn = ir.Function(module, ir.FunctionType(ir.FloatType(), [ir.FloatType()]), "f")
    builder = ir.IRBuilder(fn.append_basic_block())
    (x,) = fn.args
    builder.ret(builder.fadd(emit_math(builder, "exp", x), emit_math(builder, "exp", x)))
    assert [g for g in module.globals if g.startswith("fg.")] == ["fg.exp.f32"]
    exp = module.globals["fg.exp.f32"]
    assert exp.linkage == "internal" and "alwaysinline" in exp.attributes
    with pytest.raises(ValueError):
        emit_math(builder, "gamma", x)
    with pytest.raises(TypeError):
        emit_math(builder, "pow", x)
    with pytest.raises(TypeError):
        emit_math(builder, "exp", ir.Constant(ir.IntType(32), 1))


# ---------------------------------------------------------------- codegen

def _loop_assembly(name, dtype, tm=None):
    """The assembly of loop_<name>_<dtype>'s body, for the host (or target machine `tm`)."""
    module = ir.Module("vec")
    _loop_function(module, name, dtype)
    tm = tm or _host_target_machine()
    asm = tm.emit_assembly(_optimized(module, tm))
    return asm.split(f"loop_{name}_{dtype.__name__}:")[1].split(".Lfunc_end")[0]


def _needs_avx2():
    if "+avx2" not in llvm.get_host_cpu_features().flatten().split(","):
        pytest.skip("host CPU has no AVX2, so no 256-bit (ymm) vectors to look for")


def test_f32_exp_loop_vectorizes_to_avx2():
    _needs_avx2()
    body = _loop_assembly("exp", np.float32)
    assert "ymm" in body or "zmm" in body     # AVX2, or AVX-512 where the host has it
    assert "call" not in body


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["sin", "cos"])
def test_trig_loop_stays_vectorized(name, dtype):
    """The large-argument path is a call to a masked vector variant, not a per-lane select."""
    _needs_avx2()
    body = _loop_assembly(name, dtype)
    assert "ymm" in body or "zmm" in body
    kind = "f32" if dtype == np.float32 else "f64"
    assert re.search(rf"fg\.{name}\.large\.{kind}\.v(4|8|16)\b", body)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["sin", "cos"])
@pytest.mark.parametrize("cpu", ["haswell", "znver4"], ids=["avx2", "avx512"])
def test_trig_loop_vectorizes_for_both_vector_widths(cpu, name, dtype):
    """Whatever the host, the trig loops compile for an AVX2 and an AVX-512 CPU (assembly
    only: nothing runs) into vector loops calling a vector variant of the large path."""
    tm = llvm.Target.from_default_triple().create_target_machine(cpu=cpu, opt=3, codemodel="jitdefault")
    body = _loop_assembly(name, dtype, tm)
    kind = "f32" if dtype == np.float32 else "f64"
    lanes = {("haswell", "f32"): 8, ("haswell", "f64"): 4, ("znver4", "f32"): 16, ("znver4", "f64"): 8}[cpu, kind]
    assert ("zmm" in body) == (cpu == "znver4")
    assert re.search(rf"fg\.{name}\.large\.{kind}\.v{lanes}\b", body)


@pytest.mark.parametrize("cpu", ["haswell", "znver4"], ids=["avx2", "avx512"])
def test_f32_erf_loop_runs_in_float32_lanes_for_both_vector_widths(cpu):
    """float32 erf is computed in float32 (8 lanes of ymm, 16 of zmm), never widened to float64."""
    tm = llvm.Target.from_default_triple().create_target_machine(cpu=cpu, opt=3, codemodel="jitdefault")
    body = _loop_assembly("erf", np.float32, tm)
    assert ("zmm" if cpu == "znver4" else "ymm") in body and ("zmm" in body) == (cpu == "znver4")
    assert "vcvtps2pd" not in body and "vcvtpd2ps" not in body


def _nvptx_module():
    """A kernel calling every function on f32 and f64 loads."""
    module = ir.Module("nvptx")
    module.triple = "nvptx64-nvidia-cuda"
    ptr = ir.PointerType()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr, ptr, ptr, ptr]), "mathlib_kernel")
    fn.calling_convention = "ptx_kernel"
    builder = ir.IRBuilder(fn.append_basic_block())
    for (src, dst), fty in zip([fn.args[0:2], fn.args[2:4]], TYPES.values()):
        x = builder.load(src, typ=fty)
        y = builder.load(builder.gep(src, [ir.IntType(64)(1)], source_etype=fty), typ=fty)
        for j, name in enumerate(sorted(MATH_FUNCTIONS)):
            operands = [x, y][:ARITY.get(name, 1)]
            builder.store(emit_math(builder, name, *operands),
                          builder.gep(dst, [ir.IntType(64)(j)], source_etype=fty))
    builder.ret_void()
    return module


@pytest.mark.parametrize("optimize", [False, True], ids=["unoptimized", "O3"])
def test_nvptx_compiles_and_assembles(tmp_path, optimize):
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    tm = llvm.Target.from_triple("nvptx64-nvidia-cuda").create_target_machine(cpu="sm_80", opt=3)
    module = _nvptx_module()
    module.data_layout = str(tm.target_data)
    if optimize:
        mod = _optimized(module, tm)
    else:
        mod = llvm.parse_assembly(str(module))
        mod.verify()
    ptx = tm.emit_assembly(mod)
    assert ".entry mathlib_kernel" in ptx
    assert ".extern" not in ptx  # nothing left for a libm to provide
    if optimize:
        assert "call" not in ptx  # every function inlined
    ptxas = shutil.which("ptxas")
    if ptxas is None:
        pytest.skip("ptxas not on PATH: PTX generated but not assembled")
    path = tmp_path / "mathlib.ptx"
    path.write_text(ptx)
    result = subprocess.run([ptxas, "-arch=sm_80", str(path), "-o", str(tmp_path / "mathlib.cubin")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
