"""IR: op rules (shapes, dtypes, errors), the text printer and parser."""
import math

import pytest

from fusegrad.compiler.ir import (
    AxisError,
    DTypeError,
    Graph,
    Node,
    ShapeError,
    float32,
    float64,
    int32,
    int64,
    make,
    parse_graph,
    print_graph,
    structurally_equal,
    uint8,
)
from fusegrad.compiler.ir import bool_ as b8
from fusegrad.compiler.ir.dtypes import promote


def inp(name, shape, dt=float32):
    return Node("input", (), {"name": name}, tuple(shape), dt)


def test_broadcast_rule_and_error_names_op_shapes_and_line():
    a, b = inp("a", (4, 1)), inp("b", (3,))
    assert make("add", [a, b]).shape == (4, 3)
    with pytest.raises(ShapeError) as e:
        make("add", [inp("x", (4, 6)), inp("y", (6, 4))], loc="model.py:7")
    msg = str(e.value)
    assert "add" in msg and "f32[4,6]" in msg and "f32[6,4]" in msg and "model.py:7" in msg
    assert "the size of tensor a (6) must match the size of tensor b (4) at non-singleton dimension 1" in msg
    assert isinstance(e.value, RuntimeError)


def test_dtype_rules():
    x, y = inp("x", (3,)), inp("y", (3,), int64)
    assert make("lt", [x, x]).dtype is b8
    with pytest.raises(DTypeError, match="one dtype"):
        make("add", [x, y])
    with pytest.raises(DTypeError, match="floating-point"):
        make("exp", [y])
    assert make("cast", [y], shape=(3,), dtype=float64).dtype is float64
    assert promote(uint8, int32) is int32 and promote(int32, int64) is int64 and promote(b8, uint8) is uint8
    assert promote(int64, float32) is float32 and promote(float32, float64) is float64


def test_reduce_reshape_permute_expand_slice_pad_concat_rules():
    x = inp("x", (2, 3, 4))
    assert make("sum", [x], {"axes": (0, 2)}).shape == (1, 3, 1)
    with pytest.raises(AxisError, match=r"range of \[-3, 2\], but got 3"):
        make("sum", [x], {"axes": (3,)}, loc="f.py:1")
    assert make("reshape", [x], {"shape": (6, 4)}).shape == (6, 4)
    with pytest.raises(ShapeError, match=r"shape '\[5, 5\]' is invalid for input of size 24"):
        make("reshape", [x], {"shape": (5, 5)})
    assert make("permute", [x], {"perm": (2, 0, 1)}).shape == (4, 2, 3)
    assert make("expand", [inp("b", (3, 1))], {"shape": (2, 3, 5)}).shape == (2, 3, 5)
    with pytest.raises(ShapeError, match="expanded size"):
        make("expand", [inp("b", (3, 2))], {"shape": (3, 5)})
    assert make("slice", [x], {"starts": (0, 1, 0), "stops": (2, 3, 4), "steps": (1, 1, 3)}).shape == (2, 2, 2)
    assert make("pad", [x], {"low": (1, 0, 0), "high": (0, 2, 0)}).shape == (3, 5, 4)
    assert make("concat", [x, x], {"axis": 1}).shape == (2, 6, 4)
    m = make("matmul", [inp("a", (5, 2, 3)), inp("b", (3, 7))])
    assert m.shape == (5, 2, 7)
    with pytest.raises(ShapeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x7\)"):
        make("matmul", [inp("a", (2, 3)), inp("b", (4, 7))])


def _sample_graph():
    x, y = inp("x", (100, 1)), inp("y", (100, 1))
    w = Node("param", (), {"name": "net.weight"}, (1, 1), float32)
    b = Node("param", (), {"name": "net.bias"}, (1,), float32)
    h = make("add", [make("matmul", [x, w], loc="linreg.py:21"),
                     make("expand", [b], {"shape": (100, 1)}, loc="linreg.py:21")], loc="linreg.py:21")
    d = make("sub", [h, y], loc="linreg.py:22")
    specials = [make("const", attrs={"value": v}, shape=(), dtype=float32) for v in (math.inf, -math.inf, 0.1, -0.0)]
    s = make("sum", [make("mul", [d, d])], {"axes": (0, 1)}, loc="linreg.py:22")
    loss = make("reshape", [make("mul", [s, specials[2]])], {"shape": ()}, loc="linreg.py:22")
    keep = make("add", [make("add", [specials[0], specials[1]]), specials[3]])
    new_w = make("sub", [w, make("mul", [w, make("const", attrs={"value": 0.5}, shape=(), dtype=float32)])])
    return Graph("step", [x, y], [w, b], {"loss": loss, "k": keep}, [(w, new_w)])


def test_printer_matches_design_format():
    text = print_graph(_sample_graph())
    lines = text.splitlines()
    assert lines[0] == ('graph step(%x: f32[100,1], %y: f32[100,1]; params %weight: f32[1,1] "net.weight", '
                        '%bias: f32[1] "net.bias") {')
    assert any(line.startswith("  %0: f32[100,1] = matmul %x, %weight") and line.endswith("# linreg.py:21")
               for line in lines)
    assert "expand %bias, shape=[100,1]" in text
    assert lines[-2].startswith("  return loss=%") and "; assign net.weight <- %" in lines[-2]


def test_parser_round_trip_keeps_everything():
    g = _sample_graph()
    text = print_graph(g)
    back = parse_graph(text)
    assert print_graph(back) == text
    assert structurally_equal(g, back)
    consts = [n.attrs["value"] for n in back.nodes() if n.op == "const"]
    assert math.inf in consts and -math.inf in consts
    assert any(v == 0 and math.copysign(1, v) < 0 for v in consts)   # -0.0 survives


def test_structural_equality_sees_differences():
    g = _sample_graph()
    other = parse_graph(print_graph(g).replace("# linreg.py:22", "# linreg.py:23", 1))
    assert not structurally_equal(g, other)
