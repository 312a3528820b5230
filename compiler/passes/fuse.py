"""Pass 5, fusion: partition the graph into kernels.

Fusion decides which nodes get a buffer ("materialized"); every other node is evaluated
inside the kernel of the materialized node that needs it, at the index that node needs it.

Rules, after DESIGN.md:
- elementwise and movement ops fuse into one loop nest; movement ops are index arithmetic;
- a reduction fuses with its elementwise producers and with elementwise consumers at its
  output index (`sum(x) / n`) or broadcast back over the reduced axes (`x - max(x)` in
  softmax), so a row-wise softmax is one kernel that makes several passes over each row;
- `matmul` is its own kernel, taking an elementwise epilogue at its output index;
- a collective (`all_reduce`) is its own kernel, a call to the host: it reads its operand from
  a buffer (the operand's own, or the buffer it is a contiguous view of) and writes its own;
- a value needed by several kernels is materialized once, unless recomputing it is free
  (constants, iota, movement);
- a value a kernel would evaluate at more than MAX_EVALUATIONS different indices per element
  (reached through that many chains of movement ops: slices of slices in a concat or stencil
  chain, which double at every step) is materialized, so kernels grow linearly, not
  exponentially, with such chains.

Decisions are made consumers-first. Each node gets the set of kernel roots that will evaluate
it and a set of "levels" saying at which index each root needs it:
  ('id',)          at the root's own index;
  ('exp', S, A)    once per row of a reduction over axes A of shape S (broadcast back over A);
  ('red', S, A)    inside the loop of a reduction over A of shape S whose result is at the root index;
  ('red-exp', S, A) once per row, then broadcast inside such a loop (softmax's max inside its sum);
  ('moved',)       at some other index (after a permute, slice, pad, ...).
A reduction may join a kernel only at the first three kinds of level, with its own (S, A).

Every kernel records why it ends where it does (`Kernel.reasons`, shown by the `kernels` dump
stage): for each value it writes, the fact that gave it a buffer, in words.
  "output requested", "assigned to model.weight"          a root of the graph;
  "matmul operand of k3", "gather source of k4",           a kernel reads it at any index;
  "copied for the matmul in k3 (...)"
  "scatter: own kernel", "matmul: own kernel[, epilogue fused: add, relu]"   (the kernel's anchor);
  "all_reduce: own kernel (a host call)", "all_reduce operand of k4";
  "materialized: read by 2 kernels (k3, k5)"               several kernels would compute it;
  "materialized: evaluated 40 times per element (limit 32)";
  "reduction over axis 1 feeds a broadcast consumer (k2)"  and the other refusals of `_can_join`
                                                           (see `_join_refusal`), naming the consumer;
  "merged k7: same loop over [4,8], reading a common buffer"   horizontal fusion (merge_elementwise).
Kernels are named as in the dump; one merged away later is named with the one it went into
("read by 2 kernels (k1, k2; k2 merged into k1 later)"). A kernel writing several values
names each one before its facts ("%5: output requested; %6: matmul operand of k3").
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import Graph, Node
from ..ir.ops import ELEMENTWISE_KINDS
from ..view import ViewStack

ID = ("id",)
MOVED = ("moved",)
MAX_EVALUATIONS = 32


@dataclass
class Kernel:
    name: str
    kind: str                          # elementwise | reduce | matmul | scatter | collective
    space: tuple                       # the iteration shape (see module docstring)
    outputs: list = field(default_factory=list)    # materialized nodes written here
    nodes: list = field(default_factory=list)      # nodes evaluated here, in topological order
    loads: list = field(default_factory=list)      # materialized or source nodes read here
    axes: tuple = ()                   # reduced axes (reduce kernels)
    order: str = ""                    # 'row' (reduced axes innermost) or 'column' (reduce kernels)
    anchor: Node | None = None         # the matmul, scatter_add or collective node
    stores: list = field(default_factory=list)     # (node, slot) pairs, set by the schedule
    reasons: list = field(default_factory=list)    # Reason records: why the kernel ends where it does
    merged: list = field(default_factory=list)     # names of the kernels merged into this one

    @property
    def reduces(self) -> list:
        return [n for n in self.nodes if n.kind == "reduce"]

    @property
    def reason(self) -> str:
        """The reasons in words (values unnamed); `explain` names them."""
        return self.explain()

    def explain(self, names: dict | None = None) -> str:
        """Why the kernel ends where it does, in words: its facts joined by '; '. A kernel
        writing several values prefixes each one's facts with its name from `names` (node id
        -> printed name, printer.var_names), e.g. '%5: output requested, matmul operand of k3'."""
        several = names is not None and len({id(r.value) for r in self.reasons if r.value is not None}) > 1
        parts: list[str] = []
        at: dict[int, int] = {}
        for r in self.reasons:
            if r.value is None or not several:
                parts.append(r.text)
            elif id(r.value) in at:
                parts[at[id(r.value)]] += ", " + r.text
            else:
                assert names is not None
                at[id(r.value)] = len(parts)
                parts.append(f"%{names.get(id(r.value), '?')}: {r.text}")
        return "; ".join(parts)


@dataclass(frozen=True)
class Reason:
    """One fact that ends a kernel. `kind` is one of REASON_KINDS; `text` says it in words;
    `value` is the node it gave a buffer (None for a fact about the whole kernel)."""
    kind: str
    text: str
    value: Node | None = field(default=None, compare=False, repr=False)


REASON_KINDS = ("output", "assign", "operand", "scatter", "matmul", "readers", "evaluations", "refused",
                "merged", "copy", "collective")


@dataclass
class Fused:
    graph: Graph
    kernels: list
    materialized: set                  # ids of nodes with a buffer (kernel outputs)


def is_trivial_reshape(src_shape, dst_shape) -> bool:
    """A reshape that only adds or drops size-1 dims: indices map one to one."""
    return [d for d in src_shape if d != 1] == [d for d in dst_shape if d != 1]


def movement_base(x: Node) -> tuple[Node, list]:
    """The first non-movement node under a chain of view ops, and the chain (outermost first)."""
    chain = []
    while x.kind == "movement" and x.op != "concat":
        chain.append(x)
        x = x.inputs[0]
    return x, chain


def view_of(x: Node) -> ViewStack:
    """The views through which `x` reads its movement base (a concat is a base: it is no view)."""
    base, chain = movement_base(x)
    st = ViewStack.contiguous(base.shape)
    for m in reversed(chain):
        st = st.apply(m.op, m.attrs)
    return st


@dataclass(frozen=True)
class MatmulOperand:
    strides: tuple        # (batch, row, col) element strides, batch dims merged into one
    offset: int


def matmul_operand(x: Node) -> MatmulOperand | None:
    """How a matmul reads operand `x` in place: one strided view of its movement base, or None
    when it needs a contiguous copy (a masked view, a view stack, unmergeable batch dims)."""
    st = view_of(x).single
    if st is None or st.mask is not None:
        return None
    batch_shape, batch_strides = st.shape[:-2], st.strides[:-2]
    real = [(d, t) for d, t in zip(batch_shape, batch_strides) if d != 1]
    for (_, t0), (d1, t1) in zip(real, real[1:]):
        if t0 != t1 * d1:
            return None
    return MatmulOperand((real[-1][1] if real else 0, st.strides[-2], st.strides[-1]), st.offset)


def matmul_read(x: Node, read_slot: dict) -> MatmulOperand:
    """How a matmul kernel reads operand `x`: from x's own buffer (row-major, batch dims
    merged) when fusion materialized it, else in place through its views."""
    if id(x) in read_slot:
        m, k = x.shape[-2], x.shape[-1]
        return MatmulOperand((m * k, k, 1), 0)
    operand = matmul_operand(x)
    assert operand is not None, "an operand that needs a copy has its own buffer (_forced)"
    return operand


def host_view(x: Node) -> tuple[int, int] | None:
    """(element offset, element count) of `x` in its movement base's buffer when `x` is one
    contiguous run of it (a reshape, a leading slice): a host call can read it in place.
    None when `x` needs a buffer of its own."""
    st = view_of(x).single
    if st is None or st.mask is not None:
        return None
    expected = 1
    for d, stride in reversed(list(zip(st.shape, st.strides))):
        if d != 1 and stride != expected:
            return None
        expected *= d
    return st.offset, expected


def _broadcast_axes(src_shape, dst_shape):
    src = (1,) * (len(dst_shape) - len(src_shape)) + tuple(src_shape)
    return tuple(d for d, (a, b) in enumerate(zip(src, dst_shape)) if a != b), src


def _level_through(n: Node, user: Node, level: tuple) -> tuple:
    """The level at which `n` is needed when `user` is needed at `level`."""
    kind = user.kind
    if kind in ELEMENTWISE_KINDS or (kind == "gather" and user.inputs[1] is n):
        return level
    if kind == "scatter":
        return ID if user.inputs[0] is n else MOVED
    if user.op == "reshape" and level == ID and is_trivial_reshape(n.shape, user.shape):
        return ID
    if user.op == "expand":
        axes, aligned = _broadcast_axes(n.shape, user.shape)
        if level == ID:
            return ("exp", tuple(user.shape), axes)
        if level[0] == "red" and tuple(user.shape) == level[1]:
            return ("red-exp", level[1], axes)
    if kind == "reduce":
        s, a = tuple(n.shape), tuple(user.attrs["axes"])
        if level == ID:
            return ("red", s, a)
        if level[0] in ("exp", "red-exp") and level[1:] == (s, a):
            return ID if level[0] == "exp" else ("red", s, a)
    return MOVED


@dataclass
class _Root:
    node: Node
    red: tuple | None = None          # (S, A) of the reduction this kernel performs
    has_matmul: bool = False


def _forced(graph: Graph) -> dict:
    """Nodes that must have a buffer whatever their consumers: roots, and operands that
    kernels read at arbitrary indices (matmul operands, gather sources). Maps each one's id to
    the facts that force it: ('output',), ('assign', param name), ('operand' | 'copy' |
    'gather' | 'host', the reading node), ('scatter',), ('collective', op).

    A collective is its own kernel, and what it reads is in a buffer before it runs: its
    operand's movement base when the operand is a contiguous run of it, else the operand."""
    forced: dict[int, list] = {}
    for v in graph.outputs.values():
        forced.setdefault(id(v), []).append(("output",))
    for p, v in graph.assigns:
        forced.setdefault(id(v), []).append(("assign", p.attrs["name"]))
    for n in graph.nodes():
        operands = n.inputs if n.kind == "matmul" else n.inputs[:1] if n.kind == "gather" else ()
        for x in operands:
            base, _ = movement_base(x)
            needs_copy = n.kind == "matmul" and matmul_operand(x) is None
            role = "operand" if n.kind == "matmul" else "gather"
            if needs_copy or base.op in ("const", "iota") or x.op == "concat":
                forced.setdefault(id(x), []).append(("copy" if needs_copy else role, n))
            elif base.op not in ("input", "param"):
                forced.setdefault(id(base), []).append((role, n))
        if n.kind == "scatter":
            forced.setdefault(id(n), []).insert(0, ("scatter",))      # said first, as "matmul: own kernel"
        if n.kind == "collective":
            forced.setdefault(id(n), []).insert(0, ("collective", n.op))
            for x in n.inputs:
                base, _ = movement_base(x)
                if host_view(x) is None or base.op in ("const", "iota") or x.op == "concat":
                    forced.setdefault(id(x), []).append(("host", n))
                elif base.op not in ("input", "param"):
                    forced.setdefault(id(base), []).append(("host", n))
    return forced


