"""Whether ops record autograd history: `no_grad`, `enable_grad`, `set_grad_enabled`.

The mode lives in a `contextvars.ContextVar`: each thread (and each asyncio task) has its
own, so `no_grad` in one thread never switches autograd off in another.
"""
from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

_ENABLED: contextvars.ContextVar = contextvars.ContextVar("fusegrad_grad_enabled", default=True)
is_grad_enabled = _ENABLED.get

_G = TypeVar("_G", bound="set_grad_enabled")
_F = TypeVar("_F", bound=Callable[..., Any])


class set_grad_enabled:
    """Context manager and decorator setting grad mode, restoring the previous mode on exit."""

    def __init__(self, mode: bool = True) -> None:
        self.mode = bool(mode)
        self._tokens: list = []

    def __enter__(self: _G) -> _G:
        self._tokens.append(_ENABLED.set(self.mode))
        return self

    def __exit__(self, *exc: object) -> None:
        _ENABLED.reset(self._tokens.pop())

    def __call__(self, fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.__class__(self.mode) if type(self) is set_grad_enabled else self.__class__():
                return fn(*args, **kwargs)
        return cast(_F, wrapper)


class no_grad(set_grad_enabled):
    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    def __init__(self) -> None:
        super().__init__(True)
