"""The all_reduce primitive (issue 18) in IR: its declaration, text form, VJP, the passes that
must keep it (simplify never merges or folds it; fusion makes it a kernel of its own), the CPU
host call through runtime/hostcalls.py and its error path, and the GPU backend's refusal.

No MPI here: the host function registered is a fake standing for identical ranks (a sum over
two ranks doubles) that records its calls."""
from __future__ import annotations

import numpy as np
import pytest

from fusegrad.compiler import compile
from fusegrad.compiler.codegen import cpu as cpu_codegen
from fusegrad.compiler.codegen import emit
from fusegrad.compiler.ir import (
    DTypeError,
    Graph,
    IRError,
    Node,
    bfloat16,
    bool_,
    float32,
    int64,
    make,
    parse_graph,
    print_graph,
    structurally_equal,
)
from fusegrad.compiler.ir.ops import ALL_REDUCE_OPS, OPS
from fusegrad.compiler.passes import autodiff, broadcast, fuse, shapes, simplify
from fusegrad.compiler.program import HOST_CALLS
from fusegrad.runtime import hostcalls, load

RANKS = 2          # what the fake stands for


def inp(name, shape, dt=float32):
    return Node("input", (), {"name": name}, tuple(shape), dt)


def all_reduce(x, reduce="sum", group=0):
    return make("all_reduce", [x], {"reduce": reduce, "group": group})


class FakeRanks:
    """RANKS identical processes: sum and avg over them, max and min of equal values."""

    def __init__(self):
        self.calls = []

    def __call__(self, src, dst, count, dtype, op, group):
        self.calls.append((count, dtype, op, group, src.dtype.name, dst is src))
        dst[...] = src * RANKS if op == "sum" else src
        return 0


@pytest.fixture
def ranks():
    fake = FakeRanks()
    previous = hostcalls.register_all_reduce(fake)
    yield fake
    hostcalls.register_all_reduce(previous)


@pytest.fixture
def nothing_registered():
    previous = hostcalls.register_all_reduce(None)
    yield
    hostcalls.register_all_reduce(previous)


def run(graph, *inputs, params=()):
    return load(compile(graph))(list(inputs), list(params))


# ---------------------------------------------------------------- declaration and text

def test_declared_with_its_type_rules_and_attributes():
    d = OPS["all_reduce"]
    assert (d.kind, d.arity, d.attrs, d.grad_name) == ("collective", 1, {"reduce": "a name", "group": "an integer"},
                                                       "AllReduceBackward0")
    assert d.effectful and d.fold is None and d.may_fail(float32)
    y = all_reduce(inp("x", (2, 3)), "max", 3)
    assert (y.shape, y.dtype) == ((2, 3), float32)
    assert all_reduce(inp("i", (4,), int64), "min").dtype is int64


@pytest.mark.parametrize("x,attrs,error,match", [
    (inp("x", (2,)), {"reduce": "mean", "group": 0}, IRError, "reduce must be one of sum, avg, max, min, got 'mean'"),
    (inp("x", (2,)), {"reduce": "sum", "group": -1}, IRError, "group must be a non-negative"),
    (inp("i", (2,), int64), {"reduce": "avg", "group": 0}, DTypeError, r"reduce='avg' needs a floating-point"),
    (inp("b", (2,), bool_), {"reduce": "max", "group": 0}, DTypeError, "not supported on bool"),
])
def test_bad_attributes_and_dtypes_raise_naming_the_op(x, attrs, error, match):
    with pytest.raises(error, match=match) as info:
        make("all_reduce", [x], attrs, loc="m.py:3")
    assert str(info.value).startswith("all_reduce: ") and str(info.value).endswith("(at m.py:3)")


TEXT = """graph step(%x: f32[4,3]; params %weight: f32[4,3] "net.weight") {
  %0: f32[4,3] = mul %x, %weight                   # step.py:5
  %1: f32[4,3] = all_reduce %0, reduce="avg", group=1 # step.py:6
  %2: f32[4,3] = all_reduce %0, reduce="avg", group=1 # step.py:7
  %3: f32[4,3] = sub %weight, %2
  return y=%1; assign net.weight <- %3
}"""


