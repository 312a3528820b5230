"""Whether ops record autograd history: `no_grad`, `enable_grad`, `set_grad_enabled`."""
from __future__ import annotations

import functools

_ENABLED = [True]


def is_grad_enabled() -> bool:
    return _ENABLED[-1]


class set_grad_enabled:
    """Context manager and decorator setting grad mode, restoring the previous mode on exit."""

    def __init__(self, mode: bool = True):
        self.mode = bool(mode)

    def __enter__(self):
        _ENABLED.append(self.mode)
        return self

    def __exit__(self, *exc):
        _ENABLED.pop()
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__(self.mode) if type(self) is set_grad_enabled else self.__class__():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(set_grad_enabled):
    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    def __init__(self):
        super().__init__(True)
