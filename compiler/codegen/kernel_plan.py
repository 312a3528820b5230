"""Target-independent layout of a fused kernel's loops, shared by the CPU and GPU drivers.

A backend's loop drivers (codegen/cpu.py, codegen/ptx.py and its helpers) decide how threads
or loops walk a kernel's iteration space; what they walk is the same on every target:

- `kernel_slots` / `node_pointers`: the buffer-table slots a kernel touches and the pointer
  each loaded node is read through;
- `collapsed_shape`: the fewest dims an elementwise kernel can loop over;
- `row_plan`: for a row reduction (reduced axes innermost), the kept and reduced dims and in
  which pass over a row each output is written (softmax: max pass, sum pass, write pass).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.registry import IndexRule
from ..passes.fuse import Kernel, movement_base
from ..passes.schedule import Schedule
from ..view import ViewStack
from .emit import Emitter, path_view


def numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def contiguous(shape) -> ViewStack:
    return ViewStack.contiguous(shape)


# ---------------------------------------------------------------- buffers

def has_output(k: Kernel) -> bool:
    """Whether the kernel writes anything (a reduction over zero elements still writes its identity)."""
    return any(numel(n.shape) for n, _ in k.stores)


def kernel_slots(sched: Schedule, k: Kernel) -> list:
    """The distinct table slots a kernel touches (one pointer per buffer, even if read and written)."""
    slots = []
    for x in k.loads:
        base = movement_base(x)[0]
        s = sched.read_slot.get(id(x), sched.read_slot.get(id(base)))
        if s is not None and s not in slots:
            slots.append(s)
    for _, s in k.stores:
        if s not in slots:
            slots.append(s)
    return slots


def node_pointers(sched: Schedule, k: Kernel, ptr_of_slot: dict) -> dict:
    """Node id -> the pointer the Emitter reads it through: its own buffer if it has one,
    else the buffer of the movement base it is a view of."""
    pointers = {}
    for x in k.loads:
        s = sched.read_slot.get(id(x), sched.read_slot.get(id(movement_base(x)[0])))
        if s is not None:
            pointers[id(x)] = ptr_of_slot[s]
    return pointers


# ---------------------------------------------------------------- elementwise

def collapsed_shape(em: Emitter, k: Kernel) -> tuple:
    """The fewest loop dims for an elementwise kernel: merge neighbouring dims wherever every
    view the kernel reads or writes walks them as one contiguous run (10M elements in any
    shape become one flat loop the vectorizer handles)."""
    root = tuple(k.space)
    views = [contiguous(root)]
    _collect_views(em, [n for n, _ in k.stores], views)
    keep = [d for d in range(len(root)) if root[d] != 1]
    if not keep:
        return ()
    tops = []
    for st in views:
        st = st.reshape(root) if tuple(st.shape) != root else st
        tops.append(st.views[-1])
    groups = [[keep[0]]]
    for d in keep[1:]:
        prev = groups[-1][-1]
        if all(_mergeable(v, prev, d, root) for v in tops):
            groups[-1].append(d)
        else:
            groups.append([d])
    return tuple(numel([root[d] for d in g]) for g in groups)


def _mergeable(v, a: int, b: int, shape) -> bool:
    full = lambda d: v.mask is None or v.mask[d] == (0, shape[d])
    return full(a) and full(b) and v.strides[a] == v.strides[b] * shape[b]


def _collect_views(em: Emitter, stores: list, out: list) -> None:
    """Every view through which the kernel indexes memory or masks values, as `value` will:
    a loaded node's own view, else what its lowering says it reads (IndexRule.views), else
    (elementwise, reductions) its inputs at the same index. A stack, not recursion: fused
    chains may be thousands of ops deep."""
    seen: set = set()
    stack: list[tuple] = [(n, ()) for n in stores]
    visit = lambda x, p: stack.append((x, p))   # noqa: E731
    while stack:
        n, path = stack.pop()
        key = (id(n), tuple(id(m) for m in path))
        if key in seen:
            continue
        seen.add(key)
        if id(n) in em.loaded:
            out.append(path_view(n.shape, path))
            if n.kind == "gather":     # a loaded gather's index too (as this function always has)
                visit(n.inputs[1], path)
            continue
        rule = em.RULES[n.op]
        if isinstance(rule, IndexRule):
            rule.views(em, n, path, out.append, visit)
            continue
        for x in n.inputs:
            visit(x, path)


# ---------------------------------------------------------------- row reductions

@dataclass
class RowPlan:
    space: tuple              # the kernel's iteration space
    outer_dims: list          # kept dims (one row per index of these)
    inner_dims: list          # reduced dims (walked along a row)
    outer_shape: tuple        # the space with reduced dims set to 1 (shape of per-row outputs)
    passes: list              # passes[i]: (node, ptr) row outputs written during reduction i's pass
    outer_stores: list        # (node, ptr) outputs at the row's index, written after all passes
    late: list                # (node, ptr) row outputs that need every reduction: one more pass

    @property
    def inner_shape(self) -> tuple:
        return tuple(self.space[d] for d in self.inner_dims)

    @property
    def rows(self) -> int:
        return numel(self.outer_shape)

    @property
    def row_length(self) -> int:
        return numel(self.inner_shape)


def row_plan(k: Kernel, stores: list) -> RowPlan:
    """Which output of a row-reduction kernel is written where. `stores`: (node, destination)
    pairs, the destination being whatever the driver writes through (a pointer, a slot)."""
    S, A = tuple(k.space), k.axes
    outer_shape = tuple(1 if d in A else s for d, s in enumerate(S))
    reduces = k.reduces
    at_row = lambda n: numel(n.shape) == numel(S) and numel(S) != numel(outer_shape)
    row_stores = [(n, p) for n, p in stores if at_row(n)]
    outer_stores = [(n, p) for n, p in stores if not at_row(n)]
    stage_of = {id(n): _stage(n, reduces, k) for n, _ in row_stores}
    passes = [[(n, p) for n, p in row_stores if stage_of[id(n)] == i] for i in range(len(reduces))]
    late = [(n, p) for n, p in row_stores if stage_of[id(n)] == len(reduces)]
    return RowPlan(S, [d for d in range(len(S)) if d not in A], [d for d in range(len(S)) if d in A],
                   outer_shape, passes, outer_stores, late)


def _stage(n, reduces, k) -> int:
    """The first row pass in which output `n` can be written: after every reduction it needs."""
    order = {id(r): i for i, r in enumerate(reduces)}
    inside = {id(x) for x in k.nodes}
    need, stack, seen = -1, [n], set()
    while stack:
        x = stack.pop()
        if id(x) in seen or id(x) not in inside:
            continue
        seen.add(id(x))
        if id(x) in order and x is not n:
            need = max(need, order[id(x)])
            continue
        stack.extend(x.inputs)
    return need + 1
