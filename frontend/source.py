"""The user's source line: the first stack frame outside fusegrad, as `file.py:12`.

Every node the frontend builds records it, so IR dumps and error messages point at the
model's code rather than at fusegrad's. Errors raised inside layers and functionals get the
line appended where they leave fusegrad (`with_user_line`), and warnings are attributed to it
(`warn`).
"""
from __future__ import annotations

import functools
import os
import sys
import types
import warnings


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
    known = _INTERNAL
    while f is not None:
        internal = known.get(f.f_code)
        if internal is None:
            internal = _is_internal(f.f_code)
        if not internal:
            return f
        f = f.f_back
    return None


_NAMES: dict = {}      # code object -> the base name of its file


def user_loc() -> str | None:
    f = user_frame()
    if f is None:
        return None
    code = f.f_code
    name = _NAMES.get(code)
    if name is None:
        name = _NAMES[code] = os.path.basename(code.co_filename)
    return f"{name}:{f.f_lineno}"


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """`warnings.warn` attributed to the user's line (the first frame outside fusegrad), however
    deep inside a layer or functional the warning is raised."""
    level = 2                                   # stacklevel 2: the frame that called warn()
    f: types.FrameType | None = sys._getframe(1)
    while f is not None and _is_internal(f.f_code):
        f = f.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


def with_user_line(error: BaseException) -> None:
    """Append the user's source line to the message of `error`, raised inside fusegrad and about
    to reach the user's code, unless the message names a line already (`(at file.py:12)`)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None or not _is_internal(tb.tb_frame.f_code):
        return                      # raised by the user's own code (a custom forward)
    args = error.args
    if len(args) != 1 or not isinstance(args[0], str) or "(at " in args[0]:
        return
    loc = user_loc()
    if loc is not None:
        error.args = (f"{args[0]} (at {loc})",)


USER_ERRORS = (RuntimeError, ValueError, IndexError, TypeError)     # what bad input raises


def errors_at_user_line(fn):
    """`fn` (a public functional) with `with_user_line` applied to the errors it raises."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as e:
            with_user_line(e)
            raise
    return call
