"""Pass 6, schedule: kernel order, buffers, in-place updates and the memory plan.

Every value a kernel writes or reads gets a slot in the program's buffer table:
  slot 0        the error word (kernels that can fail write a code there),
  inputs        argument buffers, in the graph's input order,
  params        captured state, in the graph's param order (read, and written by assigns),
  outputs       one fresh buffer per output name,
  temps         intermediates, placed in one arena at offsets chosen here, so that buffers
                whose lifetimes do not overlap share memory.
An assign writes the new value straight into the param's buffer when that is safe: nothing
that runs later reads the old value, and the kernel computing it reads the param only at the
element it writes. Kernels that read the old value are ordered first where possible; when
not, the value goes to a temp and a copy kernel at the end writes the param.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from ..ir import DType, Graph, Node, fmt_type, int64
from ..ir.ops import ELEMENTWISE_KINDS, OPS
from .fuse import Fused, Kernel, Reason, movement_base

ARENA_ALIGN = 64


@dataclass
class Buffer:
    slot: int
    role: str                  # error | input | param | output | temp
    name: str
    shape: tuple
    dtype: DType
    offset: int = -1           # byte offset in the arena (temps)

    @property
    def nbytes(self) -> int:
        n = self.dtype.itemsize
        for d in self.shape:
            n *= d
        return n


@dataclass
class Schedule:
    graph: Graph
    kernels: list
    buffers: list
    read_slot: dict                       # node id -> slot its value is read from
    outputs: dict                         # output name -> slot
    arena_bytes: int = 0
    fallible: set = field(default_factory=set)   # names of kernels that can set the error word

    @property
    def temp_bytes(self) -> int:
        return sum(b.nbytes for b in self.buffers if b.role == "temp")

    def slot_of(self, x: Node) -> int:
        """The slot a kernel reads operand `x` from: its own buffer, else that of its movement
        base (a view read in place). Fusion gives every operand one of the two."""
        slot = self.read_slot.get(id(x), self.read_slot.get(id(movement_base(x)[0])))
        assert slot is not None, f"no buffer holds {x.op} {fmt_type(x.shape, x.dtype)} or its movement base"
        return slot


def _align(n: int) -> int:
    return -(-n // ARENA_ALIGN) * ARENA_ALIGN


def _copy_kernel(name: str, src: Node, slot: int, why: str) -> Kernel:
    return Kernel(name, "elementwise", tuple(src.shape), outputs=[src], nodes=[], loads=[src],
                  stores=[(src, slot)], reasons=[Reason("copy", why)])


def _reads_only_in_place(kernel: Kernel, param: Node) -> bool:
    """Does `kernel` read `param` only at the element it writes, before writing it? (An
    elementwise kernel reading it unmoved. Not a matmul: it stores the product in C before
    its epilogue runs, so an epilogue reading the param it overwrites, as `grad += x.T @ g`
    into a computed .grad does, would read the product instead of the old value.)"""
    if kernel.kind != "elementwise" or tuple(kernel.space) != tuple(param.shape):
        return False
    return all(n.kind in ELEMENTWISE_KINDS
               for n in kernel.nodes if any(x is param for x in n.inputs))


def _order(kernels: list, producer: dict, in_place: dict) -> list:
    """Topological order of kernels, readers of a param's old value before its writer.

    Drops from `in_place` every param whose readers cannot all run before its writer."""
    g = nx.DiGraph()
    index = {k.name: i for i, k in enumerate(kernels)}
    g.add_nodes_from(index)
    for k in kernels:
        for x in k.loads:
            if id(x) in producer and producer[id(x)] is not k:
                g.add_edge(producer[id(x)].name, k.name)
    for p, writer in list(in_place.items()):
        readers = [k.name for k in kernels if k is not writer and any(x is p for x in k.loads)]
        trial = g.copy()
        trial.add_edges_from((r, writer.name) for r in readers)
        if nx.is_directed_acyclic_graph(trial):
            g = trial
        else:
            del in_place[p]
    by_name = {k.name: k for k in kernels}
    return [by_name[n] for n in nx.lexicographical_topological_sort(g, key=lambda n: index[n])]


def schedule(fused: Fused) -> Schedule:
    graph = fused.graph
    kernels = list(fused.kernels)
    producer = {id(out): k for k in kernels for out in k.outputs}
    buffers = [Buffer(0, "error", "error", (2,), int64)]
    read_slot: dict[int, int] = {}

    def add(role, name, node) -> int:
        buffers.append(Buffer(len(buffers), role, name, tuple(node.shape), node.dtype))
        return buffers[-1].slot

    for x in graph.inputs:
        read_slot[id(x)] = add("input", x.attrs["name"], x)
    for p in graph.params:
        read_slot[id(p)] = add("param", p.attrs["name"], p)

    outputs: dict[str, int] = {}
    output_slot_of: dict[int, int] = {}           # value id -> its output slot
    for name, v in graph.outputs.items():
        if id(v) in output_slot_of:                 # two names for one value share its buffer
            outputs[name] = output_slot_of[id(v)]
            continue
        slot = outputs[name] = output_slot_of[id(v)] = add("output", name, v)
        if id(v) in producer:
            producer[id(v)].stores.append((v, slot))
            read_slot.setdefault(id(v), slot)
        else:                                       # an input or param returned as it is
            kernels.append(_copy_kernel(f"copy_{name}", v, slot,
                                        f"copy: output {name} is {v.op} {v.attrs.get('name', '')} as it is"))

    in_place = {}
    for p, v in graph.assigns:
        k = producer.get(id(v))
        if v is not p and k is not None and (_reads_only_in_place(k, p) or all(x is not p for x in k.loads)):
            in_place[p] = k
    kernels = _order(kernels, producer, in_place)
    for p, v in graph.assigns:
        if p in in_place:
            in_place[p].stores.append((v, read_slot[id(p)]))
            read_slot.setdefault(id(v), read_slot[id(p)])

    for k in kernels:
        for out in k.outputs:
            if id(out) not in read_slot:
                read_slot[id(out)] = add("temp", f"t{len(buffers)}", out)
                k.stores.append((out, read_slot[id(out)]))
    for i, (p, v) in enumerate((p, v) for p, v in graph.assigns if v is not p and p not in in_place):
        kernels.append(_copy_kernel(f"assign{i}", v, read_slot[id(p)],
                                    f"copy: writes {p.attrs['name']} last (its new value cannot be written in place)"))

    sched = Schedule(graph, kernels, buffers, read_slot, outputs)
    sched.arena_bytes = _plan_arena(sched)
    sched.fallible = {k.name for k in kernels if any(OPS[n.op].may_fail(n.dtype) for n in k.nodes)}
    return sched


def _plan_arena(s: Schedule) -> int:
    """Offsets for temps so that buffers alive at the same time never overlap."""
    position = {k.name: i for i, k in enumerate(s.kernels)}
    first: dict[int, int] = {}      # slot -> position of the first and the last kernel using it
    last: dict[int, int] = {}
    for k in s.kernels:
        i = position[k.name]
        for _, slot in k.stores:
            first.setdefault(slot, i)
            last[slot] = max(last.get(slot, i), i)
        for x in k.loads:
            slot = s.read_slot.get(id(x))
            if slot is not None:
                last[slot] = max(last.get(slot, i), i)
    temps = sorted((b for b in s.buffers if b.role == "temp"), key=lambda b: (-b.nbytes, b.slot))
    placed: list[tuple[Buffer, int, tuple[int, int]]] = []    # (temp, offset, live range)
    top = 0
    for b in temps:
        live = (first.get(b.slot, 0), last.get(b.slot, 0))
        clashes = sorted((o, o + _align(c.nbytes)) for c, o, (f, end) in placed if f <= live[1] and live[0] <= end)
        offset = 0
        for lo, hi in clashes:
            if offset + _align(b.nbytes) <= lo:
                break
            offset = max(offset, hi)
        b.offset = offset
        placed.append((b, offset, live))
        top = max(top, offset + _align(b.nbytes))
    return top

