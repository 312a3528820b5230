"""Reading IR text (printer.py's format) back into a Graph.

Nodes are rebuilt with the types the text declares; run passes.shapes.infer on the result to
check them against the op rules.
"""
from __future__ import annotations

import json
import re

from . import dtypes
from .errors import IRError
from .graph import Graph, Node

_TYPE = r"([a-z0-9]+)\[([0-9,]*)\]"
_HEADER = re.compile(r"graph (\w+)\((.*)\) \{\Z")
_DECL = re.compile(r"%(\w+): " + _TYPE + r'(?: ("(?:[^"\\]|\\.)*"))?\Z')
_NODE = re.compile(r"%(\w+): " + _TYPE + r" = (\w+)(?: (.*?))?(?:\s+# (.*))?\Z")
_ASSIGN = re.compile(r"(.+?) <- %(\w+)\Z")


class ParseError(IRError, ValueError):
    pass


def parse_type(short: str, dims: str):
    shape = tuple(int(d) for d in dims.split(",")) if dims else ()
    return shape, dtypes.from_short(short)


def parse_value(text: str):
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if text == "none":
        return None
    if text.startswith("["):
        return tuple(parse_value(x) for x in split_top(text[1:-1], ",")) if text != "[]" else ()
    if text.startswith('"'):
        return json.loads(text)
    if text in ("inf", "-inf", "nan"):
        return float(text)
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return float(text)


def split_top(text: str, sep: str) -> list[str]:
    """Split at `sep` outside brackets and quotes."""
    parts, depth, quoted, cur = [], 0, False, []
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "[":
            depth += 1
        elif not quoted and ch == "]":
            depth -= 1
        if ch == sep and depth == 0 and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if cur or parts:
        parts.append("".join(cur))
    return [p.strip() for p in parts]


def parse_graph(text: str) -> Graph:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    m = _HEADER.match(lines[0])
    if not m or lines[-1] != "}":
        raise ParseError("parse", f"not a graph: {lines[0]!r}")
    name, decls = m.groups()
    in_text, _, param_text = decls.partition("; params ")
    env: dict[str, Node] = {}
    inputs = [_declare(d, "input", env) for d in split_top(in_text, ",") if d]
    params = [_declare(d, "param", env) for d in split_top(param_text, ",") if d]
    by_name = {p.attrs["name"]: p for p in params}
    outputs, assigns = {}, []
    for line in lines[1:-1]:
        if line.startswith("return"):
            outputs, assigns = _parse_return(line[len("return"):], env, by_name)
        else:
            _parse_node(line, env)
    return Graph(name, inputs, params, outputs, assigns)


def _declare(text: str, op: str, env: dict) -> Node:
    m = _DECL.match(text)
    if not m:
        raise ParseError("parse", f"bad declaration {text!r}")
    var, short, dims, quoted = m.groups()
    shape, dt = parse_type(short, dims)
    node = Node(op, (), {"name": json.loads(quoted) if quoted else var}, shape, dt)
    env[var] = node
    return node


def _parse_node(line: str, env: dict) -> None:
    m = _NODE.match(line)
    if not m:
        raise ParseError("parse", f"bad node line {line!r}")
    var, short, dims, op, args, loc = m.groups()
    shape, dt = parse_type(short, dims)
    inputs, attrs = [], {}
    for arg in split_top(args or "", ","):
        if arg.startswith("%"):
            if arg[1:] not in env:
                raise ParseError(op, f"%{arg[1:]} is used before it is defined")
            inputs.append(env[arg[1:]])
        else:
            key, _, value = arg.partition("=")
            attrs[key] = parse_value(value)
    env[var] = Node(op, tuple(inputs), attrs, shape, dt, loc)


def _parse_return(text: str, env: dict, params: dict):
    out_text, _, assign_text = text.partition("; assign ")
    outputs = {}
    for item in split_top(out_text, ","):
        if item:
            key, _, ref = item.partition("=")
            outputs[key] = env[ref.strip()[1:]]
    assigns = []
    for item in split_top(assign_text, ","):
        if item:
            m = _ASSIGN.match(item)
            assigns.append((params[m.group(1)], env[m.group(2)]))
    return outputs, assigns


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
