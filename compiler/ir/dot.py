"""The IR as Graphviz text: one box per node, kernels drawn as clusters around what they fuse."""
from __future__ import annotations

import json

from .errors import fmt_type
from .graph import Graph
from .printer import var_names


def to_dot(graph: Graph, kernels=()) -> str:
    """`dot` source for `graph`; each kernel (anything with .name, .kind, .nodes, .outputs)
    becomes a cluster of the nodes it evaluates."""
    names = var_names(graph)
    label = lambda n: json.dumps(f"%{names[id(n)]} {n.op}\\n{fmt_type(n.shape, n.dtype)}").replace("\\\\n", "\\n")
    lines = [f"digraph {json.dumps(graph.name)} {{", "  rankdir=TB;", "  node [shape=box, fontname=monospace];"]
    placed = set()
    for k in kernels:
        members = [n for n in list(k.nodes) + list(k.outputs) if id(n) in names and id(n) not in placed]
        if not members:
            continue
        lines.append(f"  subgraph cluster_{k.name} {{")
        lines.append(f"    label={json.dumps(f'{k.name}: {k.kind}')}; style=rounded; color=blue;")
        for n in members:
            placed.add(id(n))
            lines.append(f"    n{names[id(n)].replace('.', '_')} [label={label(n)}];")
        lines.append("  }")
    for n in graph.nodes():
        if id(n) not in placed:
            shape = ", shape=ellipse" if n.op in ("input", "param") else ""
            lines.append(f"  n{names[id(n)].replace('.', '_')} [label={label(n)}{shape}];")
    for n in graph.nodes():
        for x in n.inputs:
            lines.append(f"  n{names[id(x)].replace('.', '_')} -> n{names[id(n)].replace('.', '_')};")
    for out, v in graph.outputs.items():
        lines.append(f"  out_{out} [label={json.dumps(out)}, shape=plaintext];")
        lines.append(f"  n{names[id(v)].replace('.', '_')} -> out_{out};")
    lines.append("}")
    return "\n".join(lines)
