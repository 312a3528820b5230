"""`@fusegrad.compile`: trace a whole function once per signature, replay it as one native call.

Tracing runs the Python function on lazy tensors whose argument nodes are graph inputs, while
a Tracer listens to trace_hooks. The graph is then read off what the call left behind:
- outputs: the returned tensors, and "escaped" state: storages created during the call that
  are still referenced afterwards (new `.grad` tensors, optimizer state made by a first step);
- assigns: storages that existed before the call and were updated in place (parameters,
  optimizer moments, step counters, the random generator), and escaped state that started
  from a computed value (zeros) and was then updated;
- leaves: the argument inputs, and computed values the function read (captured state such as
  parameters, or constants), bound to their storages' buffers at every call.
The first run computes everything; afterwards each storage holds its new value as a buffer
again, and `.grad` assignments made during the trace are re-applied after every replay.

A replay checks the signature (tensor shapes, dtypes, devices, requires_grad; values of the
other arguments), binds buffers and makes one call into the compiled program. Python side
effects other than tensor state happen only while tracing, as in JAX. A trace that created
state is traced once more on the next call: a first optimizer step builds state that later
steps update, and the program is kept only once two traces agree.

A function runs on the device of its tensors, as its ops do eagerly: trace inputs carry
their arguments' devices, and a trace of CUDA tensors compiles for target "cuda" (one CUDA
program, a sequence of launches) whose replay binds device buffers and returns CUDA
tensors. Its arguments, captured state and results must all be on that one device, but
for CPU scalars (a learning rate, a step count), which HostScalars mirrors there.
"""
from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict
import inspect
import logging
import os
import re
import sys
import warnings
import weakref

import numpy as np

from . import compiler, runtime, trace_hooks
from . import placement as _placement
from .compiler.ir import Graph, Node, fmt_type, print_graph, topo_order
from .compiler.ir.dtypes import from_short
from .compiler.program import STAGES
from .autograd.grad_mode import is_grad_enabled, no_grad
from .dtypes import get_default_dtype
from .internal_errors import compile_reporting
from .guards import (ModuleGuard, TensorGuard, ValueGuard, first_failing, plain_capture_guards, roots_of,
                     state_names)
from .realize import LOCK, buffer_owner, realize, register_buffer
from .runtime.cache import PROGRAMS, VERSION
from .shape_ops import clone
from .source import user_loc
from .storage import Storage, buffer_of, computed, set_buffer
from .tensor import Tensor, leaf_node

log = logging.getLogger("fusegrad")

MAX_GUARD_VARIANTS = 8     # programs kept per signature for different Python states (train/eval)
MAX_SIGNATURES = 64        # signatures kept per compiled function (least recently used dropped)

RESTRUCTURE = ("return the value from the compiled function and read it outside, use fusegrad.where(...) "
               "instead of Python control flow on tensor values, or mark the argument static with "
               "@fusegrad.compile(static_argnames=[...])")


class TracingError(RuntimeError):
    """Something a traced function did that a compiled replay could not repeat."""


# ---------------------------------------------------------------- the tracer

