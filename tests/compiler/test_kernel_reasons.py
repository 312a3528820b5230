"""Every kernel says why it ends where it does (issue 17): fusion records the fact that gave
each kernel's values a buffer, the `kernels` dump stage prints it (`reason`), and programs
keep it as data (KernelInfo.reason). Asserted exactly for the W1 expression, softmax, an
MLP training step and the seed's linear-regression step, then one IR graph per other fact."""
import json

import pytest

import fusegrad
import fusegrad.nn as nn
import fusegrad.optim as optim
from fusegrad.compiler import Program, compile
from fusegrad.compiler.ir import Graph, float32, make, parse_graph
from fusegrad.compiler.passes import fuse
from fusegrad.compiler.program import ProgramFormatError


def reasons(program) -> list:
    return [(k.name, k.kind, k.reason) for k in program.kernels]


def ir_reasons(text: str) -> list:
    return reasons(compile(parse_graph(text)))


# ---------------------------------------------------------------- the four workloads

def test_w1_expression_is_one_kernel_ended_by_its_output():
    x, w, b = fusegrad.rand(1000), fusegrad.rand(1000), fusegrad.rand(1000)
    y = fusegrad.sigmoid(x * w + b) * 2 - 1
    y.numpy()
    assert reasons(fusegrad.program_of(y)) == [("k0", "elementwise", "output requested")]
    lowered = fusegrad.compile(lambda x, w, b: fusegrad.sigmoid(x * w + b) * 2 - 1).lower(x, w, b)
    assert reasons(lowered.program) == [("k0", "elementwise", "output requested")]
    assert "  reason  output requested" in lowered.text("kernels").splitlines()


def test_softmax_rows_are_one_kernel_and_columns_say_why_they_split():
    rows = fusegrad.compile(lambda x: fusegrad.softmax(x, dim=1)).lower(fusegrad.rand(4, 8))
    assert reasons(rows.program) == [("k0", "reduce", "output requested")]
    columns = fusegrad.compile(lambda x: fusegrad.softmax(x, dim=0)).lower(fusegrad.rand(4, 8))
    assert reasons(columns.program) == [
        ("k0", "reduce", "reduction over axis 0 (not the innermost axis) does not fuse into its consumer k1"),
        ("k1", "elementwise", "materialized: read by 2 kernels (k2, k3)"),
        ("k2", "reduce", "reduction over axis 0 (not the innermost axis) does not fuse into its consumer k3"),
        ("k3", "elementwise", "output requested"),
    ]


def _step(model, loss_fn, lr):
    optimizer = optim.SGD(model.parameters(), lr=lr)

    def step(x, y):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss
    return step


def test_mlp_step():
    fusegrad.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    lowered = fusegrad.compile(_step(model, nn.MSELoss(), 0.1)).lower(fusegrad.rand(32, 8), fusegrad.rand(32, 4))
    same = "same loop over"
    assert reasons(lowered.program) == [
        ("k0", "matmul", "matmul: own kernel, epilogue fused: add; "
                         "materialized: read by 2 kernels (k1, k2; k2 merged into k1 later)"),
        ("k1", "elementwise", "%5: materialized: read by 2 kernels (k2, k6; k2 merged into k1 later); "
                              f"%6: matmul operand of k3, k10; merged k2: {same} [32,16], "
                              "reading what this kernel writes at the same element"),
        ("k3", "matmul", "matmul: own kernel, epilogue fused: add, sub; materialized: read by 2 kernels (k4, k5)"),
        ("k4", "reduce", "output requested"),
        ("k5", "elementwise", "matmul operand of k6, k10"),
        ("k6", "matmul", "matmul: own kernel, epilogue fused: where; matmul operand of k7"),
        ("k7", "matmul", "matmul: own kernel; output requested"),
        ("k8", "reduce", "reduction over axis 0 (not the innermost axis) does not fuse into its consumer k9"),
        ("k9", "elementwise", f"%27: output requested; %39: assigned to model.0.bias; merged k14: {same} [16], "
                              "reading what this kernel writes at the same element"),
        ("k10", "matmul", "matmul: own kernel; output requested"),
        ("k11", "reduce", "reduction over axis 0 (not the innermost axis) does not fuse into its consumer k12"),
        ("k12", "elementwise", f"%33: output requested; %45: assigned to model.2.bias; merged k16: {same} [4], "
                               "reading what this kernel writes at the same element"),
        ("k13", "elementwise", "assigned to model.0.weight"),
        ("k15", "elementwise", "assigned to model.2.weight"),
    ]
    text = lowered.text("kernels")
    assert "  fuses   %4 const, %5 le, %6 where\n" in text      # the names the reasons use
    assert text.count("\n  reason  ") == len(lowered.kernels)


