"""Reading IR text (printer.py's format) back into a Graph.

    graph step(%x: f32[100,1]; params %w: f32[1,1] "net.weight") {
      %0: f32[100,1] = matmul %x, %w                 # linreg.py:21
      %1: f32[1,1] = sum %0, axes=[0]                # linreg.py:22
      return out=%0; assign net.weight <- %1
    }

Every line is read token by token, and every node is checked as it is built: the op exists,
its operands are defined, its attributes have the op's names and types, and the type the text
declares is the one the op's rules give. Any mistake, syntax or meaning, raises ParseError
naming the line, the column and the offending token; nothing else escapes for any text.
"""
from __future__ import annotations

import json
import math
import re
from typing import NamedTuple

from . import dtypes
from . import ops as _ops
from .errors import IRError, ShapeError, fmt_type
from .graph import Graph, Node

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
_MAX_DIGITS = 20     # longer integer literals are out of range (int() refuses > 4300 digits)


class ParseError(IRError, ValueError):
    """Text that is not a well-formed graph; `line` and `column` are 1-based, `token` the text there."""

    def __init__(self, message: str, line: int, column: int, token: str | None,
                 op: str | None = None, loc: str | None = None):
        self.op, self.detail, self.loc = op or "parse", message, loc
        self.line, self.column, self.token = line, column, token
        near = f"near {token!r}" if token else "at the end of the line"
        what = f"{op}: {message}" if op else message
        where = f" (at {loc})" if loc else ""
        Exception.__init__(self, f"line {line}, column {column} {near}: {what}{where}")


class ParseShapeError(ParseError, ShapeError):
    """A node or assign whose declared type disagrees with the op rules (what shapes.infer reports)."""


# ---------------------------------------------------------------- tokens

class Token(NamedTuple):
    text: str
    line: int
    column: int


def error_at(token: Token, message: str, op: str | None = None, loc: str | None = None,
             cls=ParseError) -> ParseError:
    return cls(message, token.line, token.column, token.text, op, loc)


_DTYPES = {d.short: d for d in dtypes.ALL}
_SPACE = re.compile(r"[ \t]*")
_WORD = re.compile(r"[^ \t,;()\[\]{}=:#]+|.")
_VAR = re.compile(r"%\w+")
_NAME = re.compile(r"\w+")
_TYPE = re.compile(r"(\w+)\[([^\]\s]*)\]")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NUMBER = re.compile(r"-?(?:\d+\.\d+(?:e[+-]?\d+)?|\d+e[+-]?\d+|\d+|inf)(?![\w.])|nan(?!\w)")
_KEYWORD = re.compile(r"(?:true|false|none)(?!\w)")
_ASSIGNED = re.compile(r"[^\s,;]+?(?=[ \t]*<-)")


def space_end(text: str, pos: int = 0) -> int:
    """Where the spaces and tabs from `pos` end (_SPACE matches everywhere, if only emptily)."""
    m = _SPACE.match(text, pos)
    assert m is not None
    return m.end()


def keyword(word: str) -> re.Pattern:
    return re.compile(rf"{word}(?!\w)")


_GRAPH, _PARAMS, _RETURN, _ASSIGN = (keyword(w) for w in ("graph", "params", "return", "assign"))


class Cursor:
    """One line of text and a read position; tokens and errors carry the line and column."""

    def __init__(self, text: str, number: int):
        self.text, self.number, self.pos = text, number, 0

    def skip_space(self) -> None:
        self.pos = space_end(self.text, self.pos)

    def at_end(self) -> bool:
        self.skip_space()
        return self.pos == len(self.text)

    def peek(self, literal: str) -> bool:
        self.skip_space()
        return self.text.startswith(literal, self.pos)

    def accept(self, literal: str) -> bool:
        if self.peek(literal):
            self.pos += len(literal)
            return True
        return False

    def expect(self, literal: str) -> Token:
        if not self.peek(literal):
            raise self.error(f"expected {literal!r}")
        self.pos += len(literal)
        return Token(literal, self.number, self.pos - len(literal) + 1)

    def take(self, pattern: re.Pattern, what: str) -> Token:
        self.skip_space()
        m = pattern.match(self.text, self.pos)
        if not m:
            raise self.error(f"expected {what}")
        self.pos = m.end()
        return Token(m.group(), self.number, m.start() + 1)

    def rest(self) -> Token:
        self.skip_space()
        token = Token(self.text[self.pos:].rstrip(), self.number, self.pos + 1)
        self.pos = len(self.text)
        return token

    def expect_end(self) -> None:
        if not self.at_end():
            raise self.error("unexpected text")

    def error(self, message: str) -> ParseError:
        self.skip_space()
        m = _WORD.match(self.text, self.pos)
        return ParseError(message, self.number, self.pos + 1, m.group() if m else None)