def _can_join(n: Node, levels: set, root: _Root) -> bool:
    """May `n`, needed at `levels` by a single kernel, be evaluated inside it?"""
    return _join_refusal(n, levels, root) is None


def _axes_text(axes) -> str:
    axes = tuple(axes)
    return f"axis {axes[0]}" if len(axes) == 1 else f"axes {','.join(map(str, axes))}"


def _join_refusal(n: Node, levels: set, root: _Root) -> str | None:
    """None when `n`, needed at `levels` by a single kernel, may be evaluated inside it; else
    why not, in words, with '{k}' standing for that kernel's name."""
    if n.kind == "matmul":
        if root.node.kind == "scatter":
            return "result feeds the scatter in {k}"
        if root.has_matmul:
            return "result feeds {k}, which holds another matmul"
        if root.red is not None:
            return "result feeds the reduction in {k}"
        if levels != {ID}:
            return "result is read at other indices by {k}"
        if tuple(n.shape) != tuple(root.node.shape):
            return "result feeds {k}, a loop over another shape"
        if n.dtype is not root.node.dtype:
            return "result feeds {k}, which computes another dtype"
        return None
    if n.kind != "reduce":
        return None
    s, a = tuple(n.inputs[0].shape), tuple(n.attrs["axes"])
    over = f"reduction over {_axes_text(a)}"
    if root.has_matmul:
        return over + " feeds the matmul in {k} (a matmul epilogue takes no reduction)"
    if root.node.kind == "scatter":
        return over + " feeds the scatter in {k}"
    if len(s) - 1 not in a:    # reductions fuse in row order only (reduced axes innermost)
        return over + " (not the innermost axis) does not fuse into its consumer {k}"
    if root.red is not None and root.red != (s, a):
        return over + " feeds another reduction ({k})"
    for lv in levels:
        if not (lv == ID or lv[1:] == (s, a) and lv[0] in ("exp", "red-exp")):
            if lv == MOVED:
                return over + " is read at other indices (through a view) by {k}"
            if lv[0] in ("exp", "red-exp"):
                return over + " feeds a broadcast consumer ({k})"
            return over + " feeds another reduction ({k})"
    return None


