"""Hooks through which tracing (jit.py) observes eager-looking tensor code.

Outside a trace these cost one list check. While `@fusegrad.compile` traces a function, the
tracer is on top of ACTIVE and is told when a storage is created or updated in place (to
find captured state and its updates), when a value is read or a realization requested (an
error naming the user's line), and when `.grad` is assigned (an effect replayed per call).
Library code that reads Python values while traced says so: `guard` (a value baked into the
trace: a replay checks it and retraces when it changed) and `before_replay` (a callable that
refreshes captured state from Python before every replay, e.g. an optimizer's learning rate).
"""
from __future__ import annotations

import contextlib

ACTIVE: list = []
EPOCH = [0]     # bumped when captured state may have been rebound: compiled functions recheck


def active() -> bool:
    return bool(ACTIVE)


def storage_created(storage) -> None:
    if ACTIVE:
        ACTIVE[-1].storage_created(storage)


def storage_updated(storage, old_node, old_fn) -> None:
    if ACTIVE:
        ACTIVE[-1].storage_updated(storage, old_node, old_fn)


def value_read(tensor) -> None:
    if ACTIVE:
        ACTIVE[-1].value_read(tensor)


def realize_requested(storages) -> None:
    if ACTIVE:
        ACTIVE[-1].realize_requested(storages)


def grad_set(tensor, value) -> None:
    if ACTIVE:
        ACTIVE[-1].grad_set(tensor, value)


def rebound(tensor=None) -> None:
    """A tensor's storage, or a module's parameter, was replaced by another object."""
    EPOCH[0] += 1
    if ACTIVE:
        ACTIVE[-1].rebound(tensor)


def guard(read, expected, what: str) -> None:
    """The trace baked in `expected`, the current value of `read()`: replay only while they agree."""
    if ACTIVE:
        ACTIVE[-1].guards.append((read, expected, what))


def before_replay(refresh) -> None:
    """Call `refresh()` before every replay of the function being traced."""
    if ACTIVE and refresh not in ACTIVE[-1].refreshers:
        ACTIVE[-1].refreshers.append(refresh)


@contextlib.contextmanager
def outside_trace():
    """Run eagerly even while a trace is active (state set up outside the traced computation)."""
    saved = ACTIVE[:]
    ACTIVE.clear()
    try:
        yield
    finally:
        ACTIVE[:] = saved