class Tracer:
    """Listens to trace_hooks during one trace."""

    def __init__(self, name: str):
        self.name = name
        self.created: dict = {}          # id -> weakref, for storages created during the trace
        self.updated: dict = {}          # id -> (storage, node and grad_fn before the trace)
        self.grads: dict = {}            # id(tensor) -> (tensor, grad before the trace, grad now)
        self.inputs: set = set()         # ids of the argument storages
        self.readable: set = set()       # ids of storages whose values may be read (static args)
        self.guards: list = []           # ValueGuards checked at every replay (hyperparameters)
        self.state_guards: list = []     # ValueGuards checked when Python-level state changed
        self.used_tensors: dict = {}     # id -> captured tensors whose values the trace used
        self.used_modules: dict = {}     # id -> modules the trace called or took state from
        self.refreshers: list = []       # callables run before every replay

    def storage_created(self, s: Storage) -> None:
        self.created[id(s)] = weakref.ref(s)

    def was_created(self, s: Storage) -> bool:
        """Whether `s` was created during the trace (an id alone could be a dead storage's)."""
        ref = self.created.get(id(s))
        return ref is not None and ref() is s

    def storage_updated(self, s: Storage, old_node, old_fn) -> None:
        if not self.was_created(s) and id(s) not in self.inputs and id(s) not in self.updated:
            self.updated[id(s)] = (s, old_node, old_fn)

    def value_read(self, tensor) -> None:
        if tensor is not None and id(tensor._storage) in self.readable:
            return
        raise TracingError(f"{self.name}: a compiled function cannot read a tensor's value while it is "
                           f"traced (at {user_loc()}): {RESTRUCTURE}.")

    def realize_requested(self, storages) -> None:
        if all(id(s) in self.readable for s in storages):
            return
        self.value_read(None)

    def grad_set(self, tensor, value) -> None:
        before = self.grads[id(tensor)][1] if id(tensor) in self.grads else tensor._grad
        self.grads[id(tensor)] = (tensor, before, value)

    def tensor_used(self, tensor) -> None:
        s = tensor._storage
        if id(tensor) not in self.used_tensors and id(s) not in self.inputs and not self.was_created(s):
            self.used_tensors[id(tensor)] = tensor

    def module_used(self, module) -> None:
        self.used_modules.setdefault(id(module), module)

    def guard(self, read, expected, what: str) -> None:
        self.guards.append(ValueGuard(read, expected, what))

    def state_guard(self, read, expected, what: str) -> None:
        self.state_guards.append(ValueGuard(read, expected, what))

    def all_state_guards(self) -> list:
        """Guards on the Python-level state the trace read, as it is now (after the trace)."""
        return ([TensorGuard(t) for t in self.used_tensors.values()]
                + [ModuleGuard(m) for m in self.used_modules.values()] + self.state_guards)


# ---------------------------------------------------------------- argument structures

def _flatten(obj, leaves: list):
    """The shape of a structure of lists/tuples/dicts; its other values go to `leaves`."""
    if isinstance(obj, (list, tuple)):
        return (type(obj), tuple(_flatten(x, leaves) for x in obj))
    if isinstance(obj, dict):
        return (dict, tuple((k, _flatten(v, leaves)) for k, v in obj.items()))
    leaves.append(obj)
    return None


def _unflatten(tree, leaves):
    if tree is None:
        return next(leaves)
    kind, items = tree
    if kind is dict:
        return {k: _unflatten(v, leaves) for k, v in items}
    values = [_unflatten(x, leaves) for x in items]
    return tuple(values) if kind is tuple else kind(values) if kind is list else kind(*values)


def _leaf_key(x, static: bool):
    if isinstance(x, Tensor):
        node, fn = x._value()
        if static:
            return ("static", node.shape, node.dtype.short, x._host_values().tobytes())
        device = x._storage.device
        return ("T", node.shape, node.dtype.short, "cpu" if device is None else str(device), fn is not None)
    try:
        hash(x)
    except TypeError:
        raise TypeError(f"compiled functions take tensors and hashable values; got an unhashable "
                        f"{type(x).__name__}") from None
    return ("V", type(x).__name__, x)


def _describe(key) -> str:
    if key[0] in ("T", "static"):
        return ("static " if key[0] == "static" else "") + fmt_type(key[1], from_short(key[2]))
    return repr(key[2])


def _reason(old, new) -> str:
    """Which argument (or global mode) changed between two signatures, in words."""
    (old_args, (old_grad, old_dtype)), (new_args, (new_grad, new_dtype)) = old, new
    if old_grad != new_grad:
        return f"grad mode changed {'enabled' if old_grad else 'disabled'} → {'enabled' if new_grad else 'disabled'}"
    if old_dtype != new_dtype:
        return f"the default dtype changed {old_dtype} → {new_dtype}"
    for (name, tree, keys), (name2, tree2, keys2) in zip(old_args, new_args):
        if tree != tree2 or len(keys) != len(keys2):
            return f"argument {name} changed structure"
        for a, b in zip(keys, keys2):
            if a != b:
                if a[0] == b[0] == "T" and a[1:3] == b[1:3] and a[3] != b[3]:
                    return f"argument {name} changed device {a[3]} → {b[3]}"
                what = "shape" if a[0] == b[0] == "T" and a[1] != b[1] else \
                    "dtype" if a[0] == b[0] == "T" and a[2] != b[2] else \
                    "requires_grad" if a[0] == b[0] == "T" and a[4] != b[4] else "value"
                return f"argument {name} changed {what} {_describe(a)} → {_describe(b)}"
    return "the arguments changed"


