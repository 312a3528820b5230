"""The IR as Graphviz text: one box per node, kernels drawn as clusters around what they fuse.

Each node is drawn once: a node that several kernels evaluate (a constant, a view: cheap to
recompute) sits in the first kernel that evaluates it. An edge that reads a buffer (an
input, a param, or a value another kernel wrote) is labelled with that buffer's size; an
edge inside a kernel has no label, as its value never leaves the registers. Each cluster is
written as

    subgraph cluster_k0 {
      label="k0: matmul"; tooltip="...why the kernel ends there..."; style=rounded; color=blue;

so that a renderer (fusegrad.viz) may add attributes after its second line (later ones win).
"""
from __future__ import annotations

import json

from .errors import fmt_type
from .graph import Graph, Node
from .printer import var_names


def fmt_bytes(n: int) -> str:
    """A byte count for a label: '400 B', '39.1 KiB', '3.8 MiB'."""
    if n < 10 * 1024:
        return f"{n} B"
    if n < 10 * 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


def nbytes(n: Node) -> int:
    size = n.dtype.itemsize
    for d in n.shape:
        size *= d
    return size


def to_dot(graph: Graph, kernels=()) -> str:
    """`dot` source for `graph`; each kernel (anything with .name, .kind, .nodes, .outputs,
    and optionally .loads and .explain(names)) becomes a cluster of the nodes it evaluates."""
    names = var_names(graph)
    ident = lambda n: json.dumps(f"%{names[id(n)]}")
    label = lambda n: json.dumps(f"%{names[id(n)]} {n.op}\\n{fmt_type(n.shape, n.dtype)}").replace("\\\\n", "\\n")
    lines = [f"digraph {json.dumps(graph.name)} {{", "  rankdir=TB;", "  node [shape=box, fontname=monospace];",
             "  edge [fontname=monospace, fontsize=10];"]
    cluster_of: dict[int, object] = {}          # node id -> the kernel whose cluster holds it
    for k in kernels:
        members = [n for n in {id(n): n for n in [*k.nodes, *k.outputs]}.values()
                   if id(n) in names and id(n) not in cluster_of]
        if not members:
            continue
        lines.append(f"  subgraph cluster_{k.name} {{")
        explain = getattr(k, "explain", None)
        tooltip = f" tooltip={json.dumps(explain(names))};" if explain is not None else ""
        lines.append(f"    label={json.dumps(f'{k.name}: {k.kind}')};{tooltip} style=rounded; color=blue;")
        for n in members:
            cluster_of[id(n)] = k
            lines.append(f"    {ident(n)} [label={label(n)}];")
        lines.append("  }")
    for n in graph.nodes():
        if id(n) not in cluster_of:
            shape = ", shape=ellipse" if n.op in ("input", "param") else ""
            lines.append(f"  {ident(n)} [label={label(n)}{shape}];")
    edges: dict[tuple, str] = {}
    for n in graph.nodes():
        k = cluster_of.get(id(n))
        loads = {id(x) for x in getattr(k, "loads", ())} if k is not None else set()
        for x in n.inputs:
            edges.setdefault((ident(x), ident(n)), f" [label={json.dumps(fmt_bytes(nbytes(x)))}]"
                             if id(x) in loads else "")
    lines += [f"  {a} -> {b}{attrs};" for (a, b), attrs in edges.items()]
    for out, v in graph.outputs.items():
        lines.append(f"  {json.dumps(f'out:{out}')} [label={json.dumps(out)}, shape=plaintext];")
        lines.append(f"  {ident(v)} -> {json.dumps(f'out:{out}')} [label={json.dumps(fmt_bytes(nbytes(v)))}];")
    lines.append("}")
    return "\n".join(lines)
