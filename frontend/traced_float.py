"""A Python float argument of a compiled function, traced as a value the program reads.

A compiled function keys its calls by the values of its non-tensor arguments, so a float
that changes from call to call (a learning rate, a temperature, a loss weight) would trace
and compile once per value. After a second value of one float argument, the function traces
it as a `TracedFloat` instead (jit/function.py): a float64 0-d program input standing in for
the number. It acts as a Python float does as an operand of tensor ops (PyTorch's wrapped
number: `x * lr` keeps x's dtype, an integer tensor times it gives the default float dtype),
and arithmetic on it with numbers or other traced floats (`lr * 0.5`, `-lr`, `1 - beta`)
stays traced, in float64 as Python computes.

Anything that needs its value while tracing (`float(lr)`, `if lr > 0:`, `round(lr)`, an
f-string, an op parameter that takes only a plain number) raises `FloatValueRead`; the
function then traces that argument by value again, as before (jit/function.py).
"""
from __future__ import annotations

import operator
from typing import Any, Callable


class FloatValueRead(RuntimeError):
    """A trace needed the value of a float argument traced as a runtime value."""


class TracedFloat:
    """Float argument `name` of a compiled function while it is traced: `tensor` holds it
    (a float64 0-d tensor, computed from the program input)."""

    __slots__ = ("tensor", "name")

    def __init__(self, tensor: Any, name: str) -> None:
        self.tensor = tensor
        self.name = name

    def _combine(self, other: object, op: Callable[[Any, Any], Any]) -> Any:
        if isinstance(other, TracedFloat):
            other = other.tensor
        elif not isinstance(other, (int, float)):
            return NotImplemented           # a tensor: its own (reflected) operator takes this as a number
        return TracedFloat(op(self.tensor, other), self.name)

    def __add__(self, other: object) -> Any:
        return self._combine(other, operator.add)

    def __radd__(self, other: object) -> Any:
        return self._combine(other, lambda t, x: x + t)

    def __sub__(self, other: object) -> Any:
        return self._combine(other, operator.sub)

    def __rsub__(self, other: object) -> Any:
        return self._combine(other, lambda t, x: x - t)

    def __mul__(self, other: object) -> Any:
        return self._combine(other, operator.mul)

    def __rmul__(self, other: object) -> Any:
        return self._combine(other, lambda t, x: x * t)

    def __truediv__(self, other: object) -> Any:
        return self._combine(other, operator.truediv)

    def __rtruediv__(self, other: object) -> Any:
        return self._combine(other, lambda t, x: x / t)

    def __pow__(self, other: object) -> Any:
        return self._combine(other, operator.pow)

    def __rpow__(self, other: object) -> Any:
        return self._combine(other, lambda t, x: x ** t)

    def __neg__(self) -> TracedFloat:
        return TracedFloat(-self.tensor, self.name)

    def __pos__(self) -> TracedFloat:
        return self

    def __abs__(self) -> TracedFloat:
        return TracedFloat(abs(self.tensor), self.name)

    def _value_read(self, *_: object) -> Any:
        raise FloatValueRead(
            f"the compiled function read the value of float argument {self.name!r} while tracing "
            f"(a comparison, float(), round(), formatting, or an op parameter that takes only a number); "
            f"it is traced by value instead, one program per value")

    __float__ = __int__ = __index__ = __bool__ = __round__ = __trunc__ = __floor__ = __ceil__ = _value_read
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __format__ = __floordiv__ = __rfloordiv__ = _value_read
    __mod__ = __rmod__ = __divmod__ = __rdivmod__ = _value_read
    __hash__ = None                     # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<float argument {self.name} (traced: its value is read at every call)>"