# ---------------------------------------------------------------- one traced signature

class Variant:
    """A trace compiled for one signature: the program, how to bind it, what to re-apply."""

    def replayable(self, epoch: int) -> bool:
        """Whether the Python state the trace baked in is as it was: the per-call guards
        always, the state guards only when Python-level state changed since last checked."""
        if self.epoch != epoch:
            if first_failing(self.state_guards) is not None:
                return False
            self.epoch = epoch
        return first_failing(self.guards) is None

    def what_changed(self) -> str | None:
        """In words, the first guard of this variant that no longer holds, or None."""
        g = first_failing(self.state_guards) or first_failing(self.guards)
        return g.describe(self.names) if g is not None else None

    def adopt_guards(self, other: "Variant") -> None:
        """A retrace gave this variant's graph again: keep its program, take the new guards."""
        self.guards, self.state_guards, self.refreshers = other.guards, other.state_guards, other.refreshers
        self.names, self.epoch, self.stable = other.names, other.epoch, True

    def run(self, inputs: list) -> list:
        exe, program = self.exe, self.program
        bound = self.bound_params
        for i, slot, s, const in self.binds:
            if s is not None:
                if buffer_of(s.node) is not s.buffer:
                    realize([s])         # updated eagerly since the last call
                a = s.buffer
            else:
                a = const
            if bound[i] is not a:        # params keep their buffers: bind once, check identity
                exe.bind(slot, a)
                bound[i] = a
        host = self.host_scalars         # None on the CPU
        if host is not None:
            inputs = host.before(exe, inputs)
        for s in self.assigned:
            _copy_old_value_for_others(s)
        assigned = self.assigned_buffers
        for slot, a in zip(program.inputs, inputs):
            exe.bind(slot, a.copy() if assigned and id(a) in assigned else a)
        given = {name: s.buffer for name, s in self.escaped if s.buffer is not None} if self.escaped else None
        result = exe.bind_outputs(given)
        exe.call()
        if host is not None:
            host.after()
        if self.shared_outputs:
            _unshare(result, self.shared_outputs, given)
        for name, s in self.escaped:
            if s.buffer is None:
                s.buffer = result[name]
                _settle(s)
        for tensor, grad in self.grad_effects:
            tensor._grad = grad
        return [result[name] for name in self.output_names]


def _unshare(result: dict, shared: list, given) -> None:
    """Outputs that are one value (names of one buffer slot) each get a buffer of their own
    holding it. The program wrote the buffer bound last (the last name's; a runtime may have
    handed it, or another, to several names); state given its buffer keeps it."""
    for names in shared:
        written = result[names[-1]]
        taken = {id(result[name]) for name in names if given and name in given}
        for name in names:
            a = result[name]
            if given and name in given:
                pass
            elif id(a) in taken:
                result[name] = written.copy()
                continue
            else:
                taken.add(id(a))
            if a is not written:
                _placement.copy_into(a, written)


def _copy_old_value_for_others(s: Storage) -> None:
    """Before the program overwrites s.buffer: whoever else still holds the old value (a
    pending eager tensor, a saved autograd value) keeps a copy of it (copy-on-write)."""
    node = s.node
    if sys.getrefcount(node) > 3:        # s.node, this local, getrefcount's argument
        set_buffer(node, buffer_of(node).copy())
        _settle(s)


def _settle(s: Storage) -> None:
    """The storage's value is its buffer: a fresh leaf node holds it."""
    node = leaf_node(s.buffer)
    s.node, s.grad_fn, s.holder = node, None, weakref.ref(node)
    register_buffer(s)


