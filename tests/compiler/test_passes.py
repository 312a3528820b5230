"""Passes, one at a time: shape inference, broadcasting, simplify, fusion, schedule."""
import pytest

from fusegrad.compiler import compile
from fusegrad.compiler.ir import Graph, Node, ShapeError, float32, make, parse_graph
from fusegrad.compiler.passes import broadcast, fuse, schedule, shapes, simplify


def inp(name, shape, dt=float32):
    return Node("input", (), {"name": name}, tuple(shape), dt)


def c(v, dt=float32):
    return make("const", attrs={"value": v}, shape=(), dtype=dt)


def fused(graph):
    return fuse.fuse(simplify.simplify(broadcast.resolve(shapes.infer(graph))))


def test_shape_inference_rejects_a_wrong_declared_type():
    text = """graph f(%x: f32[2,3]) {
  %0: f32[3,2] = neg %x                          # bad.py:3
  return y=%0
}"""
    with pytest.raises(ShapeError, match=r"neg: declared f32\[3,2\] but the rule gives f32\[2,3\] \(at bad.py:3\)"):
        shapes.infer(parse_graph(text))


def test_broadcasting_becomes_explicit_expands():
    x, b = inp("x", (4, 3)), inp("b", (3,))
    g = broadcast.resolve(Graph("f", [x, b], [], {"y": make("add", [x, b])}))
    (y,) = g.outputs.values()
    assert [i.op for i in y.inputs] == ["input", "expand"]
    assert y.inputs[1].attrs["shape"] == (4, 3) and y.inputs[1].shape == (4, 3)


def test_simplify_folds_constants_and_identities():
    x = inp("x", (5,))
    two_plus_three = make("add", [c(2.0), c(3.0)])
    y = make("mul", [make("add", [x, c(-0.0)]), make("sub", [two_plus_three, c(4.0)])])   # (x + -0) * 1
    g = simplify.simplify(broadcast.resolve(Graph("f", [x], [], {"y": y})))
    assert g.outputs["y"] is x


def test_simplify_keeps_float_additions_that_change_the_sign_of_zero():
    """-0.0 + 0.0 is +0.0 and -0.0 - (-0.0) too: those are not identities; x - 0.0 is."""
    x = inp("x", (5,))
    outputs = {"a": make("add", [x, c(0.0)]), "b": make("sub", [x, c(-0.0)]), "c": make("sub", [x, c(0.0)])}
    g = simplify.simplify(broadcast.resolve(Graph("f", [x], [], outputs)))
    assert g.outputs["a"].op == "add" and g.outputs["b"].op == "sub" and g.outputs["c"] is x


def test_simplify_merges_common_subexpressions_and_drops_dead_code():
    x = inp("x", (5,))
    a1, a2 = make("exp", [x]), make("exp", [x])
    dead = make("log", [x])
    y = make("add", [a1, a2])
    assert dead.op == "log"
    g = simplify.simplify(Graph("f", [x], [], {"y": y}))
    ops_ = [n.op for n in g.nodes()]
    assert ops_.count("exp") == 1 and "log" not in ops_


def test_simplify_turns_small_integer_powers_into_multiplies():
    x = inp("x", (5,))
    g = simplify.simplify(broadcast.resolve(Graph("f", [x], [], {"y": make("pow", [x, c(2.0)])})))
    assert g.outputs["y"].op == "mul" and g.outputs["y"].inputs == (x, x)


def test_simplify_applies_the_declared_units_involutions_noops_and_compositions():
    x = inp("x", (4, 6))
    simp = lambda y: simplify.simplify(broadcast.resolve(Graph("f", [x], [], {"y": y}))).outputs["y"]  # noqa: E731
    for y in (make("add", [c(-0.0), x]), make("mul", [c(1.0), x]), make("sub", [x, c(0.0)]),
              make("div", [x, c(1.0)]), make("neg", [make("neg", [x])]),
              make("reshape", [x], {"shape": (4, 6)}), make("permute", [x], {"perm": (0, 1)}),
              make("sum", [make("reshape", [x], {"shape": (4, 6)})], {"axes": ()})):
        assert simp(y) is x, y.op
    # only where declared: 0 - x and 1 / x are not x (sub and div are not commutative)
    assert simp(make("sub", [c(0.0), x])).op == "sub" and simp(make("div", [c(1.0), x])).op == "div"
    # reshape after reshape is one reshape, permute after permute one permute (or none)
    r = simp(make("reshape", [make("reshape", [x], {"shape": (24,)})], {"shape": (6, 4)}))
    assert r.op == "reshape" and r.inputs == (x,) and r.attrs["shape"] == (6, 4)
    t = make("permute", [x], {"perm": (1, 0)})
    assert simp(make("permute", [t], {"perm": (1, 0)})) is x


