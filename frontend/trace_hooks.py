"""Hooks through which tracing (jit/) observes eager-looking tensor code.

Outside a trace these cost one context-variable read. While `@fusegrad.compile` traces a
function, its tracer is this thread's (this context's) current tracer and is told when a
storage is created or updated in place (to find captured state and its updates), when a
value is read or a realization requested (an error naming the user's line), when `.grad` is
assigned (an effect replayed per call), and which Python-level state the trace read: a
captured tensor (its storage, `requires_grad`), a module it called or took a parameter from
(its slots, `training` flag and plain attributes). Those become the variant's state guards
(guards.py).

Library code that reads Python values while traced says so: `guard` (a value baked into the
trace: a replay checks it every call and retraces when it changed) and `before_replay` (a
callable that refreshes captured state from Python before every replay, e.g. an optimizer's
learning rate). `state_changed` is called by whatever rebinds Python-level state (module
attributes, `train()`/`eval()`, `requires_grad_`, `.data =`, new param groups): it bumps
EPOCH, and a compiled function re-checks its state guards only when EPOCH moved.

The tracer lives in a `contextvars.ContextVar`, so a thread tracing a function never sees
another thread's ops, and eager code in one thread runs while another traces.
"""
from __future__ import annotations

import contextlib
import contextvars

_TRACER: contextvars.ContextVar = contextvars.ContextVar("fusegrad_tracer", default=None)
current = _TRACER.get
EPOCH = [0]     # bumped when captured Python-level state may have changed: compiled functions recheck


def active() -> bool:
    return _TRACER.get() is not None


@contextlib.contextmanager
def tracing(tracer):
    """Make `tracer` the current one for the duration of the block (this context only)."""
    token = _TRACER.set(tracer)
    try:
        yield tracer
    finally:
        _TRACER.reset(token)


def storage_created(storage) -> None:
    t = _TRACER.get()
    if t is not None:
        t.storage_created(storage)


def storage_updated(storage, old_node, old_fn) -> None:
    t = _TRACER.get()
    if t is not None:
        t.storage_updated(storage, old_node, old_fn)


def value_read(tensor) -> None:
    t = _TRACER.get()
    if t is not None:
        t.value_read(tensor)


def realize_requested(storages) -> None:
    t = _TRACER.get()
    if t is not None:
        t.realize_requested(storages)


def grad_set(tensor, value) -> None:
    t = _TRACER.get()
    if t is not None:
        t.grad_set(tensor, value)


def tensor_used(tensor) -> None:
    """A tensor's value entered the trace (its storage and requires_grad are baked in)."""
    t = _TRACER.get()
    if t is not None:
        t.tensor_used(tensor)


def module_used(module) -> None:
    """A module was called, or a parameter, buffer or submodule taken from it, while tracing."""
    t = _TRACER.get()
    if t is not None:
        t.module_used(module)


def state_changed() -> None:
    """Python-level state that a trace may have baked in was changed."""
    EPOCH[0] += 1


def guard(read, expected, what: str) -> None:
    """The trace baked in `expected`, the current value of `read()`: replay only while they agree."""
    t = _TRACER.get()
    if t is not None:
        t.guard(read, expected, what)


def state_guard(read, expected, what: str) -> None:
    """Like `guard`, but checked only when Python-level state changed (EPOCH moved)."""
    t = _TRACER.get()
    if t is not None:
        t.state_guard(read, expected, what)


def before_replay(refresh) -> None:
    """Call `refresh()` before every replay of the function being traced."""
    t = _TRACER.get()
    if t is not None and refresh not in t.refreshers:
        t.refreshers.append(refresh)


@contextlib.contextmanager
def outside_trace():
    """Run eagerly even while a trace is active (state set up outside the traced computation)."""
    token = _TRACER.set(None)
    try:
        yield
    finally:
        _TRACER.reset(token)