def _input_buffers(leaves, static: frozenset, names) -> list:
    out = []
    for name, arg_leaves in zip(names, leaves):
        if name in static:
            continue
        for x in arg_leaves:
            if isinstance(x, Tensor):
                s = x._storage
                if x._base is None and s.buffer is not None and buffer_of(s.node) is s.buffer:
                    out.append(s.buffer)                  # a computed base tensor: its buffer as it is
                    continue
                out.append(_input_buffer(x))         # a view or pending value, made contiguous
    return out


# ---------------------------------------------------------------- devices

def _device_tensor(buffer):
    """A new leaf tensor holding device buffer `buffer` (a compiled function's result)."""
    return Tensor._new(Storage(leaf_node(buffer), buffer=buffer, device=_placement.CUDA0))


def _input_buffer(t):
    """`t`'s value as one C-contiguous buffer on its device, to bind as a program input (a
    view is copied: on the host with numpy, on a GPU by a copy program there)."""
    t._realize()
    if t._storage.device is None:
        a = t._view_array()
        return a if a.flags.c_contiguous else np.ascontiguousarray(a)
    if t._base is None:
        return t._storage.buffer
    with no_grad():
        copy = clone(t.detach())
    copy._realize()
    return copy._storage.buffer


class HostScalars:
    """The CPU side of a compiled function on a GPU: CPU scalars (0-d) among its inputs and
    captured state, which its program reads from device memory.

    A captured CPU scalar (a learning rate, Adam's step count) gets a device buffer of its
    own, copied from the host value whenever that changed (it is compared before every
    call, as the host value may be written in place). One the function updates in place is
    copied back to the host after the call, so the CPU tensor holds its new value as it
    does eagerly (that copy waits for the program to finish). A CPU scalar argument is
    copied to the device at every call.
    """

    def __init__(self, params, inputs):
        self.params = params            # (slot, storage, updated in place)
        self.mirrors = [None] * len(params)   # (host bytes, device buffer) last copied
        self.inputs = inputs            # positions of CPU scalar arguments

    def before(self, exe, inputs: list) -> list:
        """Bind the device copies of the captured scalars; the arguments, on the device."""
        for k, (slot, s, _) in enumerate(self.params):
            if buffer_of(s.node) is not s.buffer:
                realize([s])             # updated eagerly since the last call
            value = s.buffer.tobytes()
            mirror = self.mirrors[k]
            if mirror is None or mirror[0] != value:
                buffer = _placement.runtime().DeviceBuffer.from_numpy(s.buffer)
                self.mirrors[k] = (value, buffer)
                exe.bind(slot, buffer)
        if self.inputs:
            inputs = list(inputs)
            for i in self.inputs:
                inputs[i] = _placement.bindable(inputs[i], "cuda")
        return inputs

    def after(self) -> None:
        """Copy the new values of the scalars the program updated back to the host."""
        for k, (slot, s, updated) in enumerate(self.params):
            if updated:
                buffer = self.mirrors[k][1]
                value = buffer.to_numpy()
                np.copyto(s.buffer, value)
                self.mirrors[k] = (s.buffer.tobytes(), buffer)


# ---------------------------------------------------------------- the compiled function