def test_seed_linear_regression_step():
    """examples/linear_regression.py's step (nn.Linear(1, 1), MSELoss, SGD), compiled."""
    fusegrad.manual_seed(1)
    x = fusegrad.rand(100, 1) * 10
    y = 2.5 * x + 1 + fusegrad.randn(100, 1)
    lowered = fusegrad.compile(_step(nn.Linear(1, 1), nn.MSELoss(), 0.01)).lower(x, y)
    assert reasons(lowered.program) == [
        ("k0", "matmul", "matmul: own kernel, epilogue fused: add, sub; materialized: read by 2 kernels (k1, k2)"),
        ("k1", "reduce", "output requested"),
        ("k2", "elementwise", "matmul operand of k3"),
        ("k3", "matmul", "matmul: own kernel; output requested"),
        ("k4", "reduce", "reduction over axis 0 (not the innermost axis) does not fuse into its consumer k5"),
        ("k5", "elementwise", "%18: output requested; %24: assigned to model.bias; merged k7: same loop over [1], "
                              "reading what this kernel writes at the same element"),
        ("k6", "elementwise", "assigned to model.weight"),
    ]
    block = lowered.text("kernels").split("kernel k0: ")[1].split("\nkernel ")[0]
    assert block.splitlines()[-1] == ("  reason  matmul: own kernel, epilogue fused: add, sub; "
                                      "materialized: read by 2 kernels (k1, k2)")


# ---------------------------------------------------------------- one graph per other fact

def test_a_reduction_read_by_a_broadcast_over_another_shape():
    assert ir_reasons("""graph f(%x: f32[4,8], %z: f32[4,16]) {
  %0: f32[4,1] = sum %x, axes=[1]
  %1: f32[4,16] = expand %0, shape=[4,16]
  %2: f32[4,16] = mul %1, %z
  return y=%2
}""") == [("k0", "reduce", "reduction over axis 1 feeds a broadcast consumer (k1)"),
          ("k1", "elementwise", "output requested")]


def test_a_reduction_of_a_reduction():
    assert ir_reasons("""graph f(%x: f32[4,8]) {
  %0: f32[4,1] = sum %x, axes=[1]
  %1: f32[1,1] = sum %0, axes=[0]
  return y=%1
}""")[0] == ("k0", "reduce", "reduction over axis 1 feeds another reduction (k1)")


def test_a_matmul_read_by_a_reduction():
    assert ir_reasons("""graph f(%a: f32[4,8], %b: f32[8,16]) {
  %0: f32[4,16] = matmul %a, %b
  %1: f32[4,1] = sum %0, axes=[1]
  return y=%1
}""") == [("k0", "matmul", "matmul: own kernel; result feeds the reduction in k1"),
          ("k1", "reduce", "output requested")]


