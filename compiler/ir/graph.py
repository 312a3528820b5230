"""Nodes and graphs: the IR every pass reads and writes.

A `Node` is one primitive applied to input nodes, with its shape and dtype inferred when it is
made (so a mistake raises at the user's line) and the user's source line kept for dumps.
Nodes form a DAG and are never changed by passes: a pass builds new nodes. One field is the
exception: `buffer`, a payload the frontend sets when the node's value has been computed; a
node with a buffer is a leaf to whoever collects a graph from it.

A `Graph` names the roots of a computation: inputs (argument buffers), params (captured state
with names such as "net.weight"), named outputs, and assigns (a param's buffer receives a new
value when the program ends).
"""
from __future__ import annotations

from . import ops as _ops
from .errors import IRError


class Node:
    __slots__ = ("op", "inputs", "attrs", "shape", "dtype", "loc", "buffer", "depth", "_sig", "__weakref__")

    def __init__(self, op: str, inputs: tuple, attrs: dict, shape: tuple, dtype, loc: str | None = None):
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.shape = shape
        self.dtype = dtype
        self.loc = loc
        self.buffer = None
        self.depth = 1 + max([x.depth for x in inputs if x.buffer is None], default=0) if inputs else 1
        self._sig = None

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def kind(self) -> str:
        return _ops.OPS[self.op].kind

    @property
    def sig(self) -> tuple:
        """Structural identity of the node itself (not of its inputs): op, attrs, type."""
        if self._sig is None:
            self._sig = (self.op, repr(sorted(self.attrs.items())) if self.attrs else "", self.shape, self.dtype.short)
        return self._sig

    def __repr__(self):
        from .errors import fmt_type
        return f"<Node {self.op} {fmt_type(self.shape, self.dtype)}>"


def make(op: str, inputs=(), attrs=None, loc=None, shape=None, dtype=None) -> Node:
    """A new node for `op`, its type inferred by the op's rules (sources and casts declare it)."""
    inputs = tuple(inputs)
    attrs = {k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()} if attrs else {}
    kind = _ops.OPS[op].kind if op in _ops.OPS else None
    if kind in ("source", "cast"):
        if shape is None or dtype is None:
            raise IRError(op, "needs a declared shape and dtype", loc)
        if op == "rand" and (len(inputs) != 1 or not dtype.is_floating_point):
            raise IRError(op, "takes one i64[2] key and makes floats", loc)
        return Node(op, inputs, attrs, tuple(shape), dtype, loc)
    shape_, dtype_ = _ops.infer(op, inputs, attrs, loc)
    return Node(op, inputs, attrs, shape_, dtype_, loc)


def topo_order(roots) -> list[Node]:
    """Nodes reachable from `roots`, each after its inputs; stops at nodes with a buffer."""
    order, seen = [], set()
    for root in roots:
        if id(root) in seen:
            continue
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            if node.buffer is None:
                for x in reversed(node.inputs):
                    if id(x) not in seen:
                        stack.append((x, False))
    return order


class Graph:
    """Roots of a computation. `nodes()` walks them; the graph holds no other state."""

    def __init__(self, name: str, inputs=(), params=(), outputs=None, assigns=()):
        self.name = name
        self.inputs = list(inputs)            # op == 'input'
        self.params = list(params)            # op == 'param', attrs['name'] is the state's name
        self.outputs = dict(outputs or {})    # output name -> node
        self.assigns = list(assigns)          # (param node, new value node)

    def roots(self) -> list[Node]:
        return list(self.outputs.values()) + [v for _, v in self.assigns]

    def nodes(self) -> list[Node]:
        """Every node in topological order: inputs and params first, in declared order."""
        declared = self.inputs + self.params
        rest = [n for n in topo_order(self.roots()) if n.op not in ("input", "param")]
        return declared + rest

    def users(self) -> dict[Node, list[Node]]:
        out: dict[Node, list[Node]] = {n: [] for n in self.nodes()}
        for n in out:
            for x in n.inputs:
                out[x].append(n)
        return out

    def with_roots(self, outputs: dict, assigns) -> "Graph":
        return Graph(self.name, self.inputs, self.params, outputs, assigns)

    def __str__(self):
        from .printer import print_graph
        return print_graph(self)