class CompiledFunction:
    def __init__(self, fn, dump=None, static_argnames=(), max_variants: int = 8):
        functools.update_wrapper(self, fn)
        self.fn = fn
        # the graph's name: a word, so its printed IR parses back (`<lambda>` becomes `lambda`)
        self.name = re.sub(r"\W+", "_", getattr(fn, "__name__", "")).strip("_") or "compiled"
        self.dump = dump
        self.static = frozenset(static_argnames)
        self.max_variants = max_variants
        self.signature = inspect.signature(fn)
        self.param_names = [p.name for p in self.signature.parameters.values()
                            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        self.variants: OrderedDict = OrderedDict()   # signature -> variants, most recent first (LRU)
        self.stats = {"traces": 0, "replays": 0, "compiles": 0}
        self._last_key = None
        self._warned: set = set()

    def _key(self, args, kwargs):
        if not kwargs and len(args) == len(self.param_names) and not self.static:
            items = zip(self.param_names, args)       # the common case, without inspect
        else:
            items = self.signature.bind(*args, **kwargs).arguments.items()
        keys, leaves, names = [], [], []
        for name, value in items:
            names.append(name)
            if isinstance(value, Tensor):
                keys.append((name, None, (_leaf_key(value, name in self.static),)))
                leaves.append([value])
                continue
            arg_leaves = []
            tree = _flatten(value, arg_leaves)
            keys.append((name, tree, tuple(_leaf_key(x, name in self.static) for x in arg_leaves)))
            leaves.append(arg_leaves)
        return (tuple(keys), (is_grad_enabled(), get_default_dtype())), leaves, names

    def __call__(self, *args, **kwargs):
        key, leaves, names = self._key(args, kwargs)
        with LOCK:          # one realization or replay at a time (threads: see realize.LOCK)
            v = self._replayable(key)
            if v is None:
                v = self._retrace(key, args, kwargs)
            else:
                self.stats["replays"] += 1
                for refresh in v.refreshers:
                    refresh()
            return self._outputs(v, v.run(_input_buffers(leaves, self.static, names)))

    def traced_variants(self) -> list:
        """Every variant kept, for every signature (least recently used signature first)."""
        return [v for variants in self.variants.values() for v in variants]

    def _replayable(self, key):
        """A variant traced for this signature whose guards hold now (moved to the front), or None."""
        variants = self.variants.get(key)
        if variants is None:
            return None
        epoch = trace_hooks.EPOCH[0]
        v = variants[0]
        if v.stable and v.epoch == epoch:       # the hot path: no Python state changed since
            for g in v.guards:
                if not g.holds():
                    break
            else:
                if len(self.variants) > 1:
                    self.variants.move_to_end(key)
                return v
        for i, v in enumerate(variants):
            if v.stable and v.replayable(epoch):
                if i:
                    variants.insert(0, variants.pop(i))
                self.variants.move_to_end(key)
                return v
        return None

    def _retrace(self, key, args, kwargs) -> Variant:
        """Trace for this signature and state; reuse a variant whose graph the trace repeats."""
        variants = self.variants.get(key, [])
        self._log_retrace(key, variants)
        new = self._trace(args, kwargs)
        same = next((v for v in variants if v.structure == new.structure), None)
        if same is not None:
            same.adopt_guards(new)                 # the same graph again: keep its program
            variants.remove(same)
            new = same
        else:
            self._compile(new)
            new.stable = not new.created_state
        variants.insert(0, new)
        del variants[MAX_GUARD_VARIANTS:]
        self.variants[key] = variants
        self.variants.move_to_end(key)
        if len(self.variants) > self.max_variants and key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"fusegrad.compile: {self.name} was traced for {len(self.variants)} signatures "
                          f"(limit {self.max_variants}); each new one traces and compiles again", stacklevel=3)
        while len(self.variants) > max(MAX_SIGNATURES, self.max_variants):
            self.variants.popitem(last=False)      # least recently used signature
        return new

    def _outputs(self, v: Variant, arrays: list):
        arrays, wrap = iter(arrays), v.wrap
        leaves = [self._output(next(arrays), v.program, wrap) if isinstance(x, Tensor) else x for x in v.out_leaves]
        return _unflatten(v.out_tree, iter(leaves))

    @staticmethod
    def _output(array, program, wrap) -> Tensor:
        t = wrap(array)                     # a tensor on the device of the buffer
        t._storage.program = program        # fusegrad.program_of(result) answers for it
        return t

    def _log_retrace(self, key, variants):
        if not variants and self._last_key is not None and key != self._last_key:
            log.info("retracing %s: %s", self.name, _reason(self._last_key, key))
        elif variants:
            changed = variants[0].what_changed()
            if changed is not None or variants[0].stable:     # else: confirming a first trace
                log.info("retracing %s: %s", self.name, changed or "the state it captured changed")
        self._last_key = key

    def lower(self, *args, **kwargs) -> "Lowered":
        """Trace and compile for these arguments without running; the compiler's stages as text.
        Tensor state the trace changed is put back (other Python side effects are not)."""
        v = self._trace(args, kwargs, undo=True)
        self._compile(v)
        return Lowered(v.program, v.graph)

    # ------------------------------------------------------------ tracing

    def _trace(self, args, kwargs, undo: bool = False) -> Variant:
        self.stats["traces"] += 1
        tracer = Tracer(self.name)
        bound = self.signature.bind(*args, **kwargs)
        inputs, devices, traced = [], [], {}
        for name, value in bound.arguments.items():
            arg_leaves = []
            tree = _flatten(value, arg_leaves)
            new_leaves = []
            for i, x in enumerate(arg_leaves):
                if isinstance(x, Tensor) and name in self.static:
                    tracer.readable.add(id(x._storage))
                    new_leaves.append(x)
                elif isinstance(x, Tensor):
                    node = x._value()[0]
                    label = name if len(arg_leaves) == 1 else f"{name}_{i}"
                    inp = Node("input", (), {"name": label}, node.shape, node.dtype)
                    device = x._storage.device          # None: the CPU
                    _placement.place(inp, device)
                    t = Tensor._new(Storage(inp, device=device))
                    t._requires_grad = x.requires_grad
                    tracer.inputs.add(id(t._storage))
                    inputs.append(inp)
                    devices.append(device)
                    new_leaves.append(t)
                else:
                    new_leaves.append(x)
            traced[name] = _unflatten(tree, iter(new_leaves))
        call = inspect.BoundArguments(self.signature, OrderedDict(traced))   # *args, **kwargs too
        owned = [x for x in bound.arguments.items() if not isinstance(x[1], Tensor)]
        state_before = _optimizer_states(self.fn, owned)
        try:
            with trace_hooks.tracing(tracer):
                out = self.fn(*call.args, **call.kwargs)
            v = self._read_trace(tracer, out, inputs, devices, owned)
        except BaseException:
            _undo(tracer, state_before)   # a failed trace leaves tensors, .grad and optimizer state as they were
            raise
        if undo:
            _undo(tracer)
        return v

    def _read_trace(self, tracer: Tracer, out, inputs, devices, arguments=()) -> Variant:
        v = Variant()
        v.input_devices = devices
        v.out_leaves = []
        v.out_tree = _flatten(out, v.out_leaves)
        returned = [x for x in v.out_leaves if isinstance(x, Tensor)]
        outputs = {f"out{i}": t._value()[0] for i, t in enumerate(returned)}
        v.output_names = list(outputs)
        returned_ids = {id(t._storage) for t in returned}
        alive = [s for s in (w() for w in tracer.created.values())
                 if s is not None and id(s) not in tracer.inputs and id(s) not in returned_ids]
        for s, old_node, _ in tracer.updated.values():
            if s.buffer is None:
                _compute_old_value(s, old_node)
        assigns = [(s, s.node) for s, _, _ in tracer.updated.values()]
        assigns += [(s, s.node) for s in alive if s.buffer is not None and buffer_of(s.node) is not s.buffer]
        escaped = [s for s in alive if s.buffer is None]
        for i, s in enumerate(escaped):
            outputs[f"state{i}"] = s.node
        names = state_names(self.fn, Tensor, arguments)
        graph, v.param_sources = _graph_of(self.name, inputs, outputs, assigns, names)
        v.device = self._device(graph, devices, v.param_sources, returned, escaped, [s for s, _ in assigns], names)
        v.graph = graph
        v.graph_text = print_graph(graph)
        v.structure = (v.graph_text, tuple(id(s) if s is not None else _const_key(c) for s, c in v.param_sources))
        v.guards, v.refreshers = tracer.guards + plain_capture_guards(self.fn), tracer.refreshers
        v.state_guards, v.names = tracer.all_state_guards(), names
        v.epoch = trace_hooks.EPOCH[0]
        v.escaped = [(f"state{i}", s) for i, s in enumerate(escaped)]
        v.created_state = bool(alive)
        v.grad_effects = [(t, now) for t, _, now in tracer.grads.values()]
        v.assigned = [s for s, _ in assigns]
        v.assigned_buffers = {id(s.buffer) for s in v.assigned}
        for s in v.assigned:         # until the program runs, each holds its old value again
            _restore_old_leaf(s)
        return v

    def _device(self, graph, devices, sources, returned, escaped, assigned, names):
        """The device the variant runs on (None: the CPU); a TracingError if the trace mixes
        devices. CPU scalars may join a CUDA variant as inputs or captured state."""
        updated = {id(s) for s in assigned}
        items = [(f"argument {x.attrs['name']}", device, x.shape == (), True)
                 for x, device in zip(graph.inputs, devices)]
        for p, (s, const) in zip(graph.params, sources):
            what = f"captured tensor {p.attrs['name']}"
            if s is not None and id(s) in updated:
                what += " (updated in place)"
            items.append((what, s.device if s is not None else _placement.device_of(const), p.shape == (), True))
        items += [(f"returned tensor {i}", t._storage.device, t.ndim == 0, False) for i, t in enumerate(returned)]
        items += [(f"new state {names.get(id(s), f'state{i}')}", s.device, s.node.shape == (), False)
                  for i, s in enumerate(escaped)]
        device, mixed = _placement.program_device(items)
        if mixed is not None:
            raise TracingError(
                f"{self.name} ({_defined_at(self.fn)}): a compiled function runs as one program on one device, but this trace mixes devices: "
                f"{mixed[0]} is on cpu while {mixed[1]} is on cuda:0. Its tensor arguments, the tensors it captures "
                f"(parameters, optimizer state) and its results must all be on one device (only CPU scalars may "
                f"join CUDA tensors); move them with .to(device)")
        return device

    def _compile(self, v: Variant) -> None:
        v.program = compile_cached(v.graph, v.graph_text, **_placement.target_options(v.device))
        self.stats["compiles"] += 1
        dump(v.program, f"{self.name}({', '.join(x.attrs['name'] + ': ' + fmt_type(x.shape, x.dtype) for x in v.graph.inputs)})",
             self.dump)
        v.exe = runtime.load(v.program)
        _prepare_binding(v)


