"""The IR parser rejects every malformed text with a ParseError at its line and column.

The first tests each feed one known mistake; the last one mutates printed graphs at random and
checks that the parser either reads the text (and then printing and reading again is stable)
or raises ParseError, never another exception.
"""
import functools
import random
import re

import numpy as np
import pytest

import fusegrad
import fusegrad.nn as nn
import fusegrad.nn.functional as F
from fusegrad.compiler.ir import OPS, ShapeError, parse_graph, print_graph
from fusegrad.compiler.ir.parser import ParseError
from fusegrad.compiler.passes import shapes

BASE = """graph f(%x: f32[2,3], %y: f32[3,4]; params %w: f32[2,4] "net.w") {
  %0: f32[2,4] = matmul %x, %y                     # m.py:1
  %1: f32[2,4] = add %0, %w                        # m.py:2
  return out=%1; assign net.w <- %1
}"""


def edited(line: int, new: str, text: str = BASE) -> str:
    """`text` with its `line` (1-based) replaced by `new`."""
    lines = text.splitlines()
    lines[line - 1] = new
    return "\n".join(lines)


def parse_error(text: str, line: int, at: str | None = None) -> ParseError:
    """Parse `text`, expecting a ParseError on `line`, at the column where `at` starts there."""
    with pytest.raises(ParseError) as e:
        parse_graph(text)
    err = e.value
    assert err.line == line, str(err)
    if at is not None:
        assert err.column == text.splitlines()[line - 1].index(at) + 1, str(err)
    assert str(err).startswith(f"line {line}, column {err.column} ")
    return err


def test_the_base_text_parses_and_round_trips():
    assert print_graph(parse_graph(BASE)) == BASE


# ---------------------------------------------------------------- syntax

def test_empty_text():
    parse_error("", 1)
    parse_error("  \n\n \t", 1)


def test_not_a_graph_header():
    err = parse_error("grph f() {\n  return\n}", 1, at="grph")
    assert err.token == "grph" and "expected 'graph'" in str(err)


def test_missing_return_and_missing_brace_and_trailing_text():
    parse_error(BASE.replace("  return out=%1; assign net.w <- %1\n", ""), 4, at="}")
    parse_error(BASE[:-2], 4)
    parse_error(BASE + "\n%9", 6, at="%9")


def test_a_node_after_return():
    parse_error(BASE.replace("}", "  %2: f32[2,4] = neg %1\n}"), 5, at="%2")


def test_bad_assign_syntax():
    parse_error(edited(4, "  return out=%1; assign net.w = %1"), 4, at="net.w")
    parse_error(edited(4, "  return out=%1; assign"), 4)


def test_an_empty_params_list():
    parse_error(BASE.replace(' "net.w"', "").replace("params %w: f32[2,4]", "params"), 1, at=")")


def test_bad_number_literal():
    parse_error(edited(2, "  %0: f32[] = const value=1.2.3"), 2, at="1.2.3")


def test_nested_list_attribute():
    parse_error(edited(2, "  %0: f32[2,3] = reshape %x, shape=[[2],[3]]"), 2, at="[2]")
    parse_error(edited(2, "  %0: f32[2,3] = reshape %x, shape=" + "[" * 5000 + "]" * 5000), 2)


def test_bad_string_escape():
    parse_error(edited(1, r'graph f(%x: f32[2,3], %y: f32[3,4]; params %w: f32[2,4] "net\q") {'), 1, at='"net')


# ---------------------------------------------------------------- names and definitions

def test_a_redefined_value():
    err = parse_error(edited(3, "  %0: f32[2,4] = add %0, %w"), 3, at="%0")
    assert "%0 is already defined (line 2, column 3)" in str(err)


def test_a_node_redefining_an_input():
    parse_error(edited(2, "  %x: f32[2,4] = matmul %x, %y"), 2, at="%x")


def test_duplicate_input_names():
    err = parse_error(BASE.replace("%y: f32[3,4]", "%x: f32[3,4]"), 1, at="%x: f32[3,4]")
    assert err.token == "%x" and "already defined (line 1, column 9)" in str(err)


