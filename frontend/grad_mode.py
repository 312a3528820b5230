"""Whether ops record autograd history: `no_grad`, `enable_grad`, `set_grad_enabled`, and
`inference_mode` (no history, and the tensors made inside are inference tensors).

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
_INFERENCE: contextvars.ContextVar = contextvars.ContextVar("fusegrad_inference_mode", default=False)
is_inference_mode_enabled = _INFERENCE.get

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


_I = TypeVar("_I", bound="inference_mode")


class inference_mode:
    """PyTorch's inference_mode, a context manager and decorator: like no_grad, and every
    tensor made inside is an inference tensor (`is_inference()`; storage.py marks its
    storage), which autograd refuses to save for backward and which may not be updated in
    place outside inference mode. `inference_mode(False)` turns the mode off inside."""

    def __new__(cls, mode: Any = True) -> Any:
        if callable(mode):               # `@inference_mode` without parentheses, as PyTorch allows
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode: bool = True) -> None:
        self.mode = bool(mode)
        self._tokens: list = []

    def __enter__(self: _I) -> _I:
        grad = _ENABLED.set(False) if self.mode else None
        self._tokens.append((grad, _INFERENCE.set(self.mode)))
        return self

    def __exit__(self, *exc: object) -> None:
        grad, inference = self._tokens.pop()
        _INFERENCE.reset(inference)
        if grad is not None:
            _ENABLED.reset(grad)

    def __call__(self, fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with inference_mode(self.mode):
                return fn(*args, **kwargs)
        return cast(_F, wrapper)

    def clone(self) -> inference_mode:
        return inference_mode(self.mode)