# ---------------------------------------------------------------- literals

def read_int(token: Token, text: str | None = None) -> int:
    """An integer literal within int64."""
    text = token.text if text is None else text
    if len(text.lstrip("-")) > _MAX_DIGITS or not INT64_MIN <= int(text) <= INT64_MAX:
        raise error_at(token, "integer out of range (int64)")
    return int(text)


def read_scalar(cur: Cursor):
    """true / false / none, a number, or a JSON string."""
    if cur.peek('"'):
        return read_string(cur.take(_STRING, "a string"))
    word = _KEYWORD.match(cur.text, cur.pos)
    if word:
        cur.pos = word.end()
        return {"true": True, "false": False, "none": None}[word.group()]
    token = cur.take(_NUMBER, "a value (a number, true, false, none, a string or a list)")
    if re.fullmatch(r"-?\d+", token.text):
        return read_int(token)
    return float(token.text)


def read_string(token: Token) -> str:
    try:
        return json.loads(token.text)
    except ValueError as e:
        raise error_at(token, f"bad string literal ({e})") from None


def read_value(cur: Cursor):
    """A scalar or a flat list of scalars (a tuple)."""
    if not cur.accept("["):
        return read_scalar(cur)
    items = []
    if not cur.accept("]"):
        items.append(read_scalar(cur))
        while not cur.accept("]"):
            cur.expect(",")
            items.append(read_scalar(cur))
    return tuple(items)


def read_type(cur: Cursor) -> tuple[Token, tuple, dtypes.DType]:
    """`f32[2,3]`: the token, the shape and the dtype."""
    token = cur.take(_TYPE, "a type such as f32[2,3]")
    m = _TYPE.fullmatch(token.text)
    assert m is not None  # the token is a match of _TYPE
    short, dims = m.groups()
    if short not in _DTYPES:
        raise error_at(token, f"unknown dtype {short!r} (one of {', '.join(d.short for d in dtypes.ALL)})")
    if dims and not re.fullmatch(r"\d+(,\d+)*", dims):
        raise error_at(token, "dims must be non-negative integers separated by commas")
    shape = tuple(read_int(token, d) for d in dims.split(",")) if dims else ()
    if math.prod(shape) > INT64_MAX:
        raise error_at(token, "too many elements (more than int64 holds)")
    return token, shape, _DTYPES[short]


# ---------------------------------------------------------------- attributes

INT, INTS, SCALAR, NAME = _ops.INT, _ops.INTS, _ops.SCALAR, _ops.NAME


def attr_schema(op: str) -> dict:
    """Attribute name -> expected kind of value, for `op` (its declaration in ops.py)."""
    return _ops.OPS[op].attrs


def is_int(v) -> bool:
    return type(v) is int


def fits(kind: str, v) -> bool:
    if kind == INT:
        return is_int(v)
    if kind == INTS:
        return isinstance(v, tuple) and all(is_int(x) for x in v)
    if kind == NAME:
        return isinstance(v, str)
    return isinstance(v, (int, float))


def check_attrs(op_token: Token, attrs: dict) -> None:
    """Exactly the op's attribute names, each with a value of the right kind."""
    schema = attr_schema(op_token.text)
    for key, (value, key_token) in attrs.items():
        if key not in schema:
            names = ", ".join(schema) or "none"
            raise error_at(key_token, f"{op_token.text} has no attribute {key!r} (its attributes: {names})")
        if not fits(schema[key], value):
            raise error_at(key_token, f"attribute {key!r} of {op_token.text} must be {schema[key]}")
    missing = [k for k in schema if k not in attrs]
    if missing:
        raise error_at(op_token, f"{op_token.text} needs attribute(s) {', '.join(missing)}")