def _evaluations(n: Node, users: list, roots_of: dict, evals: dict) -> int:
    """About how many times the kernels evaluating `n` compute it per element they compute:
    once per distinct chain of movement ops leading to it. Each movement consumer adds its own
    chains (a concat reads each input through its own padding); other consumers read `n` where
    they are evaluated themselves, so their chains coincide (count the largest once)."""
    moved = same = 0
    for u in users:
        if id(u) not in roots_of:
            continue
        if u.kind == "movement":
            moved += evals[id(u)] * sum(x is n for x in u.inputs)
        else:
            same = max(same, evals[id(u)])
    return moved + same


def _recomputes(n: Node) -> bool:
    """Whether evaluating `n` again costs more than a load: it is not a source or a view of one."""
    return movement_base(n)[0].op not in ("input", "param", "const", "iota")


def fuse(graph: Graph) -> Fused:
    nodes = graph.nodes()
    users = graph.users()
    forced = _forced(graph)
    roots_of: dict[int, set] = {}      # node id -> ids of the roots whose kernel evaluates it
    levels: dict[int, set] = {}        # node id -> levels at which those kernels need it
    evals: dict[int, int] = {}         # node id -> evaluations per element (_evaluations)
    roots: dict[int, _Root] = {}
    why: dict[int, list] = {}          # root id -> the facts that gave it a buffer (see _forced)

    def materialize(n: Node, facts: list):
        r = _Root(n)
        if n.kind == "reduce":
            r.red = (tuple(n.inputs[0].shape), tuple(n.attrs["axes"]))
        r.has_matmul = n.kind == "matmul"
        roots[id(n)] = r
        roots_of[id(n)] = {id(n)}
        levels[id(n)] = {ID}
        evals[id(n)] = 1
        why[id(n)] = facts

    for n in reversed(nodes):
        if n.op in ("input", "param"):
            continue
        if id(n) in forced:
            materialize(n, forced[id(n)])
            continue
        needed_by, needed_at = set(), set()
        for u in users[n]:
            if id(u) not in roots_of:
                continue  # u reads n as a buffer operand (matmul, gather source): n is forced
            needed_by |= roots_of[id(u)]
            needed_at |= {_level_through(n, u, lv) for lv in levels[id(u)]}
        evals[id(n)] = _evaluations(n, users[n], roots_of, evals)
        if evals[id(n)] > MAX_EVALUATIONS and _recomputes(n):
            materialize(n, [("evaluations", evals[id(n)])])
            continue
        cheap = n.op in ("const", "iota") or n.kind == "movement"
        if len(needed_by) > 1 and not cheap:
            materialize(n, [("readers", needed_by)])
            continue
        if len(needed_by) == 1 and not cheap:
            root = roots[next(iter(needed_by))]
            refusal = _join_refusal(n, needed_at, root)
            if refusal is not None:
                materialize(n, [("refused", refusal, id(root.node))])
                continue
            if n.kind == "reduce" and root.red is None:
                root.red = (tuple(n.inputs[0].shape), tuple(n.attrs["axes"]))
            root.has_matmul |= n.kind == "matmul"
        roots_of[id(n)] = needed_by
        levels[id(n)] = needed_at

    ordered = [n for n in nodes if id(n) in roots]
    evaluated = _evaluated_by(nodes, roots_of, roots)
    kernels = [_kernel(f"k{i}", roots[id(n)], evaluated[id(n)]) for i, n in enumerate(ordered)]
    kernels = merge_elementwise(kernels, {id(n): i for i, n in enumerate(nodes)})
    _explain(kernels, {id(n): f"k{i}" for i, n in enumerate(ordered)}, why, roots_of)
    return Fused(graph, kernels, set(roots))