def test_numbered_input_names():
    parse_error(BASE.replace("%y: f32[3,4]", "%7: f32[3,4]"), 1, at="%7")


def test_duplicate_param_names():
    text = BASE.replace('"net.w")', '"net.w", %v: f32[2,4] "net.w")')
    parse_error(text, 1, at='"net.w")')


def test_two_assigns_to_one_param():
    err = parse_error(edited(4, "  return out=%1; assign net.w <- %1, net.w <- %0"), 4, at="net.w <- %0")
    assert "assigned twice" in str(err)


def test_assign_to_an_unknown_param():
    parse_error(edited(4, "  return out=%1; assign net.v <- %1"), 4, at="net.v")


def test_assign_of_the_wrong_type():
    err = parse_error(edited(3, "  %1: f32[2,1] = sum %0, axes=[1]"), 4, at="net.w")
    assert isinstance(err, ShapeError) and "net.w is f32[2,4] but receives f32[2,1]" in str(err)


def test_value_used_before_it_is_defined():
    err = parse_error(edited(2, "  %0: f32[2,4] = matmul %x, %5"), 2, at="%5")
    assert "%5 is used before it is defined" in str(err)


def test_return_of_an_undefined_value():
    parse_error(edited(4, "  return out=%9"), 4, at="%9")


def test_duplicate_output_names():
    parse_error(edited(4, "  return out=%1, out=%0"), 4, at="out=%0")


# ---------------------------------------------------------------- ops, attributes, dtypes

def test_unknown_op():
    err = parse_error(edited(3, "  %1: f32[2,4] = frobnicate %0, %w"), 3, at="frobnicate")
    assert err.token == "frobnicate"


def test_input_as_a_node():
    parse_error(edited(3, '  %1: f32[2,4] = input name="z"'), 3, at="input")


def test_unknown_dtype():
    err = parse_error(edited(3, "  %1: f8[2,4] = add %0, %w"), 3, at="f8")
    assert "unknown dtype 'f8'" in str(err)


def test_cast_with_a_dtype_attribute():
    err = parse_error(edited(3, '  %1: f32[2,4] = cast %0, dtype="complex128"'), 3, at="dtype")
    assert err.token == "dtype"


def test_wrong_arity():
    parse_error(edited(3, "  %1: f32[2,4] = add %0"), 3, at="add")
    parse_error(edited(3, "  %1: f32[2,4] = concat"), 3, at="concat")
    parse_error(edited(2, "  %0: f32[] = const %x, value=1.0"), 2, at="const")


def test_wrong_attribute_name_and_type():
    parse_error(edited(3, "  %1: f32[2,1] = sum %0, axis=[1]"), 3, at="axis")
    parse_error(edited(3, "  %1: f32[2,1] = sum %0, axes=1"), 3, at="axes")
    parse_error(edited(3, '  %1: f32[2,1] = sum %0, axes=["1"]'), 3, at="axes")
    parse_error(edited(3, "  %1: f32[2,1] = sum %0, axes=[true]"), 3, at="axes")
    parse_error(edited(3, "  %1: f32[2,1] = sum %0"), 3, at="sum")
    parse_error(edited(3, "  %1: f32[2,1] = sum %0, axes=[1], axes=[0]"), 3, at="axes=[0]")


def test_operands_come_before_attributes():
    parse_error(edited(3, "  %1: f32[2,1] = sum axes=[1], %0"), 3, at="%0")


def test_a_shape_rule_failing():
    err = parse_error(edited(2, "  %0: f32[2,4] = matmul %y, %x           # m.py:1"), 2, at="matmul")
    assert "mat1 and mat2 shapes cannot be multiplied" in str(err) and "m.py:1" in str(err)
    assert isinstance(err, ShapeError)


def test_a_declared_type_the_rule_does_not_give():
    err = parse_error(edited(3, "  %1: f64[2,4] = add %0, %w"), 3, at="f64")
    assert "declared f64[2,4] but the rule gives f32[2,4]" in str(err) and isinstance(err, ShapeError)


