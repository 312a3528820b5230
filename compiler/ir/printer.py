"""The IR as text, one node per line, readable without a manual (the format of DESIGN.md).

    graph step(%x: f32[100,1]; params %w: f32[1,1] "net.weight") {
      %0: f32[100,1] = matmul %x, %w                 # linreg.py:21
      return out=%0; assign net.weight <- %3
    }

The parser (parser.py) reads this text back into an equal graph, so dumps are test fixtures.
"""
from __future__ import annotations

import json
import re

from .errors import fmt_type
from .graph import Graph, Node

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
LOC_COLUMN = 50


def format_value(v) -> str:
    """An attribute value: ints, floats (repr, so they round-trip), bools, strings, int lists."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(format_value(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v)
    if v is None:
        return "none"
    return repr(v)


def param_var_names(params, taken=()) -> list[str]:
    """Short `%` names for params: the last dotted component of the state's name, made unique
    among the params and the names in `taken` (the inputs')."""
    names, taken = [], set(taken)
    for p in params:
        base = re.sub(r"\W", "_", p.attrs["name"].split(".")[-1]) or "p"
        if not _IDENT.match(base):
            base = "p_" + base
        name, k = base, 1
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        names.append(name)
    return names


def var_names(graph: Graph) -> dict[int, str]:
    """`%` name of every node: inputs and params by name, the rest numbered in order."""
    names = {id(x): x.attrs["name"] for x in graph.inputs}
    names.update((id(p), v) for p, v in zip(graph.params, param_var_names(graph.params, names.values())))
    k = 0
    for n in graph.nodes():
        if id(n) not in names:
            names[id(n)] = str(k)
            k += 1
    return names


def format_node(n: Node, names: dict[int, str]) -> str:
    args = [f"%{names[id(x)]}" for x in n.inputs]
    args += [f"{k}={format_value(v)}" for k, v in n.attrs.items()]
    text = f"  %{names[id(n)]}: {fmt_type(n.shape, n.dtype)} = {n.op}"
    if args:
        text += " " + ", ".join(args)
    if n.loc:
        text = text.ljust(LOC_COLUMN) + f" # {n.loc}"
    return text


def print_graph(graph: Graph) -> str:
    names = var_names(graph)
    header = ", ".join(f"%{names[id(x)]}: {fmt_type(x.shape, x.dtype)}" for x in graph.inputs)
    if graph.params:
        header += "; params " + ", ".join(
            f"%{names[id(p)]}: {fmt_type(p.shape, p.dtype)} {json.dumps(p.attrs['name'])}" for p in graph.params)
    lines = [f"graph {graph.name}({header}) {{"]
    lines += [format_node(n, names) for n in graph.nodes() if n.op not in ("input", "param")]
    ret = "  return"
    if graph.outputs:
        ret += " " + ", ".join(f"{k}=%{names[id(v)]}" for k, v in graph.outputs.items())
    if graph.assigns:
        ret += "; assign " + ", ".join(f"{p.attrs['name']} <- %{names[id(v)]}" for p, v in graph.assigns)
    lines += [ret, "}"]
    return "\n".join(lines)