def test_matmul_operands_and_gather_sources():
    assert ir_reasons("""graph f(%a: f32[4,8], %b: f32[8,16]) {
  %0: f32[4,8] = exp %a
  %1: f32[4,16] = matmul %0, %b
  return y=%1
}""")[0] == ("k0", "elementwise", "matmul operand of k1")
    assert ir_reasons("""graph f(%x: f32[4,5,3], %b: f32[12,16]) {
  %0: f32[5,4,3] = permute %x, perm=[1,0,2]
  %1: f32[5,12] = reshape %0, shape=[5,12]
  %2: f32[5,16] = matmul %1, %b
  return y=%2
}""")[0] == ("k0", "elementwise", "copied for the matmul in k1 (a view it cannot read in place)")
    assert ir_reasons("""graph f(%x: f32[4,8], %i: i64[4,1]) {
  %0: f32[4,8] = exp %x
  %1: f32[4,1] = gather %0, %i, axis=1
  return y=%1
}""")[0] == ("k0", "elementwise", "gather source of k1")


def test_scatter_is_its_own_kernel():
    (k,) = compile(parse_graph("""graph f(%x: f32[4,8], %i: i64[4,1], %v: f32[4,1]) {
  %0: f32[4,8] = scatter_add %x, %i, %v, axis=1
  return y=%0
}""")).kernels
    assert (k.kind, k.reason) == ("scatter", "scatter: own kernel; output requested")


def test_a_value_reached_through_too_many_chains_of_views():
    x0 = make("input", [], {"name": "x"}, shape=(4, 16), dtype=float32)
    x = x0
    for _ in range(7):               # x[:, 1:] + x[:, :-1]: 2**7 chains to the first exp
        w = x.shape[1]
        x = make("add", [make("slice", [x], {"starts": (0, 1), "stops": (4, w), "steps": (1, 1)}),
                         make("slice", [x], {"starts": (0, 0), "stops": (4, w - 1), "steps": (1, 1)})])
    assert reasons(compile(Graph("stencil", [x0], [], {"y": x}))) == [
        ("k0", "elementwise", f"materialized: evaluated 64 times per element (limit {fuse.MAX_EVALUATIONS})"),
        ("k1", "elementwise", "output requested")]


def test_copy_kernels_of_the_schedule():
    assert ir_reasons("""graph f(%x: f32[4,8]) {
  return y=%x
}""") == [("copy_y", "elementwise", "copy: output y is input x as it is")]
    assert ir_reasons("""graph f(%x: f32[4,4]; params %w: f32[4,4] "w") {
  %0: f32[4,4] = permute %w, perm=[1,0]
  %1: f32[4,4] = add %0, %x
  return ; assign w <- %1
}""") == [("k0", "elementwise", "assigned to w"),
          ("assign0", "elementwise", "copy: writes w last (its new value cannot be written in place)")]


def test_fusion_records_reasons_as_data():
    graph = parse_graph("""graph f(%a: f32[4,8], %b: f32[8,16]) {
  %0: f32[4,16] = matmul %a, %b
  %1: f32[4,1] = sum %0, axes=[1]
  return y=%1
}""")
    kernels = fuse.fuse(graph).kernels
    assert [[(r.kind, r.text) for r in k.reasons] for k in kernels] == [
        [("matmul", "matmul: own kernel"), ("refused", "result feeds the reduction in k1")],
        [("output", "output requested")]]
    assert {r.kind for k in kernels for r in k.reasons} <= set(fuse.REASON_KINDS)
    assert kernels[0].reasons[1].value is kernels[0].outputs[0]


def test_reason_survives_json_and_is_validated():
    program = compile(parse_graph("""graph f(%x: f32[4,8]) {
  %0: f32[4,8] = exp %x
  return y=%0
}"""))
    again = Program.from_json(program.to_json())
    assert again.kernels == program.kernels and again.kernels[0].reason == "output requested"
    data = json.loads(program.to_json())
    data["kernels"][0]["reason"] = 3
    with pytest.raises(ProgramFormatError, match="reason"):
        Program.from_json(json.dumps(data))
    del data["kernels"][0]["reason"]
    with pytest.raises(ProgramFormatError):
        Program.from_json(json.dumps(data))