def test_a_cast_that_changes_shape():
    parse_error(edited(3, "  %1: i32[4,2] = cast %0"), 3, at="cast")


def test_const_values_must_fit_the_dtype():
    parse_error(edited(2, "  %0: i32[] = const value=1.5"), 2, at="value")
    parse_error(edited(2, "  %0: b8[] = const value=1"), 2, at="value")
    parse_error(edited(2, "  %0: f32[] = const value=none"), 2, at="value")


# ---------------------------------------------------------------- integers out of range

def test_huge_dims():
    parse_error(edited(2, "  %0: f32[99999999999999999999999] = neg %x"), 2, at="f32")
    parse_error(edited(2, "  %0: f32[4294967296,4294967296] = iota axis=0"), 2, at="f32")


def test_huge_and_negative_attribute_integers():
    parse_error(edited(2, "  %0: f32[2,1] = sum %x, axes=[99999999999999999999999]"), 2, at="999")
    parse_error(edited(2, "  %0: f32[6] = reshape %x, shape=[-6]"), 2, at="reshape")
    parse_error(edited(2, "  %0: i64[] = const value=9223372036854775808"), 2, at="922")
    parse_error(edited(2, "  %0: i64[] = const value=" + "9" * 5000), 2, at="999")


def test_the_message_names_line_column_and_token():
    err = parse_error(edited(3, "  %1: f32[2,4] = add %0, %nope"), 3, at="%nope")
    assert str(err).startswith("line 3, column 26 near '%nope': ")
    assert (err.line, err.column, err.token) == (3, 26, "%nope")


def test_a_param_named_like_an_input_prints_back():
    text = 'graph f(%x: f32[2]; params %w: f32[2] "net.x") {\n  return out=%w\n}'
    printed = print_graph(parse_graph(text))
    assert printed == text.replace("%w", "%x_1")
    assert print_graph(parse_graph(printed)) == printed


# ---------------------------------------------------------------- fuzzing

def _realized(t) -> str:
    t.numpy()
    return fusegrad.program_of(t).text("graph")


def _eager_graphs(rng) -> list[str]:
    a = fusegrad.tensor(rng.random((4, 6), dtype=np.float32))
    b = fusegrad.tensor(rng.random((6, 3), dtype=np.float32))
    index = fusegrad.tensor(np.array([[0, 5]] * 4))
    return [
        _realized((a @ b).relu().sum(1)),
        _realized(a.max(0).values - a.amin(1, keepdim=True).expand(4, 6).mean()),
        _realized(a.t().reshape(3, 8)[1:, ::2].permute(1, 0)),
        _realized(fusegrad.where(a > 0.5, a, a * -2.0).to(fusegrad.float64)),
        _realized(fusegrad.cat([a, a[:, :2] * 3], 1).exp().log()),
        _realized(a.gather(1, index) + fusegrad.arange(2)),
        _realized((a.int() * 3 + 1).prod(0)),
        _realized(a.softmax(-1).argmax(1) == 2),
    ]


def _training_graphs(rng) -> list[str]:
    """Compiled steps: params, assigns, rand, and the pads of a slice's gradient."""
    x = fusegrad.tensor(rng.random((4, 6), dtype=np.float32))
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 1))
    opt = fusegrad.optim.Adam(model.parameters(), lr=0.01)
    w = fusegrad.zeros(4, 6, requires_grad=True)

    def mlp_step(x, y):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    def noisy_step(x):
        loss = ((x * w)[1:, ::2] + fusegrad.rand(3, 3)).pow(2).sum()
        loss.backward()
        with fusegrad.no_grad():
            w.sub_(0.1 * w.grad)
            w.grad.zero_()
        return loss

    return [fusegrad.compile(mlp_step).lower(x, x[:, :1]).text("graph"),
            fusegrad.compile(noisy_step).lower(x).text("graph")]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    rng = np.random.default_rng(11)
    return _eager_graphs(rng) + _training_graphs(rng)


_NUMBERS = ["0", "-1", "-7", "1", "99999999999999999999999", "9223372036854775808", "-9223372036854775809",
            "4294967296", "1e400", "-0.0", "nan", "2.5", "1" * 400]