# ---------------------------------------------------------------- node rules

class NodeText(NamedTuple):
    """One parsed node line, before it is checked."""
    var: Token
    type: Token
    shape: tuple
    dtype: dtypes.DType
    op: Token
    inputs: tuple
    attrs: dict          # name -> (value, key token)
    loc: str | None

    def attr_values(self) -> dict:
        return {k: v for k, (v, _) in self.attrs.items()}


def check_arity(nt: NodeText) -> None:
    arity = _ops.OPS[nt.op.text].arity
    if (arity is None and not nt.inputs) or (arity is not None and len(nt.inputs) != arity):
        wanted = "at least 1" if arity is None else str(arity)
        raise error_at(nt.op, f"takes {wanted} operand(s), got {len(nt.inputs)}", nt.op.text, nt.loc)


def const_fits(value, dt: dtypes.DType) -> bool:
    """A constant's Python type matches its dtype: bool for b8, int for ints, float or int for floats."""
    if dt.is_bool:
        return isinstance(value, bool)
    if dt.is_int:
        return is_int(value)
    return isinstance(value, float) or is_int(value)


def check_const(nt: NodeText) -> None:
    value, token = nt.attrs["value"]
    if not const_fits(value, nt.dtype):
        raise error_at(token, f"value {value!r} does not fit the dtype {nt.dtype.short}", "const", nt.loc)


def check_declared(nt: NodeText) -> None:
    """Sources and casts declare their type; check what the op still constrains."""
    op, (shape, dt) = nt.op.text, (nt.shape, nt.dtype)
    if op == "const":
        check_const(nt)
    elif op == "iota":
        _ops.check_axes(op, (nt.attrs["axis"][0],), len(shape), (), nt.loc)
    elif op == "rand":
        key = nt.inputs[0]
        if key.shape != (2,) or key.dtype is not dtypes.int64 or not dt.is_floating_point:
            raise IRError(op, "takes one i64[2] key and makes floats", nt.loc)
    elif op == "cast" and nt.inputs[0].shape != shape:
        raise ShapeError(op, f"changes shape {fmt_type(nt.inputs[0].shape, nt.inputs[0].dtype)} -> "
                             f"{fmt_type(shape, dt)}", nt.loc)


def check_rules(nt: NodeText) -> None:
    """The op rules accept the operands and give the declared type."""
    op = nt.op.text
    if _ops.OPS[op].kind in ("source", "cast"):
        check_declared(nt)
        return
    shape, dt = _ops.infer(op, nt.inputs, nt.attr_values(), nt.loc)
    if tuple(shape) != nt.shape or dt is not nt.dtype:
        raise error_at(nt.type, f"declared {fmt_type(nt.shape, nt.dtype)} but the rule gives "
                                f"{fmt_type(shape, dt)}", op, nt.loc, ParseShapeError)


def build_node(nt: NodeText) -> Node:
    """The checked node; any rule's IRError becomes a ParseError at the op."""
    op = nt.op.text
    if op not in _ops.OPS:
        raise error_at(nt.op, f"unknown op {op!r}")
    if op in ("input", "param"):
        raise error_at(nt.op, f"{op}s are declared in the graph header, not as nodes")
    check_arity(nt)
    check_attrs(nt.op, nt.attrs)
    try:
        check_rules(nt)
    except ParseError:
        raise
    except IRError as e:
        cls = ParseShapeError if isinstance(e, ShapeError) else ParseError
        raise error_at(nt.op, e.detail, e.op, e.loc, cls) from e
    return Node(op, nt.inputs, nt.attr_values(), nt.shape, nt.dtype, nt.loc)


# ---------------------------------------------------------------- the graph being built

class Scope:
    """The `%` names defined so far (with where), and the params by their state's name."""

    def __init__(self):
        self.env: dict[str, tuple[Node, Token]] = {}
        self.params_by_name: dict[str, Node] = {}

    def define(self, var: Token, node: Node) -> None:
        if var.text in self.env:
            first = self.env[var.text][1]
            raise error_at(var, f"{var.text} is already defined (line {first.line}, column {first.column})")
        self.env[var.text] = (node, var)

    def lookup(self, var: Token) -> Node:
        if var.text not in self.env:
            raise error_at(var, f"{var.text} is used before it is defined")
        return self.env[var.text][0]

    def param(self, name: Token) -> Node:
        if name.text not in self.params_by_name:
            raise error_at(name, f"assign to {name.text!r}, which is not a param of the graph")
        return self.params_by_name[name.text]