def _explain(kernels: list, first_name: dict, why: dict, roots_of: dict) -> None:
    """Each kernel's reasons, from the facts recorded for the values it writes, with the final
    kernel names (after horizontal fusion) of the kernels they mention."""
    final = {k.name: k.name for k in kernels}
    final.update({m: k.name for k in kernels for m in k.merged})
    order = {name: int(name[1:]) for name in first_name.values()}
    of_node = lambda n: final[min((first_name[r] for r in roots_of[id(n)]), key=order.__getitem__)]

    def readers(roots: set) -> str:
        names = sorted({first_name[r] for r in roots}, key=order.__getitem__)
        gone = [n for n in names if final[n] != n]
        note = "".join(f"; {', '.join(m for m in gone if final[m] == into)} merged into {into} later"
                       for into in dict.fromkeys(final[m] for m in gone))
        return f"materialized: read by {len(names)} kernels ({', '.join(names)}{note})"

    def facts(value: Node) -> list:
        out: list[Reason] = []
        operands: dict[str, list] = {}      # 'matmul operand of' -> kernel names, in order
        for fact in why[id(value)]:
            kind = fact[0]
            if kind in ("operand", "gather", "host"):
                role = {"operand": "matmul operand of", "gather": "gather source of",
                        "host": f"{fact[1].op} operand of"}[kind]
                if role not in operands:
                    operands[role] = []
                    out.append(Reason("operand", role, value))      # completed below
                name = of_node(fact[1])
                if name not in operands[role]:
                    operands[role].append(name)
            elif kind == "output":
                out.append(Reason(kind, "output requested", value))
            elif kind == "assign":
                out.append(Reason(kind, f"assigned to {fact[1]}", value))
            elif kind == "copy":
                out.append(Reason("operand", f"copied for the matmul in {of_node(fact[1])} "
                                             "(a view it cannot read in place)", value))
            elif kind == "scatter":
                out.append(Reason(kind, "scatter: own kernel", value))
            elif kind == "collective":
                out.append(Reason(kind, f"{fact[1]}: own kernel (a host call)", value))
            elif kind == "evaluations":
                out.append(Reason(kind, f"materialized: evaluated {fact[1]} times per element "
                                        f"(limit {MAX_EVALUATIONS})", value))
            elif kind == "readers":
                out.append(Reason(kind, readers(fact[1]), value))
            else:
                assert kind == "refused", fact
                out.append(Reason(kind, fact[1].format(k=final[first_name[fact[2]]]), value))
        done: list[Reason] = []
        for r in out:
            if r.text in operands:
                r = Reason(r.kind, f"{r.text} {', '.join(operands[r.text])}", value)
            if r not in done:
                done.append(r)
        return done

    for k in kernels:
        reasons: list[Reason] = []
        if k.kind == "matmul":
            epilogue = [n.op for n in k.nodes if n is not k.anchor and not _free(n)]
            reasons.append(Reason("matmul", "matmul: own kernel" +
                                  (f", epilogue fused: {', '.join(epilogue)}" if epilogue else "")))
        for out in k.outputs:
            reasons += facts(out)
        k.reasons = reasons + k.reasons        # + what merge_elementwise recorded


