"""Rebuilding a graph bottom-up: the one traversal every Graph -> Graph pass is made of."""
from __future__ import annotations

from typing import Callable

from .graph import Graph, Node


def clone(node: Node, inputs: tuple) -> Node:
    """`node` with new inputs of the same types; `node` itself when nothing changed."""
    if all(a is b for a, b in zip(inputs, node.inputs)):
        return node
    return Node(node.op, inputs, node.attrs, node.shape, node.dtype, node.loc)


def rewrite(graph: Graph, fn: Callable[[Node, tuple], Node]) -> Graph:
    """A new graph where each node is replaced by `fn(node, rebuilt_inputs)`, inputs first.

    Inputs and params are kept as they are, so the new graph binds the same buffers."""
    new: dict[int, Node] = {}
    for n in graph.nodes():
        if n.op in ("input", "param"):
            new[id(n)] = n
        else:
            new[id(n)] = fn(n, tuple(new[id(x)] for x in n.inputs))
    return Graph(graph.name, graph.inputs, graph.params,
                 {k: new[id(v)] for k, v in graph.outputs.items()},
                 [(p, new[id(v)]) for p, v in graph.assigns])
