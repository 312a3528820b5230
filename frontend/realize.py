"""Realization: computing pending values by compiling the graph behind them.

`realize(storages)` walks back from the storages' pending nodes to values already computed
(leaves; storage.py's table says which nodes those are, IR nodes never change). The program
key is the targets' node keys, which each node got once when it was built (compiler/ir/graph.py:
op, attributes, type and its inputs' keys, interned), plus one int per step of the walk saying
where it stopped and which leaf (numbered by first use) each stop reads: never buffer contents
or identities. The key is looked up in the one eager program table (LRU, MAX_PROGRAMS entries,
`program_cache_info()`); only on a miss does it build a Graph and run the compiler (whose
machine code is cached in memory and on disk, runtime/cache.py); either way it binds the leaf
buffers and makes one native call. Each realized storage's value becomes a fresh leaf node.

A storage that already has a buffer is updated in place: its old value becomes a param of
the program and the new one an assign, so the schedule decides how to overwrite it safely.
If some other pending value or a saved autograd value still needs the old contents, they are
copied aside first (copy-on-write), so laziness never changes what a program computes.
"""
from __future__ import annotations

import contextvars
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from . import compiler, runtime, trace_hooks
from . import placement as _placement
from . import storage as _storage_module
from .compiler.ir import Graph, Node
from .internal_errors import compile_reporting
from .programs import dump
from .storage import _VALUES, buffer_of, computed, set_buffer, set_computed

LOCK = threading.RLock()        # held while realizing or replaying a compiled function
_LATER: contextvars.ContextVar = contextvars.ContextVar("fusegrad_realize_later", default=None)
MAX_PENDING_DEPTH = 4096        # a chain of pending ops longer than this realizes as it is built

STATS = {"hits": 0, "misses": 0, "runs": 0, "evictions": 0}
DUMPING = [bool(os.environ.get("FUSEGRAD_DUMP") or os.environ.get("FUSEGRAD_DUMP_DIR"))]
MAX_PROGRAMS = 1024           # eager programs kept (least recently used dropped first)
_PROGRAMS: OrderedDict = OrderedDict()
register_buffer = _storage_module._register_buffer
buffer_owner = _storage_module.buffer_owner
_NO_ATTRS: dict = {}


def clear_cache() -> None:
    _PROGRAMS.clear()


def program_cache_info() -> dict:
    """Statistics of the eager program table: hits, misses, evictions, size, maxsize (and runs)."""
    return {"hits": STATS["hits"], "misses": STATS["misses"], "evictions": STATS["evictions"],
            "size": len(_PROGRAMS), "maxsize": MAX_PROGRAMS, "runs": STATS["runs"]}


def realize(storages) -> None:
    """Compute the pending values of `storages`, and those left to the next realization
    (`realize_with_next`). One thread realizes at a time (LOCK): a realization reads and
    rewrites storages that other threads' tensors may share."""
    with LOCK:
        later = _take_later()
        if not later:
            _realize(storages)
            return
        try:
            _realize([*storages, *(s for s, _ in later)])
        except BaseException:
            for s, (node, fn) in reversed(later):   # each gets back its value from before its updates
                s.node, s.grad_fn = node, fn
            raise


def realize_with_next(entries) -> None:
    """Leave storages pending until the next realization in this thread, which computes them
    with its own targets, in one program: backward() leaves its gradients (and loss) so, and
    the optimizer step that follows realizes forward, backward and update together. Each entry
    is (storage, (node, grad_fn) before the update); if that realization fails, the storages
    get those back, as a failed realization of their own would have left them."""
    later = _LATER.get()
    if later is None:
        later = []
        _LATER.set(later)
    later.extend((weakref.ref(s), before) for s, before in entries)


def realize_later_now() -> None:
    """Compute what was left to the next realization now (a trace is about to start: it must
    find that state computed, and its own updates must not join an eager program)."""
    if _LATER.get():
        realize([])


def _take_later() -> list:
    """The live storages left to this realization, with their values from before (outside traces)."""
    later = _LATER.get()
    if not later or trace_hooks.active():
        return []
    _LATER.set(None)
    return [(s, before) for ref, before in later if (s := ref()) is not None]


