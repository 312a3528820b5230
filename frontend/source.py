"""The user's source line: the first stack frame outside fusegrad, as `file.py:12`.

Every node the frontend builds records it, so IR dumps and error messages point at the
model's code rather than at fusegrad's.
"""
from __future__ import annotations

import os
import sys


def _folder(module) -> str:
    assert module.__file__ is not None      # fusegrad's packages are folders of .py files
    return os.path.dirname(os.path.abspath(module.__file__)) + os.sep


_OWN = tuple(_folder(m) for m in (
    sys.modules[__package__],
    __import__(f"{__package__}.compiler", fromlist=["_"]),
    __import__(f"{__package__}.runtime", fromlist=["_"]),
))
_INTERNAL: dict = {}   # code object -> is it fusegrad's own?


def _is_internal(code) -> bool:
    hit = _INTERNAL.get(code)
    if hit is None:
        hit = _INTERNAL[code] = os.path.abspath(code.co_filename).startswith(_OWN) or \
            code.co_filename.startswith("<frozen")
    return hit


def user_frame():
    f = sys._getframe(1)
    while f is not None and _is_internal(f.f_code):
        f = f.f_back
    return f


def user_loc() -> str | None:
    f = user_frame()
    if f is None:
        return None
    return f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno}"
