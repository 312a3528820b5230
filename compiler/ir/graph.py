"""Nodes and graphs: the IR every pass reads and writes.

A `Node` is one primitive applied to input nodes, with its shape and dtype inferred when it is
made (so a mistake raises at the user's line) and the user's source line kept for dumps.
Nodes form a DAG and never change once made: a pass builds new nodes. A node holds its op,
inputs, attributes, type (shape, dtype) and source line, nothing about values or buffers (the
frontend keeps those in its own tables, frontend/storage.py). Three derived facts are computed
once, when the node is made, from those fields alone: `sig` (op, attributes, type), `key` (an
int naming the node's structure: its sig and its inputs' keys, interned so that equal keys
mean equal structure, as a tree) and `height` (the longest chain of inputs behind it).

A `Graph` names the roots of a computation: inputs (argument buffers), params (captured state
with names such as "net.weight"), named outputs, and assigns (a param's buffer receives a new
value when the program ends).
"""
from __future__ import annotations

import itertools

from . import ops as _ops
from .errors import IRError

_KEYS: dict = {}                # structure -> key; keys are never reused (see _intern)
_NEXT_KEY = itertools.count(1)
MAX_KEYS = 1 << 20


def _intern(structure) -> int:
    """The key of `structure` (a sig, or a sig with its inputs' keys). Past MAX_KEYS entries the
    table starts afresh; keys keep counting up, so an old node's key never names new structure
    (a structure seen again only gets a new key, which costs a cache miss, never a wrong hit)."""
    k = _KEYS.get(structure)
    if k is None:
        if len(_KEYS) >= MAX_KEYS:
            _KEYS.clear()
        k = _KEYS.setdefault(structure, next(_NEXT_KEY))
    return k


def _token(v):
    """An attribute value as a hashable token: equal tokens only for values of one type that
    are the same (-0.0 and 0.0 differ, 1 and True and 1.0 differ)."""
    t = type(v)
    if t is int or t is str or v is None:
        return v
    if t is float:
        return ("f", repr(v))
    if t is tuple:
        return ("t", tuple(map(_token, v)))
    if t is bool:
        return ("b", v)
    if hasattr(v, "dtype") and hasattr(v, "tobytes"):       # a numpy scalar or array
        return ("n", str(v.dtype), getattr(v, "shape", ()), v.tobytes())
    return ("r", t.__name__, repr(v))


class Node:
    __slots__ = ("op", "inputs", "attrs", "shape", "dtype", "loc", "sig", "key", "height", "__weakref__")

    def __init__(self, op: str, inputs: tuple, attrs: dict, shape: tuple, dtype, loc: str | None = None):
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.shape = shape
        self.dtype = dtype
        self.loc = loc
        self.sig = sig = (op, tuple([(k, _token(v)) for k, v in sorted(attrs.items())]) if attrs else (), shape,
                          dtype.short)
        if inputs:
            self.key = _intern((sig, tuple([x.key for x in inputs])))
            self.height = 1 + max([x.height for x in inputs])
        else:
            self.key = _intern(sig)
            self.height = 1

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def kind(self) -> str:
        return _ops.OPS[self.op].kind

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


def topo_order(roots, stop=None) -> list[Node]:
    """Nodes reachable from `roots`, each after its inputs. `stop(node)` true: the walk takes the
    node but not its inputs (the frontend stops at values it has already computed)."""
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
            if stop is None or not stop(node):
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