def test_simplify_algebraic_facts_are_declared_with_the_ops():
    from fusegrad.compiler.ir.ops import OPS
    assert (OPS["add"].unit, OPS["add"].commutative) == (0, True)
    assert (OPS["mul"].unit, OPS["mul"].commutative) == (1, True)
    assert (OPS["sub"].unit, OPS["sub"].commutative) == (0, False)
    assert (OPS["div"].unit, OPS["div"].commutative) == (1, False)
    assert OPS["neg"].involution and not OPS["exp"].involution
    assert OPS["permute"].noop({"perm": (0, 1)}) and not OPS["permute"].noop({"perm": (1, 0)})
    assert OPS["pad"].noop is None and OPS["concat"].noop is None
    assert "pow" in simplify.REWRITES


def test_sigmoid_expression_is_one_kernel():
    x, w, b = inp("x", (1000,)), inp("w", (1000,)), inp("b", (1000,))
    z = make("add", [make("mul", [x, w]), b])
    s = make("recip", [make("add", [c(1.0), make("exp", [make("neg", [z])])])])
    y = make("sub", [make("mul", [s, c(2.0)]), c(1.0)])
    f = fused(Graph("f", [x, w, b], [], {"y": y}))
    assert len(f.kernels) == 1 and f.kernels[0].kind == "elementwise"


def test_mean_squared_error_is_one_reduction_kernel():
    p, t = inp("p", (64, 32)), inp("t", (64, 32))
    d = make("sub", [p, t])
    s = make("sum", [make("mul", [d, d])], {"axes": (0, 1)})
    loss = make("reshape", [make("mul", [s, c(1 / 2048)])], {"shape": ()})
    f = fused(Graph("mse", [p, t], [], {"loss": loss}))
    assert [k.kind for k in f.kernels] == ["reduce"]


def test_softmax_is_one_row_kernel_with_two_reductions():
    x = inp("x", (8, 16))
    m = make("reduce_max", [x], {"axes": (1,)})
    e = make("exp", [make("sub", [x, m])])
    y = make("div", [e, make("sum", [e], {"axes": (1,)})])
    (k,) = fused(Graph("softmax", [x], [], {"y": y})).kernels
    assert k.kind == "reduce" and k.order == "row" and [r.op for r in k.reduces] == ["reduce_max", "sum"]


def test_value_needed_by_two_kernels_is_materialized_once():
    x = inp("x", (8, 16))
    e = make("exp", [x])
    f = fused(Graph("f", [x], [], {"rows": make("sum", [e], {"axes": (1,)}),
                                   "cols": make("sum", [e], {"axes": (0,)})}))
    producers = [k for k in f.kernels if any(o.op == "exp" for o in k.outputs)]
    assert len(producers) == 1 and len(f.kernels) == 3


def test_matmul_takes_bias_and_relu_as_its_epilogue():
    x, w, b = inp("x", (4, 8)), inp("w", (6, 8)), inp("b", (6,))
    y = make("add", [make("matmul", [x, make("permute", [w], {"perm": (1, 0)})]), b])
    y = make("max", [y, c(0.0)])
    (k,) = fused(Graph("f", [x, w, b], [], {"y": y})).kernels
    assert k.kind == "matmul" and k.anchor.op == "matmul" and k.outputs[0].op == "max"


def test_schedule_shares_arena_space_between_dead_intermediates():
    x = inp("x", (16, 16))
    mats = [inp(f"m{i}", (16, 16)) for i in range(4)]
    t = x
    for m in mats:           # t1 = x@m0, t2 = t1@m1, t3 = t2@m2, y = t3@m3: t1 and t3 never live together
        t = make("matmul", [t, m])
    sched = schedule.schedule(fused(Graph("chain", [x] + mats, [], {"y": t})))
    temps = [b for b in sched.buffers if b.role == "temp"]
    assert len(temps) == 3
    assert sched.arena_bytes == 2 * 16 * 16 * 4 < sched.temp_bytes


def test_assign_writes_the_param_in_place_when_safe():
    w = Node("param", (), {"name": "w"}, (16,), float32)
    g = inp("g", (16,))
    new_w = make("sub", [w, make("mul", [g, c(0.1)])])
    sched = schedule.schedule(fused(Graph("sgd", [g], [w], {}, [(w, new_w)])))
    (k,) = sched.kernels
    assert [s for _, s in k.stores] == [sched.read_slot[id(w)]]


def test_assign_goes_through_a_temp_when_the_old_value_is_read_transposed():
    w = Node("param", (), {"name": "w"}, (4, 4), float32)
    new_w = make("add", [w, make("permute", [w], {"perm": (1, 0)})])
    sched = schedule.schedule(fused(Graph("sym", [], [w], {}, [(w, new_w)])))
    assert [k.name for k in sched.kernels][-1].startswith("assign")


def test_program_exposes_kernel_count_and_every_stage():
    x = inp("x", (10,))
    p = compile(Graph("f", [x], [], {"y": make("neg", [make("neg", [x])])}))
    assert p.num_kernels == 1
    for stage in ("graph", "passes", "kernels", "llvm"):
        assert p.text(stage)
    assert "after simplify" in p.text("passes") and "define i64 @\"fg_main\"" in p.text("llvm")
    assert parse_graph(p.text("graph")) is not None
    with pytest.raises(ValueError, match="unknown stage"):
        p.text("assembly")
