"""The tracer: what one trace of a compiled function did, heard through trace_hooks.

It records the storages created and updated during the trace, `.grad` assignments, the
captured tensors and modules the trace used (for the guards), values guarded at every
call, and which storages may be read (static arguments). `undo` puts tensor state back
after a trace that failed or was only lowered.
"""
from __future__ import annotations

import weakref

from ..source import user_loc
from ..storage import Storage
from .guards import ModuleGuard, TensorGuard, ValueGuard, roots_of

RESTRUCTURE = ("return the value from the compiled function and read it outside, use fusegrad.where(...) "
               "instead of Python control flow on tensor values, or mark the argument static with "
               "@fusegrad.compile(static_argnames=[...])")


class TracingError(RuntimeError):
    """Something a traced function did that a compiled replay could not repeat."""


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
        # a dead storage's id may come back: drop its entry first, so that the table keeps
        # creation order (the order of the state a trace creates is part of its graph's text,
        # and two traces of the same code must print alike whatever memory Python reuses)
        self.created.pop(id(s), None)
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


def optimizer_states(fn, arguments) -> list:
    """(optimizer, the parameters it had state for) for the optimizers `fn` can reach."""
    return [(o, set(o.state)) for o in roots_of(fn, arguments).values()
            if isinstance(getattr(o, "state", None), dict) and hasattr(o, "param_groups")]


def undo_trace(tracer: Tracer, optimizer_states=()) -> None:
    """Put back what the trace changed: storages' values, `.grad`, new optimizer state."""
    for s, old_node, old_fn in tracer.updated.values():
        s.node, s.grad_fn = old_node, old_fn
    for tensor, before, _ in tracer.grads.values():
        tensor._grad = before
    for optimizer, had_state in optimizer_states:
        for p in [p for p in optimizer.state if p not in had_state]:
            del optimizer.state[p]