def _realize(storages) -> None:
    """realize()'s work, under LOCK: the targets' programs, one per device."""
    targets, seen = [], set()
    for s in storages:
        if id(s) in seen:
            continue
        seen.add(id(s))
        leaf = computed(s.node)
        if leaf is None:
            targets.append(s)
        elif buffer_of(leaf) is not s.buffer:
            _adopt(s, leaf)
    if not targets:
        return
    trace_hooks.realize_requested(targets)   # an error inside @compile
    for group in _placement.by_device(targets):     # one program per device
        _run(group)


def _walk(targets):
    """Key, leaves (first-use order: (leaf node, kind, buffer)), pending nodes (inputs first)
    and the code of every node seen, for the pending values of `targets`.

    The walk goes depth first from the targets and stops at computed values. Each step it
    takes gives one int code: a leaf's (-2i-1 read, -2i-2 overwritten, i its first-use number),
    a pending node seen before (its number, from 1), or 0 for a pending node it goes into.
    The targets' node keys (each fixes the structure behind it, as a tree) and these codes
    (where the walk stopped, which leaf each stop reads, which nodes are shared) fix the
    program up to the leaves' buffers, so they are the key, with no hashing of signatures."""
    overwritten = {id(s.buffer) for s in targets if s.buffer is not None}
    values = _VALUES
    index: dict[int, int] = {}
    codes: list[int] = []
    leaves: list = []
    pending: list = []
    numbered = 0
    stack = [(s.node, False) for s in reversed(targets)]
    while stack:
        n, expanded = stack.pop()
        if expanded:
            pending.append(n)
            continue
        c = index.get(id(n))
        if c is None:
            e = values.get(id(n))
            if e is not None and e[0]() is n:           # computed: a leaf of this program
                leaf = e[1] if e[1].__class__ is Node else n
                c = index.get(id(leaf))
                if c is None:
                    buf = buffer_of(leaf)
                    kind = "P" if id(buf) in overwritten else "I"
                    c = -2 * len(leaves) - (2 if kind == "P" else 1)
                    index[id(leaf)] = c
                    leaves.append((leaf, kind, buf))
                index[id(n)] = c
            else:
                numbered += 1
                index[id(n)] = numbered
                codes.append(0)
                stack.append((n, True))
                stack.extend([(x, False) for x in reversed(n.inputs)])
                continue
        codes.append(c)
    holder_pos = {id(buf): index[id(leaf)] for leaf, kind, buf in leaves if kind == "P"}
    roots = tuple(holder_pos.get(id(s.buffer), 0) if s.buffer is not None else None for s in targets)
    key = (tuple([s.node.key for s in targets]), tuple(codes), roots)
    return key, leaves, pending, index


def _build_graph(leaves, pending, targets, index) -> Graph:
    """The graph to compile: leaves become inputs (read) or params (overwritten in place)."""
    new: dict[int, Node] = {}
    inputs: list[Node] = []
    params: list[Node] = []
    param_of_buffer: dict = {}
    for n, kind, buf in leaves:
        if kind == "I":
            x = Node("input", (), {"name": f"a{len(inputs)}"}, n.shape, n.dtype)
            inputs.append(x)
        else:
            x = Node("param", (), {"name": f"p{len(params)}"}, n.shape, n.dtype)
            params.append(x)
            param_of_buffer[id(buf)] = x
        new[index[id(n)]] = x
    for n in pending:
        new[index[id(n)]] = Node(n.op, tuple([new[index[id(x)]] for x in n.inputs]), n.attrs, n.shape, n.dtype,
                                 n.loc)
    outputs, assigns = {}, []
    for i, s in enumerate(targets):
        value = new[index[id(s.node)]]
        if s.buffer is None:
            outputs[f"out{i}"] = value
            continue
        p = param_of_buffer.get(id(s.buffer))
        if p is None:   # overwritten without being read (fill_, copy_)
            p = Node("param", (), {"name": f"p{len(params)}"}, s.node.shape, s.node.dtype)
            params.append(p)
            param_of_buffer[id(s.buffer)] = p
        assigns.append((p, value))
    return Graph("realize", inputs, params, outputs, assigns)


