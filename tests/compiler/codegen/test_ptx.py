"""The GPU lowering (compiler/codegen/ptx*.py, nvptx.py), kernel kind by kernel kind.

Each test builds a graph by hand, compiles it for target "cuda", assembles the PTX with
ptxas for sm_80 and sm_90 (skipped where ptxas is not installed), checks the PTX for the
structure the kind promises (shuffles in row reductions, shared tiles in matmul, atomics in
scatter), and runs the program on the CPU emulator (ptx_emulator.py; skipped without a C
compiler) against numpy. No test here needs a GPU.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from fusegrad.compiler import compile
from fusegrad.compiler.codegen import ptx_gemm, ptx_rows
from fusegrad.compiler.ir import Graph, Node, bfloat16, float16, float32, float64, int64, make
from ptx_emulator import EmulatedProgram
from ptx_emulator import compiler as c_compiler

needs_ptxas = pytest.mark.skipif(shutil.which("ptxas") is None, reason="ptxas not installed")
needs_cc = pytest.mark.skipif(c_compiler() is None, reason="no C compiler for the PTX emulator")


def inp(name, shape, dt=float32):
    return Node("input", (), {"name": name}, tuple(shape), dt)


def const(v, dt=float32):
    return make("const", attrs={"value": v}, shape=(), dtype=dt)


def lower(outputs: dict, inputs: list, arch=None, params=(), assigns=()):
    return compile(Graph("t", inputs, list(params), outputs, list(assigns)), "cuda", arch=arch)


def assemble(ptx_text: str, arch: str, tmp_path) -> str:
    """ptxas's resource report for the PTX (raises if it does not assemble)."""
    path = tmp_path / f"{arch}.ptx"
    path.write_text(ptx_text)
    done = subprocess.run(["ptxas", f"-arch={arch}", "-v", str(path), "-o", "/dev/null"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stderr


def instructions(program) -> set:
    return set(re.findall(r"^\s+(?:@%p\d+\s+)?([a-z][\w.]*)", program.source, re.M))


def entry_text(program, name: str) -> str:
    """The PTX of entry `name`."""
    start = program.source.index(f".entry {name}(")
    end = program.source.find(".entry ", start + 1)
    return program.source[start:end if end > 0 else None]


def emulate(program, *arrays, params=()):
    outputs, error = EmulatedProgram(program)(list(arrays), list(params))
    return outputs, error


@pytest.fixture(params=["sm_80", "sm_90"])
def arch(request):
    return request.param


# ---------------------------------------------------------------- elementwise

@needs_ptxas
def test_elementwise_broadcast_is_one_grid_stride_entry(arch, tmp_path):
    x, b = inp("x", (4000, 3)), inp("b", (3,))
    prog = lower({"y": make("mul", [make("exp", [x]), b])}, [x, b], arch)
    (launch,) = prog.launches
    assert launch.block == 256 and launch.grid == 47 and launch.args[0] == 0
    assert f".target {arch}" in prog.source and ".maxntid 256" in prog.source
    ops = instructions(prog)
    assert not any(op.startswith(("bar.", "shfl.", "atom.")) for op in ops)
    assert "%nctaid.x" in prog.source                     # strides over the grid
    assemble(prog.source, arch, tmp_path)


@needs_cc
def test_elementwise_runs_like_numpy(rng):
    x, b = inp("x", (1000, 3)), inp("b", (3,))
    prog = lower({"y": make("mul", [make("exp", [x]), b])}, [x, b])
    xv, bv = rng.standard_normal((1000, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    out, error = emulate(prog, xv, bv)
    np.testing.assert_allclose(out["y"], np.exp(xv) * bv, rtol=1e-6)
    assert not error.any()


@needs_cc
def test_elementwise_of_a_transposed_view(rng):
    x = inp("x", (30, 20))
    prog = lower({"y": make("add", [make("permute", [x], {"perm": (1, 0)}), const(1.0)])}, [x])
    xv = rng.standard_normal((30, 20)).astype(np.float32)
    np.testing.assert_array_equal(emulate(prog, xv)[0]["y"], xv.T + 1)


# ---------------------------------------------------------------- row reductions

def _softmax(x):
    m = make("reduce_max", [x], {"axes": (1,)})
    e = make("exp", [make("sub", [x, m])])
    return make("div", [e, make("sum", [e], {"axes": (1,)})])


@needs_ptxas
def test_softmax_is_one_block_per_row_with_shuffles_and_shared_memory(arch, tmp_path):
    x = inp("x", (37, 1000))
    prog = lower({"y": _softmax(x)}, [x], arch)
    (launch,) = prog.launches
    assert launch.grid == 37 and launch.block == ptx_rows.block_size(1000) == 256
    ops = instructions(prog)
    assert {"shfl.sync.bfly.b32", "bar.sync"} <= ops
    assert ".shared" in prog.source
    report = assemble(prog.source, arch, tmp_path)
    assert "0 bytes spill stores" in report


@needs_ptxas
def test_short_rows_are_a_thread_each(arch, tmp_path):
    x = inp("x", (1000, 10))
    prog = lower({"y": _softmax(x)}, [x], arch)
    (launch,) = prog.launches
    assert launch.block == 256 and launch.grid == 4
    assert not any(op.startswith(("shfl.", "bar.")) for op in instructions(prog))
    assemble(prog.source, arch, tmp_path)


@needs_cc
@pytest.mark.parametrize("cols", [1000, 10, 1])
def test_softmax_runs_like_numpy(rng, cols):
    x = inp("x", (37, cols))
    prog = lower({"y": _softmax(x)}, [x])
    xv = rng.standard_normal((37, cols)).astype(np.float32)
    e = np.exp(xv - xv.max(axis=1, keepdims=True))
    np.testing.assert_allclose(emulate(prog, xv)[0]["y"], e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)


@needs_cc
def test_row_reduction_over_two_axes_with_an_output_per_row(rng):
    x = inp("x", (6, 5, 70), float64)
    s = make("sum", [x], {"axes": (1, 2)})
    prog = lower({"mean": make("div", [s, const(350.0, float64)]), "max": make("reduce_max", [x], {"axes": (1, 2)})},
                 [x])
    xv = rng.standard_normal((6, 5, 70))
    out, _ = emulate(prog, xv)
    np.testing.assert_allclose(out["mean"], xv.mean(axis=(1, 2), keepdims=True), rtol=1e-12)
    np.testing.assert_array_equal(out["max"], xv.max(axis=(1, 2), keepdims=True))


@needs_ptxas
def test_a_long_full_reduction_splits_over_blocks_with_an_atomic_counter(arch, tmp_path):
    x = inp("x", (1_000_000,))
    prog = lower({"s": make("sum", [x], {"axes": (0,)})}, [x], arch)
    (launch,) = prog.launches
    assert launch.grid == 1_000_000 // ptx_rows.SPLIT_MIN_ELEMENTS and launch.scratch_bytes > 0
    assert f"launch  k0: {launch.grid} blocks x 256 threads, {launch.scratch_bytes} bytes of scratch" \
        in prog.text("kernels")
    ops = instructions(prog)
    assert "atom.global.add.u32" in ops and any(op.startswith("fence.") for op in ops)
    assemble(prog.source, arch, tmp_path)


@needs_cc
def test_split_reduction_is_right_and_resets_its_counters_for_the_next_launch(rng):
    x = inp("x", (3, 50_000))
    shifted = make("sub", [x, make("reduce_max", [x], {"axes": (1,)})])
    prog = lower({"s": make("sum", [shifted], {"axes": (1,)})}, [x])
    assert [launch.scratch_bytes for launch in prog.launches] == [0]    # two passes in one kernel: unsplit
    prog = lower({"s": make("sum", [x], {"axes": (1,)})}, [x])
    (launch,) = prog.launches
    assert launch.grid == 3 * (50_000 // ptx_rows.SPLIT_MIN_ELEMENTS)
    emulated = EmulatedProgram(prog)
    for _ in range(2):
        xv = rng.standard_normal((3, 50_000)).astype(np.float32)
        out, _ = emulated([xv], [])
        np.testing.assert_allclose(out["s"], xv.astype(np.float64).sum(axis=1, keepdims=True), rtol=1e-6)


# ---------------------------------------------------------------- column reductions

@needs_ptxas
def test_column_reduction_is_a_thread_per_output_without_shuffles(arch, tmp_path):
    x = inp("x", (500, 7))
    prog = lower({"s": make("sum", [x], {"axes": (0,)})}, [x], arch)
    (launch,) = prog.launches
    assert launch.grid == 1 and launch.block == 256
    assert not any(op.startswith(("shfl.", "bar.")) for op in instructions(prog))
    assemble(prog.source, arch, tmp_path)


@needs_cc
def test_column_reduction_runs_like_numpy(rng):
    x = inp("x", (50, 3, 700), int64)
    prog = lower({"s": make("sum", [x], {"axes": (0, 1)}), "m": make("reduce_max", [x], {"axes": (0,)})}, [x])
    xv = rng.integers(-1000, 1000, (50, 3, 700))
    out, _ = emulate(prog, xv)
    np.testing.assert_array_equal(out["s"], xv.sum(axis=(0, 1), keepdims=True))
    np.testing.assert_array_equal(out["m"], xv.max(axis=0, keepdims=True))


# ---------------------------------------------------------------- matmul

def _linear_relu(x, w, b):
    y = make("add", [make("matmul", [x, make("permute", [w], {"perm": (1, 0)})]), b])
    return make("max", [y, const(0.0)])


@needs_ptxas
@pytest.mark.parametrize("m, n, tiling", [(96, 40, ptx_gemm.SMALL), (2048, 2048, ptx_gemm.LARGE)])
def test_matmul_uses_shared_tiles_and_register_blocking(arch, tmp_path, m, n, tiling):
    x, w, b = inp("x", (m, 64)), inp("w", (n, 64)), inp("b", (n,))
    prog = lower({"y": _linear_relu(x, w, b)}, [x, w, b], arch)
    (launch,) = prog.launches                               # the bias and relu are the epilogue
    assert launch.block == tiling.threads
    assert launch.grid == -(-m // tiling.bm) * -(-n // tiling.bn)
    ops = instructions(prog)
    assert {"bar.sync", "ld.shared.v4.b32", "fma.rn.f32"} <= ops
    assert prog.source.count("fma.rn.f32") >= tiling.bk * tiling.tm * tiling.tn
    report = assemble(prog.source, arch, tmp_path)
    assert "0 bytes spill stores" in report


@needs_cc
@pytest.mark.parametrize("m, k, n", [(96, 64, 40), (130, 33, 129), (5, 1, 3)])
def test_linear_relu_runs_like_numpy(rng, m, k, n):
    x, w, b = inp("x", (m, k)), inp("w", (n, k)), inp("b", (n,))
    prog = lower({"y": _linear_relu(x, w, b)}, [x, w, b])
    xv, wv, bv = (rng.standard_normal(s).astype(np.float32) for s in [(m, k), (n, k), (n,)])
    np.testing.assert_allclose(emulate(prog, xv, wv, bv)[0]["y"], np.maximum(xv @ wv.T + bv, 0), rtol=1e-4, atol=1e-4)


@needs_cc
def test_batched_matmul_with_a_shared_operand_and_int64(rng):
    a, b = inp("a", (3, 70, 20), int64), inp("b", (20, 50), int64)
    prog = lower({"c": make("matmul", [a, b])}, [a, b])
    av, bv = rng.integers(-9, 9, (3, 70, 20)), rng.integers(-9, 9, (20, 50))
    np.testing.assert_array_equal(emulate(prog, av, bv)[0]["c"], av @ bv)


@needs_cc
def test_large_tiling_runs_like_numpy(rng, monkeypatch):
    monkeypatch.setattr(ptx_gemm, "MIN_LARGE_TILES", 1)
    a, b = inp("a", (200, 24)), inp("b", (24, 150))
    twice = make("permute", [make("permute", [a], {"perm": (1, 0)})], {"perm": (1, 0)})
    prog = lower({"c": make("matmul", [twice, b])}, [a, b])
    assert prog.launches[0].block == ptx_gemm.LARGE.threads
    av, bv = rng.standard_normal((200, 24)).astype(np.float32), rng.standard_normal((24, 150)).astype(np.float32)
    np.testing.assert_allclose(emulate(prog, av, bv)[0]["c"], av @ bv, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- scatter and checks

def _scatter(base_shape=(6, 4), n=9):
    base, index, src = inp("base", base_shape), inp("index", (n, base_shape[1]), int64), inp("src", (n, base_shape[1]))
    return make("scatter_add", [base, index, src], {"axis": 0}), [base, index, src]


@needs_ptxas
def test_scatter_add_is_a_base_entry_then_atomics(arch, tmp_path):
    out, ins = _scatter()
    prog = lower({"y": out}, ins, arch)
    assert [launch.function for launch in prog.launches] == ["k0_base", "k0"]
    assert "atom.global.add.f32" in entry_text(prog, "k0")
    assert "atom" not in entry_text(prog, "k0_base")
    assemble(prog.source, arch, tmp_path)


@needs_cc
def test_scatter_add_with_repeated_indices_and_a_bad_index(rng):
    out, ins = _scatter()
    prog = lower({"y": out}, ins)
    base, src = rng.standard_normal((6, 4)).astype(np.float32), rng.standard_normal((9, 4)).astype(np.float32)
    index = rng.integers(0, 6, (9, 4))
    got, error = emulate(prog, base, index, src)
    expect = base.copy()
    np.add.at(expect, (index, np.arange(4)), src)
    np.testing.assert_allclose(got["y"], expect, rtol=1e-6)
    assert not error.any()
    index[4, 2] = 6
    _, error = emulate(prog, base, index, src)
    code, check = error
    assert code == 1 and "scatter_add: index out of range for dimension 0 of size 6" in prog.checks[check][1]


@needs_cc
def test_integer_division_by_zero_sets_the_error_word_once_for_many_threads():
    a, b = inp("a", (1000,), int64), inp("b", (1000,), int64)
    prog = lower({"q": make("div", [a, b])}, [a, b])
    _, error = emulate(prog, np.arange(1000), np.zeros(1000, np.int64))
    code, check = error
    assert code == 2 and prog.checks[check][1] == "ZeroDivisionError: integer division by zero"


@needs_cc
def test_gather_out_of_range_is_reported(rng):
    src, index = inp("src", (5, 3)), inp("index", (4, 3), int64)
    prog = lower({"g": make("gather", [src, index], {"axis": 0})}, [src, index])
    sv = rng.standard_normal((5, 3)).astype(np.float32)
    iv = rng.integers(0, 5, (4, 3))
    got, error = emulate(prog, sv, iv)
    np.testing.assert_array_equal(got["g"], np.take_along_axis(sv, iv, axis=0))
    iv[1, 1] = -1
    _, error = emulate(prog, sv, iv)
    assert error[0] == 1


# ---------------------------------------------------------------- program shape

@needs_ptxas
def test_in_place_update_of_a_param_and_the_stages(arch, tmp_path):
    p, g = Node("param", (), {"name": "w"}, (300,), float32), inp("g", (300,))
    prog = lower({}, [g], arch, params=[p], assigns=[(p, make("sub", [p, make("mul", [g, const(0.1)])]))])
    assert prog.target == "cuda" and prog.entry == ""
    assert {"llvm", "ptx"} <= set(prog.stages) and prog.text("ptx") == prog.source
    assert 'target triple = "nvptx64-nvidia-cuda"' in prog.text("llvm")
    assemble(prog.source, arch, tmp_path)


# ---------------------------------------------------------------- 16-bit floats

def _bf16(x):
    """float32 values rounded to bfloat16 (nearest, ties to even), read back as float32: the
    rounding written out on the bit pattern (lower half past the middle, or at it with an odd
    upper half, rounds up); the reference the kernels' bfloat16 stores are checked against."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    upper, lower = bits >> 16, bits & 0xFFFF
    up = (lower > 0x8000) | ((lower == 0x8000) & (upper & 1 == 1))
    return ((upper + up).astype(np.uint32) << 16).view(np.float32)


_ROUND = {"float16": lambda x: np.asarray(x, np.float32).astype(np.float16).astype(np.float32), "bfloat16": _bf16}


def _half_graph(dt):
    """exp(x) * x (elementwise: float32 math, one rounding), a softmax row and a column sum
    (float32 accumulation) of a 16-bit input, and the input cast to float32."""
    x = inp("x", (37, 300), dt)
    outputs = {"y": make("mul", [make("exp", [x]), x]), "soft": _softmax(x),
               "cols": make("sum", [x], {"axes": (0,)}),
               "wide": make("cast", [x], shape=x.shape, dtype=float32)}
    return x, outputs


@needs_ptxas
@pytest.mark.parametrize("dt", [float16, bfloat16], ids=["f16", "bf16"])
def test_16_bit_floats_load_and_store_through_float32(arch, tmp_path, dt):
    x, outputs = _half_graph(dt)
    prog = lower(outputs, [x], arch)
    ops = instructions(prog)
    assert {"ld.global.nc.b16", "st.global.b16"} <= ops       # 2-byte memory
    if dt is float16:
        assert {"cvt.f32.f16", "cvt.rn.f16.f32"} <= ops        # converted, rounded to nearest even
    else:                # bfloat16 -> float32 is a shift before sm_90, which has the cvt
        assert "cvt.rn.bf16.f32" in ops and ("cvt.f32.bf16" in ops) == (arch == "sm_90")
    assert not any(".f16" in op or ".bf16" in op for op in ops if op.startswith(("add.", "mul.", "fma.")))
    assemble(prog.source, arch, tmp_path)


@needs_cc
@pytest.mark.parametrize("dt", [float16, bfloat16], ids=["f16", "bf16"])
def test_16_bit_floats_run_like_numpy_rounded_once(rng, dt):
    x, outputs = _half_graph(dt)
    prog = lower(outputs, [x])
    rnd = _ROUND[dt.name]
    xv = rnd(rng.standard_normal((37, 300)) * 2)
    stored = xv.astype(np.float16) if dt is float16 else (xv.view(np.uint32) >> 16).astype(np.uint16)
    out, error = emulate(prog, stored)
    assert not error.any()
    read = {k: v.astype(np.float32) if dt is float16 else (v.astype(np.uint32) << 16).view(np.float32)
            for k, v in out.items() if k != "wide"}
    np.testing.assert_array_equal(out["wide"], xv)
    ulp = 2.0 ** -10 if dt is float16 else 2.0 ** -7
    ref = xv.astype(np.float64)
    e = np.exp(ref - ref.max(1, keepdims=True))
    for name, want in (("y", np.exp(ref) * ref), ("soft", e / e.sum(1, keepdims=True)), ("cols", ref.sum(0))):
        np.testing.assert_allclose(read[name], rnd(want).reshape(read[name].shape), rtol=ulp, atol=1e-6)
    # the column sums round once: adding in 16 bits would be off by many units in the last place
    naive = np.zeros(300, np.float32)
    for row in xv:
        naive = rnd(naive + row)
    assert np.abs(read["cols"] - ref.sum(0)).max() < np.abs(naive - ref.sum(0)).max()