def _free(n: Node) -> bool:
    """Costs nothing inside a kernel: index arithmetic or a constant."""
    return n.kind == "movement" or n.op in ("const", "iota")


def merge_elementwise(kernels: list, position: dict) -> list:
    """Horizontal fusion: elementwise kernels over the same shape become one loop when they
    read a common buffer, or one reads the other's output at the same element (an optimizer
    updating a parameter and its moments reads the gradient once). A merge that would put a
    third kernel both before and after the merged one is refused."""
    producer = {id(o): k for k in kernels for o in k.outputs}
    reach = _Ancestors()
    groups: list = []
    by_space: dict = {}                 # elementwise groups by iteration space, in `groups` order
    for k in kernels:
        preds = _producers(k, producer)
        candidates = by_space.setdefault(tuple(k.space), []) if k.kind == "elementwise" else []
        target = next((grp for grp in candidates if _can_merge(grp, k, preds, reach)), None)
        if target is None:
            reach.add(k, preds)
            groups.append(k)
            if k.kind == "elementwise":
                candidates.append(k)
            continue
        _absorb(target, k, position, producer)
        reach.merge(target, preds)
        for o in k.outputs:
            producer[id(o)] = target
    return groups


class _Ancestors:
    """The ancestors of each kernel group met so far, as a bit mask over groups. Kernels come
    in topological order, so a kernel's producers are groups already met and no path between
    groups runs through a kernel not met yet: a test of a path is one AND, where a search of
    the graph (networkx's has_path) took time in proportion to the graph, hundreds of times
    for a training step unrolled many times."""

    def __init__(self) -> None:
        self.bit: dict = {}            # group name -> its bit
        self.of: dict = {}             # group name -> the bits of its ancestors

    def add(self, k: Kernel, preds: list) -> None:
        self.bit[k.name] = 1 << len(self.bit)
        self.of[k.name] = self._closure(preds)

    def reaches(self, a: Kernel, b: Kernel) -> bool:
        """Whether a path runs from group `a` to group `b`."""
        return bool(self.of[b.name] & self.bit[a.name])

    def merge(self, grp: Kernel, preds: list) -> None:
        """A kernel with producers `preds` joined group `grp`: they and their ancestors are
        now ancestors of `grp` and of every group after it."""
        gained = self._closure(p for p in preds if p is not grp)
        mine = self.bit[grp.name]
        self.of[grp.name] |= gained
        for name, ancestors in self.of.items():
            if ancestors & mine:
                self.of[name] = ancestors | gained

    def _closure(self, preds) -> int:
        bits = 0
        for p in preds:
            bits |= self.of[p.name] | self.bit[p.name]
        return bits