def test_a_dump_with_all_reduce_parses_back_before_and_after_the_passes():
    from fusegrad.compiler import run_passes
    g = parse_graph(TEXT)
    assert print_graph(g) == TEXT
    after, _ = run_passes(g)
    for stage in [g] + [h for _, h in after]:
        text = print_graph(stage)
        back = parse_graph(text)
        assert print_graph(back) == text and structurally_equal(stage, back)
    assert print_graph(after[-1][1]).count("= all_reduce %0") == 2       # simplify kept both


def test_the_parser_checks_the_attributes():
    from fusegrad.compiler.ir.parser import ParseError
    bad = TEXT.replace('reduce="avg", group=1 # step.py:6', 'reduce=2, group=1 # step.py:6')
    with pytest.raises(ParseError, match="attribute 'reduce' of all_reduce must be a name"):
        parse_graph(bad)
    with pytest.raises(ParseError, match="all_reduce needs attribute"):
        parse_graph(TEXT.replace(', group=1 # step.py:7', ' # step.py:7'))


# ---------------------------------------------------------------- passes

def test_simplify_never_merges_folds_or_keeps_a_dead_one():
    x = inp("x", (5,))
    e1, e2 = make("exp", [x]), make("exp", [x])                    # equal inputs: merged
    a, b = all_reduce(e1), all_reduce(e2)
    c = all_reduce(make("const", attrs={"value": 2.0}, shape=(5,), dtype=float32))
    dead = all_reduce(x)
    assert dead.key == all_reduce(x).key                            # structurally equal ...
    g = simplify.simplify(broadcast.resolve(Graph("f", [x], [], {"y": make("add", [make("add", [a, b]), c])})))
    nodes = g.nodes()
    reduces = [n for n in nodes if n.op == "all_reduce"]
    assert len(reduces) == 3 and len({id(n) for n in reduces}) == 3    # ... but never one node
    assert [n.op for n in nodes].count("exp") == 1
    assert reduces[0].inputs[0] is reduces[1].inputs[0]
    assert any(n.op == "all_reduce" and n.inputs[0].op == "const" for n in nodes)     # not folded


def fused(graph):
    return fuse.fuse(simplify.simplify(broadcast.resolve(shapes.infer(graph))))


def test_fusion_gives_it_a_kernel_of_its_own_and_its_operand_a_buffer():
    x, w = inp("x", (8,)), inp("w", (8,))
    y = make("exp", [all_reduce(make("mul", [x, w]))])
    kernels = fused(Graph("f", [x, w], [], {"y": y})).kernels
    assert [(k.kind, [n.op for n in k.nodes], k.reason) for k in kernels] == [
        ("elementwise", ["mul"], "all_reduce operand of k1"),
        ("collective", ["all_reduce"], "all_reduce: own kernel (a host call)"),
        ("elementwise", ["exp"], "output requested"),
    ]
    assert {r.kind for k in kernels for r in k.reasons} <= set(fuse.REASON_KINDS)


def test_a_contiguous_view_of_a_buffer_is_read_in_place_and_other_views_are_copied(ranks):
    x = inp("x", (4, 3))
    flat = all_reduce(make("reshape", [x], {"shape": (12,)}))
    rows = all_reduce(make("slice", [x], {"starts": (1, 0), "stops": (3, 3), "steps": (1, 1)}))
    cols = all_reduce(make("permute", [x], {"perm": (1, 0)}))
    g = Graph("f", [x], [], {"flat": flat, "rows": rows, "cols": cols})
    program = compile(g)
    kinds = [(k.kind, k.fused) for k in program.kernels]
    assert kinds[:2] == [("collective", ("%0 reshape", "%1 all_reduce")), ("collective", ("%2 slice", "%3 all_reduce"))]
    assert kinds[2][0] == "elementwise" and kinds[3][0] == "collective"         # the transpose is copied first
    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = load(program)([a], [])
    np.testing.assert_array_equal(out["flat"], 2 * a.reshape(12))
    np.testing.assert_array_equal(out["rows"], 2 * a[1:3])
    np.testing.assert_array_equal(out["cols"], 2 * a.T)
    assert [c[0] for c in ranks.calls] == [12, 6, 12]