def program_for(targets):
    """(executable, program, input buffers, param buffers) for realizing `targets`."""
    key, leaves, pending, index = _walk(targets)
    options = _placement.compile_options(targets)   # {} for the CPU
    if options:
        key = (options["target"], key)
    entry = _PROGRAMS.get(key)
    if entry is None:
        STATS["misses"] += 1
        program = compile_reporting(compiler.compile, _build_graph(leaves, pending, targets, index), **options)
        if DUMPING[0]:
            dump(program, "realize")
        entry = _PROGRAMS[key] = (runtime.load(program), program)
        while len(_PROGRAMS) > MAX_PROGRAMS:
            _PROGRAMS.popitem(last=False)
            STATS["evictions"] += 1
    else:
        STATS["hits"] += 1
        _PROGRAMS.move_to_end(key)
    inputs = [_placement.bindable(buf, entry[1].target) for n, kind, buf in leaves if kind == "I"]
    params = [buf for n, kind, buf in leaves if kind == "P"]
    bound = {id(b) for b in params}
    params += [s.buffer for s in targets if s.buffer is not None and id(s.buffer) not in bound]
    return entry[0], entry[1], inputs, params


def write_in_place(s, write: Callable[[np.ndarray], object]) -> None:
    """Write a new value straight into the memory of storage `s`, whose current value is in its
    buffer (no pending update), without a program: `write(buffer)` fills it (random fills,
    drawn by native code of their own). The new value gets a fresh leaf node; if a pending
    value or a saved autograd value still holds the old leaf, it keeps a copy of the old
    contents (copy-on-write, as a realization does)."""
    with LOCK:
        replaced = weakref.ref(s.node)
        leaf = Node("input", (), _NO_ATTRS, s.node.shape, s.node.dtype)
        set_buffer(leaf, s.buffer)
        s.node, s.holder, s.program = leaf, weakref.ref(leaf), None
        old = replaced()
        if old is not None and buffer_of(old) is s.buffer:
            set_buffer(old, s.buffer.copy())
        del old
        write(s.buffer)
        s.version += 1


def _adopt(s, leaf) -> None:
    """`s` holds a value that was computed (or is held) by another storage with the same node (a
    custom Function's output and its input, say): `s` takes the value into memory of its own,
    since two storages never share a buffer."""
    value = buffer_of(leaf)
    if s.buffer is None or s.readonly:
        s.buffer = value.copy()
        s.readonly = False
        register_buffer(s)
    else:
        _placement.copy_into(s.buffer, value)
    own = Node("input", (), _NO_ATTRS, leaf.shape, leaf.dtype)
    set_buffer(own, s.buffer)
    s.node, s.holder = own, weakref.ref(own)


def _run(targets) -> None:
    exe, program, inputs, params = program_for(targets)
    # Each storage's value becomes a fresh leaf now; the pending node it replaces is dropped,
    # so that whatever still holds an old value being overwritten is someone else: copy that
    # value aside. A program that can fail keeps the pending nodes to restore (and so copies
    # conservatively). A pending node someone else still holds is recorded as computed.
    fallible = bool(program.checks)
    history = [s.node for s in targets] if fallible else None
    old_nodes = [weakref.ref(s.node) for s in targets]
    leaves = []
    for s in targets:
        n = s.node
        leaf = Node("input", (), _NO_ATTRS, n.shape, n.dtype)
        leaves.append(leaf)
        s.node = leaf
    del n
    old_holders = [s.holder() if s.holder is not None else None for s in targets]
    copies = []
    for s, old in zip(targets, old_holders):
        if old is not None and old is not s.node and buffer_of(old) is s.buffer:
            copy = s.buffer.copy()
            set_buffer(old, copy)
            copies.append((s.buffer, copy))
    del old_holders
    try:
        outputs = exe(inputs, params)
    except Exception:
        for s, node in zip(targets, history or ()):
            s.node = node
        for buf, copy in copies:
            _placement.copy_into(buf, copy)   # never leave a half-updated value behind
        raise
    STATS["runs"] += 1
    taken = set()
    for i, (s, leaf, old) in enumerate(zip(targets, leaves, old_nodes)):
        if s.buffer is None:
            arr = outputs[f"out{i}"]
            if id(arr) in taken:          # two storages of one value must not share memory
                arr = arr.copy()
            taken.add(id(arr))
            s.buffer = arr
            register_buffer(s)
        set_buffer(leaf, s.buffer)
        old = old()
        if old is not None:
            set_computed(old, leaf)
        s.holder = weakref.ref(leaf)
        s.program = program
