"""Realization: computing pending values by compiling the graph behind them.

`realize(storages)` walks back from the storages' pending nodes to nodes that already have
buffers (leaves), builds a structural key of what it saw (ops, attributes, types, and how
nodes connect, leaves numbered by first use: never buffer contents or identities), and
looks the key up in the program cache (LRU, MAX_PROGRAMS entries). Only on a miss does it build a Graph and run the
compiler; either way it binds the leaf buffers and makes one native call.

A storage that already has a buffer is updated in place: its old value becomes a param of
the program and the new one an assign, so the schedule decides how to overwrite it safely.
If some other pending value or a saved autograd value still needs the old contents, they are
copied aside first (copy-on-write), so laziness never changes what a program computes.
"""
from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict

from . import compiler, runtime, trace_hooks
from . import cuda as _cuda
from . import storage as _storage_module
from .compiler.ir import Graph, Node
from .internal_errors import compile_reporting

LOCK = threading.RLock()        # held while realizing or replaying a compiled function
MAX_PENDING_DEPTH = 4096        # a chain of pending ops longer than this realizes as it is built

STATS = {"hits": 0, "misses": 0, "runs": 0, "evictions": 0}
DUMPING = [bool(os.environ.get("FUSEGRAD_DUMP") or os.environ.get("FUSEGRAD_DUMP_DIR"))]
MAX_PROGRAMS = 1024           # eager programs kept (least recently used dropped first)
_PROGRAMS: OrderedDict = OrderedDict()
register_buffer = _storage_module._register_buffer
buffer_owner = _storage_module.buffer_owner


def clear_cache() -> None:
    _PROGRAMS.clear()


def realize(storages) -> None:
    """Compute the pending values of `storages`. One thread realizes at a time (LOCK): a
    realization reads and rewrites storages that other threads' tensors may share."""
    with LOCK:
        targets, seen = [], set()
        for s in storages:
            if s.node.buffer is None and id(s) not in seen:
                seen.add(id(s))
                targets.append(s)
        if not targets:
            return
        trace_hooks.realize_requested(targets)   # an error inside @compile
        for group in _cuda.by_device(targets):     # one program per device
            _run(group)


def _walk(targets):
    """Key, leaves (in first-use order, with kinds) and pending nodes behind `targets`."""
    overwritten = {id(s.buffer) for s in targets if s.buffer is not None}
    index: dict[int, int] = {}
    entries, leaves, pending = [], [], []
    stack = [(s.node, False) for s in reversed(targets)]
    while stack:
        n, expanded = stack.pop()
        if id(n) in index:
            continue
        if n.buffer is not None:
            kind = "P" if id(n.buffer) in overwritten else "I"
            index[id(n)] = len(entries)
            entries.append((kind, n.shape, n.dtype.short))
            leaves.append((n, kind))
        elif expanded:
            index[id(n)] = len(entries)
            entries.append((n.sig, tuple(index[id(x)] for x in n.inputs)))
            pending.append(n)
        else:
            stack.append((n, True))
            stack.extend((x, False) for x in reversed(n.inputs) if id(x) not in index)
    holder_pos = {id(n.buffer): index[id(n)] for n, kind in leaves if kind == "P"}
    roots = tuple((index[id(s.node)], holder_pos.get(id(s.buffer), -1) if s.buffer is not None else None)
                  for s in targets)
    return (tuple(entries), roots), leaves, pending


def _build_graph(leaves, pending, targets) -> Graph:
    """The graph to compile: leaves become inputs (read) or params (overwritten in place)."""
    new: dict[int, Node] = {}
    inputs, params, param_of_buffer = [], [], {}
    for n, kind in leaves:
        if kind == "I":
            x = Node("input", (), {"name": f"a{len(inputs)}"}, n.shape, n.dtype)
            inputs.append(x)
        else:
            x = Node("param", (), {"name": f"p{len(params)}"}, n.shape, n.dtype)
            params.append(x)
            param_of_buffer[id(n.buffer)] = x
        new[id(n)] = x
    for n in pending:
        new[id(n)] = Node(n.op, tuple(new[id(x)] for x in n.inputs), n.attrs, n.shape, n.dtype, n.loc)
    outputs, assigns = {}, []
    for i, s in enumerate(targets):
        value = new[id(s.node)]
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
    key, leaves, pending = _walk(targets)
    options = _cuda.compile_options(targets)   # {} for the CPU
    if options:
        key = (options["target"], key)
    entry = _PROGRAMS.get(key)
    if entry is None:
        STATS["misses"] += 1
        program = compile_reporting(compiler.compile, _build_graph(leaves, pending, targets), **options)
        if DUMPING[0]:
            from .jit import dump
            dump(program, "realize")
        entry = _PROGRAMS[key] = (runtime.load(program), program)
        while len(_PROGRAMS) > MAX_PROGRAMS:
            _PROGRAMS.popitem(last=False)
            STATS["evictions"] += 1
    else:
        STATS["hits"] += 1
        _PROGRAMS.move_to_end(key)
    inputs = [_cuda.bindable(n.buffer, entry[1].target) for n, kind in leaves if kind == "I"]
    params = [n.buffer for n, kind in leaves if kind == "P"]
    bound = {id(b) for b in params}
    params += [s.buffer for s in targets if s.buffer is not None and id(s.buffer) not in bound]
    return entry[0], entry[1], inputs, params


def _run(targets) -> None:
    exe, program, inputs, params = program_for(targets)
    # Detach the pending values from their history first, so that whatever still holds an
    # old value being overwritten is someone else: copy that value aside. A program that can
    # fail keeps the history to restore (and so copies conservatively).
    fallible = bool(program.checks)
    history = [s.node.inputs for s in targets] if fallible else None
    old_holders = [s.holder() if s.holder is not None else None for s in targets]
    for s in targets:
        s.node.inputs = ()
    copies = []
    for s, old in zip(targets, old_holders):
        if old is not None and old is not s.node and old.buffer is s.buffer:
            old.buffer = s.buffer.copy()
            copies.append((s.buffer, old.buffer))
    del old_holders
    try:
        outputs = exe(inputs, params)
    except Exception:
        for s, node_inputs in zip(targets, history or ()):
            s.node.inputs = node_inputs
        for buf, copy in copies:
            _cuda.copy_into(buf, copy)   # never leave a half-updated value behind
        raise
    STATS["runs"] += 1
    taken = set()
    for i, s in enumerate(targets):
        if s.buffer is None:
            arr = outputs[f"out{i}"]
            if id(arr) in taken:          # two storages of one value must not share memory
                arr = arr.copy()
            taken.add(id(arr))
            s.buffer = arr
            register_buffer(s)
        s.node.buffer = s.buffer
        s.holder = weakref.ref(s.node)
        s.program = program