# ---------------------------------------------------------------- the host call

def test_the_program_calls_the_registered_function_between_its_kernels(ranks):
    x = inp("x", (3,))
    y = make("add", [all_reduce(make("mul", [x, x]), "sum", 7), all_reduce(x, "max", 2)])
    program = compile(Graph("f", [x], [], {"y": y}))
    host_slot = len(program.buffers) + HOST_CALLS.index("fg_host_all_reduce")    # after the buffers
    assert '%"fg_host_all_reduce"' in program.text("llvm") and any(host_slot in c.args for c in program.calls)
    a = np.array([1.0, 2.0, 3.0], np.float32)
    out = load(program)([a], [])["y"]
    np.testing.assert_array_equal(out, 2 * a * a + a)
    assert sorted(ranks.calls) == [(3, "float32", "max", 2, "float32", False),
                                   (3, "float32", "sum", 7, "float32", False)]


def test_programs_without_a_collective_make_no_host_call():
    x = inp("x", (3,))
    program = compile(Graph("f", [x], [], {"y": make("exp", [x])}))
    assert "fg_host_all_reduce" not in program.text("llvm")
    assert all(s < len(program.buffers) for c in program.calls for s in c.args)


def test_the_abi_codes_agree_between_the_compiler_and_the_runtime():
    assert cpu_codegen.HOST_DTYPES == hostcalls.HOST_DTYPES
    assert ALL_REDUCE_OPS == hostcalls.ALL_REDUCE_OPS
    assert emit.ERR_HOST == hostcalls.ERR_HOST
    assert cpu_codegen.HOST_ALL_REDUCE_GLOBAL == "fg_host_all_reduce"


def test_16_bit_floats_reach_the_host_as_their_storage(ranks):
    x = inp("x", (4,), bfloat16)
    bits = np.array([0x3F80, 0x4000, 0x4040, 0x4080], np.uint16)           # 1, 2, 3, 4
    out = run(Graph("f", [x], [], {"y": all_reduce(x, "max")}), bits)["y"]
    np.testing.assert_array_equal(out, bits)
    assert ranks.calls == [(4, "bfloat16", "max", 0, "uint16", False)]


def test_an_assigned_output_gets_the_result_in_both_places(ranks):
    x = inp("x", (4,))
    p = Node("param", (), {"name": "state"}, (4,), float32)
    y = all_reduce(make("mul", [x, x]))
    g = Graph("f", [x], [p], {"y": y}, [(p, y)])
    state = np.zeros(4, np.float32)
    a = np.arange(4, dtype=np.float32)
    out = run(g, a, params=[state])
    np.testing.assert_array_equal(out["y"], 2 * a * a)
    np.testing.assert_array_equal(state, 2 * a * a)


def test_nothing_registered_raises_at_the_users_line(nothing_registered):
    x = inp("x", (3,))
    y = make("exp", [make("all_reduce", [x], {"reduce": "sum", "group": 0}, loc="train.py:9")])
    exe = load(compile(Graph("f", [x], [], {"y": y})))
    with pytest.raises(hostcalls.HostCallError,
                       match=r"^all_reduce needs fusegrad.distributed.init_process_group\(\) \(at train.py:9\)$"):
        exe([np.ones(3, np.float32)], [])
    assert isinstance(hostcalls.HostCallError("x"), RuntimeError)
    assert hostcalls.take_failure() is None                 # the failure was taken, not left behind


