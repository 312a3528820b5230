"""Pass 1, shape inference: re-derive every node's shape and dtype from the op rules.

The frontend infers types as it builds nodes; this pass checks graphs from anywhere else
(parsed text, other passes) and raises the same errors, naming op, types and source line.
"""
from __future__ import annotations

from ..ir import Graph, IRError, ShapeError, fmt_type
from ..ir import ops as _ops


def infer(graph: Graph) -> Graph:
    for n in graph.nodes():
        kind = _ops.OPS[n.op].kind if n.op in _ops.OPS else None
        if kind is None:
            raise IRError(n.op, "unknown op", n.loc)
        if kind == "source":
            continue
        if kind == "cast":
            if tuple(n.inputs[0].shape) != tuple(n.shape):
                raise ShapeError("cast", f"changes shape {fmt_type(n.inputs[0].shape, n.inputs[0].dtype)} -> "
                                         f"{fmt_type(n.shape, n.dtype)}", n.loc)
            continue
        shape, dtype = _ops.infer(n.op, n.inputs, n.attrs, n.loc)
        if tuple(shape) != tuple(n.shape) or dtype is not n.dtype:
            raise ShapeError(n.op, f"declared {fmt_type(n.shape, n.dtype)} but the rule gives "
                                   f"{fmt_type(shape, dtype)}", n.loc)
    for p, v in graph.assigns:
        if tuple(p.shape) != tuple(v.shape) or p.dtype is not v.dtype:
            raise ShapeError("assign", f"{p.attrs['name']} is {fmt_type(p.shape, p.dtype)} but receives "
                                       f"{fmt_type(v.shape, v.dtype)}", v.loc)
    return graph
