"""float16 and bfloat16 in the compiler: IR text, dtype rules, constant folding, the float32
accumulation pass, program keys and JSON, and the CPU kernels' conversions bit by bit
(rounding to nearest even, ties, subnormals, overflow, NaN) against references written here.
The GPU side is in codegen/test_ptx.py."""
from __future__ import annotations

import numpy as np
import pytest

from fusegrad import runtime
from fusegrad.compiler import compile
from fusegrad.compiler.ir import DTypeError, Graph, Node, bfloat16, dtypes, float16, float32, float64, int64, make
from fusegrad.compiler.ir.parser import parse_graph, structurally_equal
from fusegrad.compiler.ir.printer import print_graph
from fusegrad.compiler.pipeline import run_passes
from fusegrad.compiler.program import Program


def inp(name, shape, dt):
    return Node("input", (), {"name": name}, tuple(shape), dt)


def const(v, dt):
    return make("const", attrs={"value": v}, shape=(), dtype=dt)


def bf16_bits(x) -> np.ndarray:
    """float32 -> bfloat16 bit patterns by the textbook rule (lower half past the middle, or at
    it with an odd upper half, rounds up; NaN stays NaN)."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    upper, lower = bits >> 16, bits & 0xFFFF
    up = (lower > 0x8000) | ((lower == 0x8000) & (upper & 1 == 1))
    out = (upper + up).astype(np.uint16)
    return np.where(np.isnan(x), 0x7FC0, out).astype(np.uint16).reshape(np.shape(x))


def f16_values(x) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(x, np.float32).astype(np.float16)


def edge_values() -> np.ndarray:
    """float32 values where rounding rules differ: ties either way, just past ties, subnormals
    of both formats, the largest finite values, overflow, infinities, zeros of both signs."""
    one = np.float32(1.0)
    ties = [one + np.float32(2.0 ** -8), one + np.float32(3 * 2.0 ** -8), one + np.float32(2.0 ** -11),
            one + np.float32(3 * 2.0 ** -11), one + np.float32(2.0 ** -8 + 2.0 ** -23)]
    special = [0.0, -0.0, 2.0 ** -126, 2.0 ** -130 * 1.5, 2.0 ** -140, 2.0 ** -24, 2.0 ** -25, 2.0 ** -25 * 1.5,
               6.1e-5, 65504.0, 65519.0, 65520.0, 3.3895e38, float(np.finfo(np.float32).max), np.inf, np.nan,
               float(np.float32(np.nan) * -1)]
    x = np.array(ties + [-t for t in ties] + special + [-s for s in special], np.float32)
    rng = np.random.default_rng(5)
    return np.concatenate([x, (rng.standard_normal(200) * 10.0 ** rng.integers(-8, 8, 200)).astype(np.float32)])


def run(graph: Graph, *arrays) -> dict:
    return runtime.load(compile(graph))(list(arrays), [])


# ---------------------------------------------------------------- IR

def _graph() -> Graph:
    x, w = inp("x", (4, 8), float16), inp("w", (8, 3), bfloat16)
    wide = make("cast", [w], shape=w.shape, dtype=float16)
    y = make("matmul", [x, wide])
    s = make("sum", [make("mul", [y, make("expand", [const(0.5, float16)], {"shape": (4, 3)})])], {"axes": (1,)})
    return Graph("halves", [x, w], [], {"y": y, "s": s, "b": make("cast", [s], shape=s.shape, dtype=bfloat16)}, [])


def test_ir_prints_and_parses_16_bit_types():
    g = _graph()
    text = print_graph(g)
    assert "%x: f16[4,8]" in text and "%w: bf16[8,3]" in text and "bf16[4,1] = cast" in text
    back = parse_graph(text)
    assert structurally_equal(g, back) and print_graph(back) == text
    for _, after in run_passes(g)[0]:
        assert structurally_equal(parse_graph(print_graph(after)), after)


def test_dtype_rules_and_promotion():
    assert dtypes.from_short("f16") is float16 and dtypes.from_short("bf16") is bfloat16
    assert dtypes.from_name("bfloat16") is bfloat16
    assert dtypes.promote(float16, float16) is float16 and dtypes.promote(float16, bfloat16) is float32
    assert dtypes.promote(bfloat16, float32) is float32 and dtypes.promote(float64, float16) is float64
    assert dtypes.promote(int64, bfloat16) is bfloat16
    assert make("exp", [inp("x", (2,), bfloat16)]).dtype is bfloat16
    assert make("lt", [inp("x", (2,), float16), inp("y", (2,), float16)]).dtype is dtypes.bool_
    with pytest.raises(DTypeError, match="add.*f16.*bf16"):
        make("add", [inp("x", (2,), float16), inp("y", (2,), bfloat16)])


def test_host_conversions_match_the_references():
    x = edge_values()
    np.testing.assert_array_equal(dtypes.to_storage(x, bfloat16), bf16_bits(x))
    np.testing.assert_array_equal(dtypes.to_storage(x, float16), f16_values(x))
    back = dtypes.from_storage(bf16_bits(x), bfloat16)
    assert back.dtype == np.float32 and back.shape == x.shape
    np.testing.assert_array_equal(back.view(np.uint32), bf16_bits(x).astype(np.uint32) << 16)
    assert dtypes.to_storage(np.float32(1.5), bfloat16).shape == ()


def test_constant_folding_computes_in_float32_and_rounds_once():
    for dt, rnd in ((float16, lambda v: float(np.float16(v))),
                    (bfloat16, lambda v: float((bf16_bits(np.float32(v)).astype(np.uint32) << 16).view(np.float32)))):
        a, b = const(0.1, dt), const(0.2, dt)
        g = Graph("fold", [], [], {"y": make("add", [a, b]), "c": make("cast", [const(1 / 3, float64)], shape=(),
                                                                        dtype=dt),
                                   "w": make("cast", [a], shape=(), dtype=float32)}, [])
        final = run_passes(g)[0][-1][1]
        y, c, w = final.outputs["y"], final.outputs["c"], final.outputs["w"]
        assert y.op == c.op == w.op == "const"
        assert y.attrs["value"] == rnd(np.float32(0.1) + np.float32(0.2))
        assert c.attrs["value"] == rnd(np.float32(1 / 3))
        assert w.attrs["value"] == rnd(np.float32(0.1))          # the 16-bit constant's value
        out = run(g)
        assert dtypes.from_storage(out["y"], dt).item() == y.attrs["value"]


def test_accumulations_of_16_bit_floats_become_float32():
    g = _graph()
    after, sched = run_passes(g)
    names = [name for name, _ in after]
    assert names.index("float32 accumulation") == names.index("broadcasting resolution") + 1
    final = after[-1][1]
    accumulating = [n for k in sched.kernels for n in k.nodes if n.kind in ("reduce", "matmul", "scatter")]
    assert accumulating and all(n.dtype is float32 for n in accumulating)
    for name in ("y", "s"):
        out = final.outputs[name]
        assert out.op == "cast" and out.dtype is float16 and out.inputs[0].dtype is float32


def test_scatter_add_of_bfloat16_rounds_once():
    base, src = inp("base", (4,), bfloat16), inp("src", (64,), bfloat16)
    index = inp("i", (64,), int64)
    g = Graph("scatter", [base, index, src], [], {"y": make("scatter_add", [base, index, src], {"axis": 0})}, [])
    b = bf16_bits(np.full(4, 256.0, np.float32))
    s = bf16_bits(np.full(64, 1.0, np.float32))      # 256 + 1 rounds back to 256 in bfloat16 ...
    i = np.arange(64, dtype=np.int64) % 4
    y = dtypes.from_storage(run(g, b, i, s)["y"], bfloat16)
    np.testing.assert_array_equal(y, [272.0] * 4)     # ... but 256 + 16 is exact: one rounding


# ---------------------------------------------------------------- CPU kernels

@pytest.mark.parametrize("dt", [float16, bfloat16], ids=["f16", "bf16"])
def test_cpu_casts_round_bit_exactly(dt):
    """float32 -> 16 bits in the kernel (a store, and a cast fused into arithmetic), against the
    references, on ties, subnormals, overflow and specials; and back to float32 exactly."""
    x = edge_values()
    xin = inp("x", x.shape, float32)
    stored = make("cast", [xin], shape=x.shape, dtype=dt)
    g = Graph("casts", [xin], [], {"s": stored, "back": make("cast", [stored], shape=x.shape, dtype=float32),
                                   "twice": make("mul", [make("cast", [make("mul", [xin, make(
                                       "expand", [const(1.0, float32)], {"shape": x.shape})])], shape=x.shape,
                                       dtype=dt), make("expand", [const(2, dt)], {"shape": x.shape})])}, [])
    out = run(g, x)
    if dt is bfloat16:
        want_bits = bf16_bits(x)
        np.testing.assert_array_equal(out["s"], want_bits)        # NaN: 0x7FC0, as PyTorch
        want = (want_bits.astype(np.uint32) << 16).view(np.float32)
    else:
        want = f16_values(x)
        np.testing.assert_array_equal(out["s"], want)
        want = want.astype(np.float32)
    np.testing.assert_array_equal(out["back"], want)
    twice = dtypes.from_storage(out["twice"], dt)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(twice, dtypes.from_storage(dtypes.to_storage(want * 2, dt), dt))


def test_llvm_memory_types():
    for dt, mem in ((float16, "half"), (bfloat16, "i16")):
        x = inp("x", (64,), dt)
        p = compile(Graph("t", [x], [], {"y": make("exp", [x])}, []))
        llvm = p.text("llvm")
        assert f"load {mem}" in llvm and f"store {mem}" in llvm
        assert "fadd half" not in llvm and "fmul half" not in llvm


def test_program_keys_and_json_name_the_dtypes():
    keys = set()
    for dt in (float32, float16, bfloat16):
        x = inp("x", (16,), dt)
        p = compile(Graph("t", [x], [], {"y": make("add", [x, x])}, []))
        keys.add(p.key)
        assert [b.dtype for b in p.buffers if b.role == "input"] == [dt.name]
        q = Program.from_json(p.to_json())
        assert q.key == p.key and q.buffers == p.buffers
    assert len(keys) == 3