def _prepare_binding(v: Variant) -> None:
    """How a replay binds the variant's program: params by slot; on a GPU, CPU scalars
    through HostScalars and results as CUDA tensors."""
    program = v.program
    v.bound_params = [None] * len(program.params)
    v.binds, host_params, host_inputs = [], [], []
    updated = {id(s) for s in v.assigned}
    for i, (slot, (s, const)) in enumerate(zip(program.params, v.param_sources)):
        if v.device is not None and s is not None and s.device is None:
            host_params.append((slot, s, id(s) in updated))      # a CPU scalar: mirrored
        else:
            v.binds.append((i, slot, s, const if s is not None or v.device is None
                            else _placement.bindable(const, "cuda")))
    if v.device is not None:
        host_inputs = [k for k, device in enumerate(v.input_devices) if device is None]
    v.host_scalars = HostScalars(host_params, host_inputs) if host_params or host_inputs else None
    v.wrap = Tensor._from_array if v.device is None else _device_tensor
    of_slot: dict = {}
    for name, slot in program.outputs.items():
        of_slot.setdefault(slot, []).append(name)
    v.shared_outputs = [names for names in of_slot.values() if len(names) > 1]


def _defined_at(fn) -> str:
    """`file.py:line` of a function's definition (errors found once the whole trace is read)."""
    code = getattr(fn, "__code__", None)
    return f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}" if code else "?"