_CHARS = list("%,;:=[]{}()\"#<-0123456789.aefxz_ \t") + ["\\", "\u00e9", "\x00"]
_EXTRA_NAMES = ["f32", "f64", "i32", "i64", "u8", "b8", "f16", "complex128", "return", "assign", "params", *OPS]


@functools.lru_cache(maxsize=None)
def _pieces(text: str) -> dict:
    """The spans a mutation picks from: tokens, names (% or bare words) and numbers."""
    tokens = [m.span() for m in re.finditer(r"%\w+|\w+|\S", text)]
    names = [m.span() for m in re.finditer(r"%?\w+", text)]
    numbers = [m.span() for m in re.finditer(r"-?\d+(?:\.\d+)?", text)]
    words = sorted({text[a:b] for a, b in names} | set(_EXTRA_NAMES))
    return {"tokens": tokens, "names": names, "numbers": numbers, "words": words}


def _replace_span(text: str, span: tuple, new: str) -> str:
    return text[:span[0]] + new + text[span[1]:]


def _line_edit(text: str, rnd: random.Random) -> str:
    """Delete, duplicate or swap lines."""
    lines = text.splitlines()
    i, j = rnd.randrange(len(lines)), rnd.randrange(len(lines))
    how = rnd.randrange(3)
    if how == 0:
        del lines[i]
    elif how == 1:
        lines.insert(j, lines[i])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def _char_edit(text: str, rnd: random.Random) -> str:
    """Delete, insert or replace one character."""
    pos = rnd.randrange(len(text))
    how = rnd.randrange(3)
    new = "" if how == 0 else rnd.choice(_CHARS)
    return text[:pos] + new + text[pos + (how != 1):]


def _token_edit(text: str, rnd: random.Random) -> str:
    """Delete a token, insert a copy of one, or replace one with another."""
    tokens = _pieces(text)["tokens"]
    span, other = rnd.choice(tokens), rnd.choice(tokens)
    how = rnd.randrange(3)
    if how == 1:
        span = (span[0], span[0])
    return _replace_span(text, span, "" if how == 0 else text[other[0]:other[1]])


def _number_edit(text: str, rnd: random.Random) -> str:
    """A number becomes a huge, negative or odd one."""
    return _replace_span(text, rnd.choice(_pieces(text)["numbers"]), rnd.choice(_NUMBERS))


def _name_edit(text: str, rnd: random.Random) -> str:
    """A name (a value, an op, a dtype, a keyword...) becomes another name."""
    pieces = _pieces(text)
    return _replace_span(text, rnd.choice(pieces["names"]), rnd.choice(pieces["words"]))


def _truncate(text: str, rnd: random.Random) -> str:
    return text[:rnd.randrange(len(text))]


_MUTATIONS = [_line_edit, _char_edit, _char_edit, _token_edit, _token_edit, _number_edit, _name_edit,
              _name_edit, _truncate]


def _check_one(text: str) -> bool:
    """True if `text` parsed (and its printout is stable), False if it raised ParseError."""
    try:
        graph = parse_graph(text)
    except ParseError as e:
        assert 1 <= e.line <= max(1, len(text.splitlines())) and e.column >= 1
        return False
    printed = print_graph(graph)
    assert print_graph(parse_graph(printed)) == printed
    shapes.infer(graph)
    return True


def test_random_mutations_parse_or_raise_parse_error(corpus):
    for text in corpus:
        assert print_graph(parse_graph(text)) == text
    rnd = random.Random(20261207)
    parsed = 0
    for k in range(3000):
        text = rnd.choice(_MUTATIONS)(corpus[k % len(corpus)], rnd)
        try:
            parsed += _check_one(text)
        except Exception as e:   # noqa: BLE001 - report the text that broke the parser
            raise AssertionError(f"mutation {k}: {type(e).__name__}: {e}\n{text}") from e
    assert 0 < parsed < 3000
    print(f"{parsed} of 3000 mutated texts parsed, {3000 - parsed} raised ParseError")
