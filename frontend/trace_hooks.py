"""Hooks through which tracing (jit.py) observes eager-looking tensor code.

Outside a trace these do nothing. While `@fusegrad.compile` traces a function, the tracer
installs handlers: reading a value is an error that names the user's line, and `.grad`
assignments or storage rebinding of captured tensors are recorded to replay after each call.
"""
from __future__ import annotations

HANDLERS: list = []


def value_read(tensor) -> None:
    if HANDLERS:
        HANDLERS[-1].value_read(tensor)


def grad_set(tensor, value) -> None:
    if HANDLERS:
        HANDLERS[-1].grad_set(tensor, value)


def rebound(tensor) -> None:
    if HANDLERS:
        HANDLERS[-1].rebound(tensor)