def _const_key(a):
    """Constants the trace computed (a hyperparameter as a 0-d tensor) compare by value, so two
    traces that made equal constants agree; large ones by identity. `a` is a numpy array or a
    device buffer (read back)."""
    if int(np.prod(a.shape)) > 64:
        return id(a)
    h = _placement.host_array(a)
    return (h.dtype.str, h.shape, h.tobytes())


def _restore_old_leaf(s: Storage) -> None:
    holder = s.holder() if s.holder is not None else None
    if holder is not None and buffer_of(holder) is s.buffer:
        s.node, s.grad_fn = holder, None
    else:
        _settle(s)


def _compute_old_value(s: Storage, old_node) -> None:
    """A storage updated in the trace whose old value was never computed: compute it now,
    outside the trace, so the program can read it as a param and write the new value over it."""
    tmp = Storage(old_node, device=s.device)
    realize([tmp])
    s.buffer = tmp.buffer
    s.holder = weakref.ref(old_node)


def _optimizer_states(fn, arguments) -> list:
    """(optimizer, the parameters it had state for) for the optimizers `fn` can reach."""
    return [(o, set(o.state)) for o in roots_of(fn, arguments).values()
            if isinstance(getattr(o, "state", None), dict) and hasattr(o, "param_groups")]


def _undo(tracer: Tracer, optimizer_states=()) -> None:
    """Put back what the trace changed: storages' values, `.grad`, new optimizer state."""
    for s, old_node, old_fn in tracer.updated.values():
        s.node, s.grad_fn = old_node, old_fn
    for tensor, before, _ in tracer.grads.values():
        tensor._grad = before
    for optimizer, had_state in optimizer_states:
        for p in [p for p in optimizer.state if p not in had_state]:
            del optimizer.state[p]


