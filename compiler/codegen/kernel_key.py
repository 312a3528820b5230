"""A kernel's structural key: equal keys mean the CPU backend emits the same code for both.

The CPU backend compiles each distinct kernel once (codegen/cpu_program.py), in a module of
its own whose functions take the kernel's buffers as arguments. What that code depends on is
the part of the graph the kernel's codegen reads, with buffers named by their position among
the kernel's arguments instead of their program slot. `kernel_key` walks exactly that part:

- from the kernel's stored values, its anchor, its nodes and its loads, down through inputs;
- stopping at a value the kernel reads from a buffer of its own (a load with a slot that is
  not a view), which the key records as its shape, dtype and argument position only: what
  made the buffer, and the names of inputs and params, do not change the kernel's code. A
  view read in place is walked down to its buffer (its views are part of the code), as is a
  loaded gather's index (codegen looks at its views too: kernel_plan._collect_views).

The key holds no order the fuser happened to list things in, only what codegen reads: the
arguments are numbered in walk order (`_canonical_slots`: a buffer by the first node walked
that reads or stores it), the kernel's nodes and loads are sets (codegen computes values on
demand from the stores), and of their order only the reductions' (their row passes), so the
same kernel in two unrolled steps, whose nodes the fuser met in another order, has one key
and one module.

Each node walked is recorded as its structure (op, attributes, shape, dtype), its argument
position if it has a buffer, whether the kernel loads or evaluates it, and its inputs by
number. Source lines are not part of the key: the checks a kernel makes are kept per node
number (`KeyedKernel.number`), so a kernel reusing another's code reports its own lines.
The key also holds the compiler's fingerprint and the host facts that GEMM blocking reads.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..fingerprint import FINGERPRINT
from ..ir import Node
from ..passes.fuse import Kernel, movement_base
from ..passes.schedule import Schedule
from . import gemm
from .kernel_plan import kernel_slots

UNNAMED_SOURCES = ("input", "param")     # their `name` attribute never reaches the code


@dataclass
class KeyedKernel:
    key: str            # hex digest of the structure below
    slots: list         # the program slots the kernel's arguments 1.. hold (0: the error word)
    nodes: list         # the nodes walked, numbered by position
    number: dict        # node id -> its number

    def argument(self, slot: int) -> int:
        """The argument position of program slot `slot` (0: the error word)."""
        return 0 if slot == 0 else self.slots.index(slot) + 1


def kernel_key(sched: Schedule, k: Kernel) -> KeyedKernel:
    """The structural key of kernel `k` of schedule `sched` (module doc)."""
    loads, evaluated = {id(x) for x in k.loads}, {id(n) for n in k.nodes}
    roots = [n for n, _ in k.stores] + ([k.anchor] if k.anchor is not None else []) + list(k.nodes) + list(k.loads)
    nodes = _walk(roots, lambda n: _inputs_read(n, sched, loads, evaluated))
    number = {id(n): i for i, n in enumerate(nodes)}
    slots = _canonical_slots(sched, k, number)
    position = {s: i + 1 for i, s in enumerate(slots)}
    records = [_record(n, sched, position, loads, evaluated, number) for n in nodes]
    structure = (
        FINGERPRINT, gemm.host_facts(),
        k.kind, tuple(k.space), tuple(k.axes), k.order, len(slots),
        number[id(k.anchor)] if k.anchor is not None else -1,
        tuple(sorted(number[id(n)] for n in k.nodes)), tuple(sorted(number[id(x)] for x in k.loads)),
        tuple(number[id(r)] for r in k.reduces),
        tuple((number[id(n)], position[s]) for n, s in k.stores),
        tuple(records))
    key = hashlib.sha256(repr(structure).encode()).hexdigest()
    return KeyedKernel(key, slots, nodes, number)


def _canonical_slots(sched: Schedule, k: Kernel, number: dict) -> list:
    """The kernel's slots (kernel_plan.kernel_slots) ordered by the number of the first walked
    node that reads each (a load) or is stored to it, loads before stores of one node."""
    first: dict = {}
    for x in k.loads:
        s = sched.read_slot.get(id(x), sched.read_slot.get(id(movement_base(x)[0])))
        if s is not None:
            first[s] = min(first.get(s, (number[id(x)], 0)), (number[id(x)], 0))
    for n, s in k.stores:
        first[s] = min(first.get(s, (number[id(n)], 1)), (number[id(n)], 1))
    slots = kernel_slots(sched, k)
    return sorted(slots, key=lambda s: first[s])


def _inputs_read(n: Node, sched: Schedule, loads: set, evaluated: set) -> tuple:
    """The inputs of `n` that the kernel's code may look at (module doc)."""
    if id(n) in loads and id(n) not in evaluated and id(n) in sched.read_slot and not _is_view(n):
        return (n.inputs[1],) if n.kind == "gather" else ()
    return n.inputs


def _is_view(n: Node) -> bool:
    return n.kind == "movement" and n.op != "concat"


def _walk(roots: list, inputs_of) -> list:
    """Every node reachable from `roots` through `inputs_of`, each after the inputs it was
    reached through (iterative post-order: fused chains may be thousands of ops deep)."""
    order: list = []
    seen: set = set()
    for root in roots:
        if id(root) in seen:
            continue
        seen.add(id(root))
        stack = [(root, iter(inputs_of(root)))]
        while stack:
            node, pending = stack[-1]
            for x in pending:
                if id(x) not in seen:
                    seen.add(id(x))
                    stack.append((x, iter(inputs_of(x))))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def _record(n: Node, sched: Schedule, position: dict, loads: set, evaluated: set, number: dict) -> tuple:
    slot = sched.read_slot.get(id(n))
    argument = -1 if slot is None else position.get(slot, -2)     # -2: a buffer the kernel does not take
    flags = (id(n) in loads, id(n) in evaluated)
    inputs = tuple(number.get(id(x), -1) for x in _inputs_read(n, sched, loads, evaluated))
    if flags == (True, False) and slot is not None and not _is_view(n):
        return ("buffer", n.shape, n.dtype.short, n.kind == "gather", argument, inputs)
    op, attrs, shape, dtype = n.sig
    if op in UNNAMED_SOURCES:
        attrs = tuple(a for a in attrs if a[0] != "name")
    return (op, attrs, shape, dtype, argument, flags, inputs)