def read_input(cur: Cursor, scope: Scope) -> Node:
    """`%x: f32[2,3]`: an input named x."""
    var = cur.take(_VAR, "an input such as %x")
    if var.text[1:].isdigit():
        raise error_at(var, "input names must not be numbers (numbers name nodes)")
    cur.expect(":")
    _, shape, dt = read_type(cur)
    node = Node("input", (), {"name": var.text[1:]}, shape, dt)
    scope.define(var, node)
    return node


def read_param(cur: Cursor, scope: Scope) -> Node:
    """`%w: f32[2,3] "net.weight"`: a param with its state's name."""
    var = cur.take(_VAR, "a param such as %w")
    cur.expect(":")
    _, shape, dt = read_type(cur)
    name_token = cur.take(_STRING, "the param's name as a string")
    name = read_string(name_token)
    if name in scope.params_by_name:
        raise error_at(name_token, f"two params are named {name!r}")
    node = Node("param", (), {"name": name}, shape, dt)
    scope.define(var, node)
    scope.params_by_name[name] = node
    return node


def read_items(cur: Cursor, read_item) -> list:
    """One or more items separated by commas."""
    items = [read_item()]
    while cur.accept(","):
        items.append(read_item())
    return items


def read_list(cur: Cursor, read_item, ends: tuple) -> list:
    """Items separated by commas, none if the line ends or one of `ends` comes first."""
    if cur.at_end() or any(cur.peek(end) for end in ends):
        return []
    return read_items(cur, read_item)


def read_header(cur: Cursor, scope: Scope) -> tuple[str, list, list]:
    """`graph NAME(inputs; params ...) {`: the name, inputs and params."""
    cur.take(_GRAPH, "'graph'")
    name = cur.take(_NAME, "the graph's name").text
    cur.expect("(")
    inputs = read_list(cur, lambda: read_input(cur, scope), (";", ")"))
    params = []
    if cur.accept(";"):
        cur.take(_PARAMS, "'params'")
        params = read_items(cur, lambda: read_param(cur, scope))
    cur.expect(")")
    cur.expect("{")
    cur.expect_end()
    return name, inputs, params


def read_operands(cur: Cursor, scope: Scope) -> tuple[tuple, dict]:
    """`%a, %b, key=value, ...`: operands first, then attributes, up to `#` or the line's end."""
    inputs: list[Node] = []
    attrs: dict[str, tuple[object, Token]] = {}
    if cur.at_end() or cur.peek("#"):
        return (), attrs
    while True:
        if cur.peek("%"):
            if attrs:
                raise cur.error("operands must come before the attributes")
            inputs.append(scope.lookup(cur.take(_VAR, "an operand such as %0")))
        else:
            key = cur.take(_NAME, "an operand such as %0 or an attribute such as axis=1")
            if key.text in attrs:
                raise error_at(key, f"attribute {key.text!r} is given twice")
            cur.expect("=")
            attrs[key.text] = (read_value(cur), key)
        if not cur.accept(","):
            return tuple(inputs), attrs


def read_node(cur: Cursor, scope: Scope) -> None:
    """`%3: f32[2] = op %a, key=value   # file.py:12`."""
    var = cur.take(_VAR, "a node such as %0, or 'return'")
    cur.expect(":")
    type_token, shape, dt = read_type(cur)
    cur.expect("=")
    op = cur.take(_NAME, "an op name")
    inputs, attrs = read_operands(cur, scope)
    loc = None
    if cur.accept("#"):
        loc_token = cur.rest()
        if not loc_token.text:
            raise error_at(loc_token, "expected a source location after '#'")
        loc = loc_token.text
    cur.expect_end()
    scope.define(var, build_node(NodeText(var, type_token, shape, dt, op, inputs, attrs, loc)))


def read_output(cur: Cursor, scope: Scope, outputs: dict[str, Node]) -> None:
    key = cur.take(_NAME, "an output such as out=%0")
    if key.text in outputs:
        raise error_at(key, f"two outputs are named {key.text!r}")
    cur.expect("=")
    outputs[key.text] = scope.lookup(cur.take(_VAR, "a value such as %0"))


