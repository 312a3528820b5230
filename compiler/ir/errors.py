"""Errors raised while building or checking IR.

Every error names the op, the operand types and the user's source line (`file.py:12`), so a
mistake in a model points at the model's code, not at the compiler. The classes also derive
from the built-in exception PyTorch raises for the same mistake, so `except RuntimeError`
written for PyTorch still catches them.
"""
from __future__ import annotations


class IRError(Exception):
    """A graph that cannot be built or compiled."""

    def __init__(self, op: str, message: str, loc: str | None = None):
        self.op, self.detail, self.loc = op, message, loc
        where = f" (at {loc})" if loc else ""
        super().__init__(f"{op}: {message}{where}")


class ShapeError(IRError, RuntimeError):
    """Incompatible shapes: broadcasting, reshape sizes, matmul dimensions."""


class DTypeError(IRError, TypeError):
    """An operand dtype the op does not accept."""


class AxisError(IRError, IndexError):
    """A dimension index out of range."""


def fmt_type(shape, dtype) -> str:
    """`f32[4,6]` — the IR spelling of a value's type, used in messages and dumps."""
    return f"{dtype.short}[{','.join(str(d) for d in shape)}]"