def test_a_failing_host_function_raises_its_error_and_stops_the_program():
    calls = []

    def broken(src, dst, count, dtype, op, group):
        calls.append(op)
        raise ConnectionError("rank 1 went away")

    previous = hostcalls.register_all_reduce(broken)
    try:
        x, p = inp("x", (3,)), Node("param", (), {"name": "p"}, (3,), float32)
        new = make("add", [p, all_reduce(make("mul", [x, x]), "avg")])
        program = compile(Graph("f", [x], [p], {}, [(p, new)]))
        state = np.ones(3, np.float32)
        with pytest.raises(hostcalls.HostCallError, match=r"all_reduce\(f32\[3\], reduce='avg', group=0\) failed in "
                                                          r"its host call: ConnectionError: rank 1 went away") as info:
            load(program)([np.ones(3, np.float32)], [state])
        assert isinstance(info.value.__cause__, ConnectionError)
        np.testing.assert_array_equal(state, 1.0)           # the kernel after it never ran
        hostcalls.register_all_reduce(lambda *args: 5)
        with pytest.raises(hostcalls.HostCallError, match="the host function returned 5"):
            load(program)([np.ones(3, np.float32)], [state])
    finally:
        hostcalls.register_all_reduce(previous)
    assert calls == ["avg"]


def test_a_keyboard_interrupt_in_the_host_function_comes_out_as_it_is():
    def interrupted(*args):
        raise KeyboardInterrupt

    previous = hostcalls.register_all_reduce(interrupted)
    try:
        x = inp("x", (2,))
        with pytest.raises(KeyboardInterrupt):
            run(Graph("f", [x], [], {"y": all_reduce(x)}), np.ones(2, np.float32))
    finally:
        hostcalls.register_all_reduce(previous)


def test_register_refuses_what_it_cannot_call():
    with pytest.raises(TypeError, match="expected a callable"):
        hostcalls.register_all_reduce(3)    # type: ignore[arg-type]


def test_the_gpu_backend_refuses_it_naming_the_op():
    x = inp("x", (3,))
    g = Graph("f", [x], [], {"y": make("all_reduce", [x], {"reduce": "sum", "group": 0}, loc="m.py:2")})
    with pytest.raises(NotImplementedError, match=r"all_reduce: not supported on CUDA devices yet .*\(at m.py:2\)"):
        compile(g, "cuda")


# ---------------------------------------------------------------- VJP

@pytest.mark.parametrize("reduce,factor", [("sum", RANKS), ("avg", 1)])
def test_the_gradient_is_the_cotangent_all_reduced_the_same_way(ranks, reduce, factor):
    """loss = sum(all_reduce(x * x)) on every rank: d loss / dx = all_reduce(ones) * 2x."""
    x = inp("x", (5,))
    loss = make("sum", [all_reduce(make("mul", [x, x]), reduce)], {"axes": (0,)})
    g = autodiff.differentiate(Graph("f", [x], [], {"loss": loss}), "loss")
    reduces = [n for n in g.nodes() if n.op == "all_reduce"]       # the forward one and the cotangent's
    assert len(reduces) == 2 and all(n.attrs == {"reduce": reduce, "group": 0} for n in reduces)
    a = np.linspace(-1, 2, 5).astype(np.float32)
    out = run(g, a)
    np.testing.assert_allclose(out["dloss_dx"], factor * 2 * a, rtol=1e-6)
    eps = 1e-3                       # and the finite differences of the same program agree
    exe = load(compile(Graph("f", [x], [], {"loss": loss})))
    loss_at = lambda v: float(exe([v.astype(np.float32)], [])["loss"][0])
    for i in range(5):
        hi, lo = a.astype(np.float64), a.astype(np.float64)
        hi[i] += eps
        lo[i] -= eps
        fd = (loss_at(hi) - loss_at(lo)) / (2 * eps)
        assert fd == pytest.approx(float(out["dloss_dx"][i]), rel=1e-2, abs=1e-2)


@pytest.mark.parametrize("reduce", ["max", "min"])
def test_max_and_min_are_not_differentiable(reduce):
    x = inp("x", (3,))
    loss = make("sum", [all_reduce(x, reduce)], {"axes": (0,)})
    with pytest.raises(RuntimeError, match=f"all_reduce with reduce='{reduce}' is not differentiable"):
        autodiff.differentiate(Graph("f", [x], [], {"loss": loss}), "loss")