def read_assign(cur: Cursor, scope: Scope, assigns: dict[int, tuple[Node, Node]]) -> None:
    """`net.weight <- %3`: the param must exist, be assigned once, and keep its type."""
    name = cur.take(_ASSIGNED, "an assign such as net.weight <- %3")
    param = scope.param(name)
    if id(param) in assigns:
        raise error_at(name, f"param {name.text!r} is assigned twice")
    cur.expect("<-")
    value = scope.lookup(cur.take(_VAR, "a value such as %3"))
    if value.shape != param.shape or value.dtype is not param.dtype:
        raise error_at(name, f"{name.text} is {fmt_type(param.shape, param.dtype)} but receives "
                            f"{fmt_type(value.shape, value.dtype)}", "assign", value.loc, ParseShapeError)
    assigns[id(param)] = (param, value)


def read_return(cur: Cursor, scope: Scope) -> tuple[dict[str, Node], list[tuple[Node, Node]]]:
    """`return k=%a, ...; assign p <- %b, ...`: the outputs and the assigns."""
    cur.take(_RETURN, "'return'")
    outputs: dict[str, Node] = {}
    assigns: dict[int, tuple[Node, Node]] = {}
    read_list(cur, lambda: read_output(cur, scope, outputs), (";",))
    if cur.accept(";"):
        cur.take(_ASSIGN, "'assign'")
        read_items(cur, lambda: read_assign(cur, scope, assigns))
    cur.expect_end()
    return outputs, list(assigns.values())


# ---------------------------------------------------------------- the text

def numbered_lines(text: str) -> list[Cursor]:
    """A cursor for every non-blank line, numbered as an editor numbers them."""
    return [Cursor(line, i) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def is_return(cur: Cursor) -> bool:
    return _RETURN.match(cur.text, space_end(cur.text)) is not None


def parse_graph(text: str) -> Graph:
    """The graph `text` spells; ParseError (with line and column) for anything malformed."""
    lines = numbered_lines(text)
    if not lines:
        raise ParseError("empty text: expected 'graph NAME(...) {'", 1, 1, None)
    scope = Scope()
    name, inputs, params = read_header(lines[0], scope)
    body = lines[1:]
    ret = next((i for i, cur in enumerate(body) if is_return(cur)), None)
    for cur in body[:ret]:
        read_node(cur, scope)
    if ret is None:
        last = body[-1] if body else lines[0]
        raise ParseError("expected a 'return' line", last.number, len(last.text) + 1, None)
    outputs, assigns = read_return(body[ret], scope)
    close_graph(body[ret + 1:], body[ret])
    return Graph(name, inputs, params, outputs, assigns)


def close_graph(rest: list[Cursor], ret: Cursor) -> None:
    """After the return line: exactly one `}` line."""
    if not rest:
        raise ParseError("expected '}' after the return line", ret.number, len(ret.text) + 1, None)
    rest[0].expect("}")
    rest[0].expect_end()
    if len(rest) > 1:
        raise rest[1].error("text after the graph's closing '}'")


def structurally_equal(a: Graph, b: Graph) -> bool:
    """Same nodes (op, attrs, type, source line) wired the same way, same names and roots."""
    na, nb = a.nodes(), b.nodes()
    if a.name != b.name or len(na) != len(nb):
        return False
    index_a = {id(n): i for i, n in enumerate(na)}
    index_b = {id(n): i for i, n in enumerate(nb)}
    for x, y in zip(na, nb):
        if (x.op, x.shape, x.dtype, x.loc) != (y.op, y.shape, y.dtype, y.loc):
            return False
        if x.attrs != y.attrs and repr(sorted(x.attrs.items())) != repr(sorted(y.attrs.items())):
            return False
        if [index_a[id(i)] for i in x.inputs] != [index_b[id(i)] for i in y.inputs]:
            return False
    roots = lambda g, idx: ([(k, idx[id(v)]) for k, v in g.outputs.items()],
                            [(p.attrs["name"], idx[id(v)]) for p, v in g.assigns])
    return roots(a, index_a) == roots(b, index_b)