def _producers(k: Kernel, producer: dict) -> list:
    """The groups that write what kernel `k` reads (other than `k`), each once."""
    found = {id(g): g for g in (producer.get(id(x)) for x in k.loads) if g is not None and g is not k}
    return list(found.values())


def _can_merge(grp: Kernel, k: Kernel, preds: list, reach: _Ancestors) -> bool:
    if grp.kind != "elementwise" or tuple(grp.space) != tuple(k.space):
        return False
    mine = {id(o) for o in grp.outputs}
    reads_mine = [x for x in k.loads if id(x) in mine]
    shared = {id(x) for x in grp.loads} & {id(x) for x in k.loads}
    if not reads_mine and not shared:
        return False
    if any(not _read_in_place(k, x) for x in reads_mine):
        return False          # k needs grp's output at other elements than it computes
    for pred in preds:
        if pred is not grp and reach.reaches(grp, pred):
            return False      # grp -> pred -> k: merging would make a cycle
    return True


def _read_in_place(k: Kernel, x: Node) -> bool:
    return tuple(x.shape) == tuple(k.space) and all(
        n.kind in ELEMENTWISE_KINDS for n in k.nodes if any(i is x for i in n.inputs)) and \
        not any(o is x for o in k.outputs)


def _absorb(grp: Kernel, k: Kernel, position: dict, producer: dict) -> None:
    reads_mine = any(producer.get(id(x)) is grp for x in k.loads)
    how = "reading what this kernel writes at the same element" if reads_mine else "reading a common buffer"
    grp.reasons.append(Reason("merged", f"merged {k.name}: same loop over [{','.join(map(str, k.space))}], {how}"))
    grp.merged.append(k.name)
    grp.outputs += k.outputs
    inside = {id(n) for n in grp.nodes}
    grp.nodes = sorted(grp.nodes + [n for n in k.nodes if id(n) not in inside], key=lambda n: position[id(n)])
    computed = {id(o) for o in grp.outputs} | {id(n) for n in grp.nodes}
    loads = [x for x in grp.loads + k.loads if id(x) not in computed]
    grp.loads = list({id(x): x for x in loads}.values())    # each once, in first-seen order


def _evaluated_by(nodes: list, roots_of: dict, roots: dict) -> dict:
    """Root id -> the nodes its kernel evaluates, in `nodes` order: those it is a root of,
    other than inputs, params and other roots (which have buffers of their own)."""
    inside: dict = {r: [] for r in roots}
    for n in nodes:
        if n.op in ("input", "param"):
            continue
        if id(n) in roots:
            inside[id(n)].append(n)
            continue
        for r in roots_of.get(id(n), ()):
            inside[r].append(n)
    return inside


def _kernel(name: str, root: _Root, inside: list) -> Kernel:
    r = root.node
    inside_ids = {id(n) for n in inside}
    loads, seen = [], set()
    for n in inside:
        for x in n.inputs:
            if id(x) not in inside_ids and id(x) not in seen:
                seen.add(id(x))
                loads.append(x)
    anchor = next((n for n in inside if n.kind in ("matmul", "scatter", "collective")), None)
    if anchor is not None:
        kind, space = anchor.kind, tuple(anchor.shape)
    elif root.red is not None:
        kind, space = "reduce", root.red[0]
    else:
        kind, space = "elementwise", tuple(r.shape)
    k = Kernel(name, kind, space, [r], inside, loads, anchor=anchor)
    if root.red is not None and kind == "reduce":
        k.axes = root.red[1]
        k.order = "row" if len(space) - 1 in k.axes else "column"
    return k
