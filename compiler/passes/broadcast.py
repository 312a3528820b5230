"""Pass 2, broadcasting resolution: implicit broadcasts become explicit `expand` nodes.

After it, every elementwise op sees operands of its own shape and every matmul operands of
its own batch shape, so fusion and codegen never reason about broadcasting again.
"""
from __future__ import annotations

from ..ir import Graph, Node, clone, make, rewrite
from ..ir.ops import ELEMENTWISE_KINDS


def _expanded(x: Node, shape: tuple, loc) -> Node:
    return x if tuple(x.shape) == tuple(shape) else make("expand", [x], {"shape": tuple(shape)}, loc)


def _resolve(n: Node, inputs: tuple) -> Node:
    kind = n.kind
    if kind in ELEMENTWISE_KINDS and kind != "cast":
        inputs = tuple(_expanded(x, n.shape, n.loc) for x in inputs)
    elif kind == "matmul":
        batch = tuple(n.shape[:-2])
        inputs = tuple(_expanded(x, batch + tuple(x.shape[-2:]), n.loc) for x in inputs)
    return clone(n, inputs)


def resolve(graph: Graph) -> Graph:
    return rewrite(graph, _resolve)
