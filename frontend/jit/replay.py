"""Replaying a compiled function: one traced signature (`Variant`) and its native call.

A Variant is what one trace left: the graph and its printed text, where each param's buffer
comes from, the guards on the Python state the trace baked in, the state it created or
updated, and how its results come back (`out_tree`). `load` adds the program and how to
bind it; `run` binds buffers and makes one call into the program.
"""
from __future__ import annotations

import sys
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import placement as _placement
from ..internal_errors import InternalError
from ..realize import realize, register_buffer
from ..storage import Storage, buffer_of, set_buffer
from ..tensor import Tensor, leaf_node
from .devices import HostScalars, device_tensor
from .guards import first_failing


@dataclass(eq=False)
class Variant:
    """A trace compiled for one signature: the program, how to bind it, what to re-apply."""

    graph: Any                    # the traced Graph
    graph_text: str               # its printed IR (the disk cache key's text)
    structure: tuple              # graph text and param sources: two traces agree if equal
    param_sources: list           # per param: (storage, None) for live state, (None, buffer) for a constant
    device: Any                   # the device it runs on (None: the CPU)
    input_devices: list           # per graph input: its argument's device
    out_tree: Any                 # the structure of the returned value (signature.flatten)
    out_leaves: list              # its leaves: tensors (replaced by outputs) and other values
    output_names: list            # program outputs of the returned tensors, in order
    guards: list                  # ValueGuards checked at every call
    state_guards: list            # guards checked when Python-level state changed (EPOCH)
    refreshers: list              # callables run before every replay
    names: dict                   # id(storage or tensor) -> its name in the user's code
    epoch: int                    # trace_hooks.EPOCH when the state guards last held
    escaped: list                 # (output name, storage) of state created by the trace
    created: list                 # names (in the user's code, or "a new tensor") of state the trace created
    grad_effects: list            # (tensor, grad) assignments re-applied after every replay
    arg_grads: list               # (input index, output name): gradients for tensor arguments' .grad
    assigned: list                # storages the program updates in place
    assigned_buffers: set = field(default_factory=set)   # ids of their buffers
    stable: bool = False          # replayable (not a first trace that created state)
    # set by load(): the program and how a replay binds it
    program: Any = None
    exe: Any = None
    bound_params: list = field(default_factory=list)     # buffer bound per param slot (bound once)
    binds: list = field(default_factory=list)            # (index, slot, storage, constant) per param
    host_scalars: HostScalars | None = None              # CPU scalars of a GPU variant
    wrap: Callable | None = None                         # a result buffer -> Tensor
    shared_outputs: list = field(default_factory=list)   # output names sharing one buffer slot

    def load(self, program, exe) -> None:
        """Take the compiled program and its loaded executable, and prepare how a replay
        binds it: params by slot; on a GPU, CPU scalars through HostScalars and results as
        CUDA tensors."""
        self.program, self.exe = program, exe
        self.bound_params = [None] * len(self.program.params)
        self.binds, host_params, host_inputs = [], [], []
        updated = {id(s) for s in self.assigned}
        for i, (slot, (s, const)) in enumerate(zip(self.program.params, self.param_sources)):
            if self.device is not None and s is not None and s.device is None:
                host_params.append((slot, s, id(s) in updated))      # a CPU scalar: mirrored
            else:
                self.binds.append((i, slot, s, const if s is not None or self.device is None
                                 else _placement.bindable(const, "cuda")))
        if self.device is not None:
            host_inputs = [k for k, device in enumerate(self.input_devices) if device is None]
        self.host_scalars = HostScalars(host_params, host_inputs) if host_params or host_inputs else None
        self.wrap = Tensor._from_array if self.device is None else device_tensor
        of_slot: dict = {}
        for name, slot in self.program.outputs.items():
            of_slot.setdefault(slot, []).append(name)
        self.shared_outputs = [names for names in of_slot.values() if len(names) > 1]

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

    @property
    def created_state(self) -> bool:
        """The trace created state: trace once more before trusting it."""
        return bool(self.created)

    def created_names(self) -> str:
        """The state the trace created, in words: names in the user's code where known."""
        named = self.created
        return ", ".join(named[:6]) + (f" and {len(named) - 6} more" if len(named) > 6 else "") or "new tensors"

    def adopt_guards(self, other: "Variant") -> None:
        """A retrace gave this variant's graph again: keep its program, take the new guards."""
        self.guards, self.state_guards, self.refreshers = other.guards, other.state_guards, other.refreshers
        self.names, self.epoch, self.stable = other.names, other.epoch, True

    def run(self, inputs: list) -> list:
        exe = self.exe
        self.bind_params()
        host = self.host_scalars         # None on the CPU
        if host is not None:
            inputs = host.before(exe, inputs)
        self.bind_inputs(inputs)
        given = {name: s.buffer for name, s in self.escaped if s.buffer is not None} if self.escaped else None
        result = exe.bind_outputs(given)
        exe.call()
        if host is not None:
            host.after()
        if self.shared_outputs:
            _unshare(result, self.shared_outputs, given)
        self.settle(result)
        return [result[name] for name in self.output_names] + [result[name] for _, name in self.arg_grads]

    def bind_params(self) -> None:
        """Bind the buffers of the captured state (realizing what was updated eagerly since)."""
        exe, bound = self.exe, self.bound_params
        for i, slot, s, const in self.binds:
            if s is not None:
                holder = s.holder        # the node whose value is in s.buffer: current, or
                if (holder is None or holder() is not s.node) and buffer_of(s.node) is not s.buffer:
                    realize([s])         # updated eagerly since the last call
                a = s.buffer
            else:
                a = const
            if bound[i] is not a:        # params keep their buffers: bind once, check identity
                exe.bind(slot, a)
                bound[i] = a

    def bind_inputs(self, inputs: list) -> None:
        """Bind the argument buffers, after giving whoever else holds the old value of state
        the program updates in place a copy of it (an argument that is such state, a copy)."""
        exe = self.exe
        if len(inputs) != len(self.program.inputs):
            raise InternalError(f"a compiled call bound {len(inputs)} inputs to a program of "
                                f"{len(self.program.inputs)}")
        for s in self.assigned:
            _copy_old_value_for_others(s)
        assigned = self.assigned_buffers
        for slot, a in zip(self.program.inputs, inputs):
            exe.bind(slot, a.copy() if assigned and id(a) in assigned else a)

    def settle(self, result: dict) -> None:
        """After the call: state the trace created holds its buffer; `.grad`s are re-applied."""
        for name, s in self.escaped:
            if s.buffer is None:
                s.buffer = result[name]
                _settle(s)
        for tensor, grad in self.grad_effects:
            tensor._grad = grad


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
    node = leaf_node(s.buffer, s.node.dtype)
    s.node, s.grad_fn, s.holder = node, None, weakref.ref(node)
    register_buffer(s)


def restore_old_leaf(s: Storage) -> None:
    holder = s.holder() if s.holder is not None else None
    if holder is not None and buffer_of(holder) is s.buffer:
        s.node, s.grad_fn = holder, None
    else:
        _settle(s)