# ---------------------------------------------------------------- graph construction

def _graph_of(name, inputs, outputs: dict, assigns: list, names: dict):
    """The Graph computing `outputs` and the storages' new values, and for each param where
    its buffer comes from: (storage, None) for live state, (None, array) for a constant."""
    new = {id(n): n for n in inputs}
    params, sources, taken = [], [], set()

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


# ---------------------------------------------------------------- compiling, caching, dumping

def compile_cached(graph: Graph, text: str | None = None, target: str = "cpu", arch: str | None = None):
    """The Program for a traced graph on `target` ("cpu", or "cuda" for GPU architecture
    `arch`): from the disk cache when this graph was compiled for it before (skipping the
    passes and codegen; the runtime's object cache skips LLVM), else compiled."""
    text = text if text is not None else print_graph(graph)
    where = target if arch is None else f"{target}:{arch}"
    key = hashlib.sha256(f"{where}\n{VERSION}\n{compiler.FINGERPRINT}\n{text}".encode()).hexdigest()
    program = PROGRAMS.get(key)
    if program is None:
        options = {"target": target} if arch is None else {"target": target, "arch": arch}
        program = compile_reporting(compiler.compile, graph, **options)
        PROGRAMS.put(key, program)
    return program


def _dump_stages(spec) -> list:
    if spec is None:
        spec = os.environ.get("FUSEGRAD_DUMP", "")
    if isinstance(spec, str):
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    spec = list(spec)
    return list(STAGES) if "all" in spec else [s for s in spec if s in STAGES]


def dump(program, title: str, spec=None) -> None:
    """Print the program's stages to stderr (FUSEGRAD_DUMP or dump=), and write them under
    FUSEGRAD_DUMP_DIR, one folder per program."""
    stages = _dump_stages(spec)
    for stage in stages:
        if stage in program.stages:
            print(f"===== fusegrad {title}: {stage} =====\n{program.stages[stage]}", file=sys.stderr)
    folder = os.environ.get("FUSEGRAD_DUMP_DIR")
    if folder:
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in title)[:80]
        path = os.path.join(folder, f"{safe}-{program.key[:12]}")
        os.makedirs(path, exist_ok=True)
        for stage, text in program.stages.items():
            with open(os.path.join(path, f"{stage}.txt"), "w") as f:
                f.write(text)


class Lowered:
    """The stages of a compiled program as text, and its graph for Graphviz."""

    def __init__(self, program, graph):
        self.program = program
        self.graph = graph

    def text(self, stage: str) -> str:
        if stage == "ptx" and "ptx" not in self.program.stages:
            return compiler.compile(self.graph, "cuda").text("ptx")
        return self.program.text(stage)

    def to_dot(self) -> str:
        return self.program.stages["dot"]


def compile(fn=None, *, dump=None, static_argnames=(), max_variants: int = 8):
    """Trace `fn` once per signature and replay it as one native call (decorator or function)."""
    if fn is None:
        return lambda f: CompiledFunction(f, dump, static_argnames, max_variants)
    return CompiledFunction(fn, dump, static_argnames, max_variants)
