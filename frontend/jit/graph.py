"""Reading a trace off what the call left behind: the Graph computing the returned tensors
and the storages' new values, and where each param's buffer comes from (live state or a
constant).
"""
from __future__ import annotations

import weakref

import numpy as np

from .. import placement as _placement
from ..compiler.ir import Graph, Node, topo_order
from ..realize import buffer_owner, realize
from ..storage import Storage, buffer_of, computed
from .tracer import TracingError


def graph_of(name, inputs, outputs: dict, assigns: list, names: dict):
    """The Graph computing `outputs` and the storages' new values, and for each param where
    its buffer comes from: (storage, None) for live state, (None, array) for a constant."""
    new = {id(n): n for n in inputs}
    params: list[Node] = []
    sources: list = []
    taken: set[str] = set()

    def add_param(label, shape, dtype, source):
        label = _unique(label, taken)
        p = Node("param", (), {"name": label}, shape, dtype)
        params.append(p)
        sources.append(source)
        return p

    roots = list(outputs.values()) + [value for _, value in assigns]
    for n in topo_order(roots, _is_computed):
        if id(n) in new:
            continue
        leaf = computed(n)
        if leaf is not None:
            if id(leaf) in new:          # a pending node computed since: its leaf's param
                new[id(n)] = new[id(leaf)]
                continue
            buf = buffer_of(leaf)
            owner = buffer_owner(buf)
            holder = owner.holder() if owner is not None and owner.holder is not None else None
            live = holder is not None and computed(holder) is leaf
            if live:
                new[id(n)] = add_param(names.get(id(owner), "state"), n.shape, n.dtype, (owner, None))
            else:
                new[id(n)] = add_param("const", n.shape, n.dtype, (None, buf))
            new[id(leaf)] = new[id(n)]
        elif n.op == "input" and not n.inputs:
            raise TracingError(f"{name}: uses a tensor that belongs to another trace")
        else:
            new[id(n)] = Node(n.op, tuple(new[id(x)] for x in n.inputs), n.attrs, n.shape, n.dtype, n.loc)
    graph_assigns = []
    for s, value in assigns:
        p = next((p for p, (owner, _) in zip(params, sources) if owner is s), None)
        if p is None:        # written without being read (zero_, fill_): a param all the same
            p = add_param(names.get(id(s), "state"), value.shape, value.dtype, (s, None))
        graph_assigns.append((p, new[id(value)]))
    graph = Graph(name, list(inputs), params, {k: new[id(v)] for k, v in outputs.items()}, graph_assigns)
    return graph, sources


def _is_computed(n) -> bool:
    return computed(n) is not None


def _unique(label: str, taken: set) -> str:
    name, k = label, 1
    while name in taken:
        name, k = f"{label}_{k}", k + 1
    taken.add(name)
    return name


def const_key(a):
    """Constants the trace computed (a hyperparameter as a 0-d tensor) compare by value, so two
    traces that made equal constants agree; large ones by identity. `a` is a numpy array or a
    device buffer (read back)."""
    if int(np.prod(a.shape)) > 64:
        return id(a)
    h = _placement.host_array(a)
    return (h.dtype.str, h.shape, h.tobytes())


def compute_old_value(s: Storage, old_node) -> None:
    """A storage updated in the trace whose old value was never computed: compute it now,
    outside the trace, so the program can read it as a param and write the new value over it."""
    tmp = Storage(old_node, device=s.device)
    realize([tmp])
    s.buffer = tmp.buffer
    s.holder = weakref.ref(old_node)
