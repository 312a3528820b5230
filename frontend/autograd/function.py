"""grad_fn records: what backward() walks, as PyTorch's autograd graph.

Each primitive applied while autograd records becomes a `Function` holding the primitive
(op, attributes), its input and output IR nodes, and the grad_fn of each input (`next`).
Composite ops (sigmoid, mse_loss, ...) are several primitives; the last one takes the
composite's PyTorch name, so `y.grad_fn` prints `<SigmoidBackward0 object at 0x...>`.
Leaves that require grad end in an `AccumulateGrad` holding the leaf tensor.
"""
from __future__ import annotations

from ..compiler.passes.autodiff import NEEDS_VALUES

_DEFAULT_NAMES = {
    "add": "AddBackward0", "sub": "SubBackward0", "mul": "MulBackward0", "div": "DivBackward0",
    "neg": "NegBackward0", "exp": "ExpBackward0", "log": "LogBackward0", "sqrt": "SqrtBackward0",
    "recip": "ReciprocalBackward0", "sin": "SinBackward0", "cos": "CosBackward0", "tanh": "TanhBackward0",
    "abs": "AbsBackward0", "floor": "FloorBackward0", "pow": "PowBackward1", "max": "MaximumBackward0",
    "min": "MinimumBackward0", "where": "WhereBackward0", "cast": "ToCopyBackward0", "sum": "SumBackward1",
    "reduce_max": "AmaxBackward0", "reduce_min": "AminBackward0", "prod": "ProdBackward1",
    "reshape": "ViewBackward0", "permute": "PermuteBackward0", "expand": "ExpandBackward0",
    "slice": "SliceBackward0", "pad": "ConstantPadNdBackward0", "concat": "CatBackward0",
    "gather": "GatherBackward0", "scatter_add": "ScatterAddBackward0", "matmul": "MmBackward0",
}


class Function:
    __slots__ = ("_name", "op", "attrs", "inputs", "output", "next", "freed", "__weakref__")

    def __init__(self, op: str, attrs: dict, inputs: tuple, output, next_fns: tuple):
        self._name = _DEFAULT_NAMES.get(op, f"{op.capitalize()}Backward0")
        self.op, self.attrs, self.inputs, self.output, self.next = op, attrs, inputs, output, next_fns
        self.freed = False

    def name(self) -> str:
        return self._name

    @property
    def next_functions(self) -> tuple:
        return tuple((f, 0) for f in self.next)

    @property
    def saves_values(self) -> bool:
        return self.op in NEEDS_VALUES

    def release(self) -> None:
        """Drop saved values after backward (retain_graph=False), as PyTorch frees buffers."""
        if self.saves_values:
            self.freed = True
            self.inputs = tuple(_Meta(x) for x in self.inputs)
            self.output = _Meta(self.output)

    def __repr__(self):
        return f"<{self._name} object at {hex(id(self))}>"


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
