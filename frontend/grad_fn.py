"""grad_fn records: what backward() walks, as PyTorch's autograd graph.

Each primitive applied while autograd records becomes a `Function` holding the primitive
(op, attributes), its input and output IR nodes, and the grad_fn of each input (`next`).
Composite ops (sigmoid, mse_loss, ...) are several primitives; the last one takes the
composite's PyTorch name, so `y.grad_fn` prints `<SigmoidBackward0 object at 0x...>`.
Leaves that require grad end in an `AccumulateGrad` holding the leaf tensor.
"""
from __future__ import annotations

from .compiler.ir.ops import OPS
from .compiler.ir.registry import NEEDS_VALUES  # declared with each VJP rule
from .compiler.passes import autodiff  # noqa: F401  (registers the VJP rules, filling NEEDS_VALUES)


class GradRecord:
    """What every grad_fn record shows users: PyTorch's name and the records it leads to."""
    __slots__ = ("_name", "next", "freed", "__weakref__")
    _name: str
    next: tuple           # the records of the inputs, in order
    freed: bool

    def name(self) -> str:
        return self._name

    @property
    def next_functions(self) -> tuple:
        return tuple((f, 0) for f in self.next)

    def __repr__(self):
        return f"<{self._name} object at {hex(id(self))}>"


class Function(GradRecord):
    """The record of one primitive: its VJP runs on the saved inputs and output."""
    __slots__ = ("op", "attrs", "inputs", "output")

    def __init__(self, op: str, attrs: dict, inputs: tuple, output, next_fns: tuple):
        self._name = OPS[op].grad_name     # declared with the primitive
        self.op, self.attrs, self.inputs, self.output, self.next = op, attrs, inputs, output, next_fns
        self.freed = False

    @property
    def saves_values(self) -> bool:
        return self.op in NEEDS_VALUES

    def release(self) -> None:
        """Drop saved values after backward (retain_graph=False), as PyTorch frees buffers."""
        if self.saves_values:
            self.freed = True
            self.inputs = tuple(_Meta(x) for x in self.inputs)
            self.output = _Meta(self.output)


class AccumulateGrad:
    __slots__ = ("variable", "__weakref__")

    def __init__(self, variable):
        self.variable = variable

    def name(self) -> str:
        return "AccumulateGrad"

    next_functions = ()

    def __repr__(self):
        return f"<AccumulateGrad object at {hex(id(self))}>"


class _Meta:
    """Shape and dtype of a freed value: enough for rules that need no values."""
    __slots__ = ("shape", "dtype")

    def __init__(self, x):
        self.shape, self.dtype = x.shape, x.dtype
