"""`fusegrad.autograd.Function`: custom autograd functions with a Python backward, as PyTorch's.

    class Exp(fusegrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, grad):
            (y,) = ctx.saved_tensors
            return grad * y

    y = Exp.apply(x)

`apply` runs `forward` without recording history, then, when grad mode is on and an input
requires grad, gives each differentiable output a grad_fn: a `PythonBackward` record
(named `ExpBackward`) whose `next` are the inputs' grad_fns, like the primitives' records
(grad_fn.py). With several outputs each output's grad_fn is an `OutputSlot` that hands its
cotangent to the shared record, so backward gets one gradient per output (zeros for outputs
that got none, PyTorch's materialize_grads). The engine (engine.py) calls `run_backward`:
the user's `backward` runs on tensors (gradients made from the engine's IR nodes) and its
results go back as cotangents. The backward is ordinary Python on lazy tensors, so it fuses
with the rest, and under `@fusegrad.compile` it is traced like any other code.

The grad_fn records of the primitives are `fusegrad.grad_fn.Function` (PyTorch's
`torch.autograd.graph.Node`); this module's `Function` is the base class users subclass.
"""
from __future__ import annotations

from typing import Any

from .. import ops
from ..grad_fn import AccumulateGrad, GradRecord
from ..grad_mode import is_grad_enabled, set_grad_enabled
from ..prims import cast, const, reshape_value
from ..source import user_loc
from ..tensor_base import TensorBase

FREED = ("Trying to backward through the graph a second time (or directly access saved tensors after they have "
         "already been freed). Saved intermediate values of the graph are freed when you call .backward() or "
         "autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time or "
         "if you need to access saved tensors after calling backward.")


class FunctionCtx:
    """The `ctx` of a custom Function: what forward leaves for backward."""

    def __init__(self) -> None:
        self._saved: tuple = ()
        self._freed = False
        self._non_differentiable: set[int] = set()
        self._dirty: set[int] = set()
        self.needs_input_grad: tuple[bool, ...] = ()
        self.materialize_grads = True

    def save_for_backward(self, *tensors: Any) -> None:
        for t in tensors:
            if t is not None and not isinstance(t, TensorBase):
                raise TypeError("save_for_backward can only save variables, but argument "
                                f"{tensors.index(t)} is of type {type(t).__name__}")
        self._saved = tuple(tensors)

    @property
    def saved_tensors(self) -> tuple:
        if self._freed:
            raise RuntimeError(FREED)
        return self._saved

    def mark_non_differentiable(self, *tensors: Any) -> None:
        self._non_differentiable.update(id(t) for t in tensors)

    def mark_dirty(self, *tensors: Any) -> None:
        """`tensors` (inputs) were modified in place by forward and are returned: each returned
        input keeps its identity and takes the Function's grad_fn as its history (PyTorch's rebase)."""
        self._dirty.update(id(t) for t in tensors)

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = bool(value)


class PythonBackward(GradRecord):
    """The grad_fn record of a custom Function's outputs: runs the user's backward."""

    __slots__ = ("cls", "ctx", "inputs_meta", "outputs_meta", "like")
    cls: Any

    def __init__(self, cls: Any, ctx: FunctionCtx, next_fns: tuple, inputs_meta: tuple, outputs_meta: tuple,
                 like: Any) -> None:
        self._name = f"{cls.__name__}Backward"
        self.cls, self.ctx, self.next = cls, ctx, next_fns
        self.inputs_meta, self.outputs_meta = inputs_meta, outputs_meta
        self.like = like
        self.freed = False

    def release(self) -> None:
        self.freed = True
        self.ctx._freed = True

    def run_backward(self, grads: dict, create_graph: bool) -> tuple:
        """The cotangents of the inputs (tensors with create_graph, else IR nodes; None where
        none) from the cotangents of the outputs, `grads` (output index -> node or tensor)."""
        if self.freed:
            raise RuntimeError(FREED)
        grad_outputs: list[Any] = []
        for i, meta in enumerate(self.outputs_meta):
            g = grads.get(i)
            if g is None:
                if meta is None or not self.ctx.materialize_grads:
                    grad_outputs.append(None)
                    continue
                g = const(0, meta[1], meta[0], self.like._storage.device, like=self.like)
            elif not isinstance(g, TensorBase):
                g = self.like._result(g)
            grad_outputs.append(g)
        result = self.cls.backward(self.ctx, *grad_outputs)
        if not isinstance(result, tuple):
            result = (result,)
        n = len(self.next)
        if len(result) < n or any(r is not None for r in result[n:]):
            raise RuntimeError(f"function {self._name} returned an incorrect number of gradients (expected {n}, "
                               f"got {len(result)})")
        out: list[Any] = []
        for i, (nxt, g, meta) in enumerate(zip(self.next, result, self.inputs_meta)):
            if nxt is None or g is None:
                out.append(None)
                continue
            if not isinstance(g, TensorBase):
                raise TypeError(f"function {self._name} returned a gradient different than None at position "
                                f"{i + 1}, but the corresponding forward input was not a Variable")
            g = cast(_sum_to(g, meta[0], self._name, i), meta[1])
            out.append(g if create_graph else g._value()[0])
        return tuple(out)


def _sum_to(g: Any, shape: tuple, name: str, index: int) -> Any:
    """A gradient of a broadcast shape summed back to the input's shape (PyTorch's validate_outputs)."""
    gshape = tuple(g.shape)
    if gshape == tuple(shape):
        return g
    lead = len(gshape) - len(shape)
    ok = lead >= 0 and all(s == d or s == 1 for s, d in zip(shape, gshape[lead:]))
    if not ok:
        raise RuntimeError(f"Function {name} returned an invalid gradient at index {index} - got {list(gshape)} but "
                           f"expected shape compatible with {list(shape)}")
    dims = tuple(range(lead)) + tuple(lead + d for d, s in enumerate(shape) if s == 1 and gshape[lead + d] != 1)
    if dims:
        g = ops.sum(g, dims, keepdim=True)
    return reshape_value(g, tuple(shape))


class OutputSlot:
    """The grad_fn of output `index` of a custom Function with several outputs: it hands its
    cotangent to the shared PythonBackward record (its only `next`)."""

    __slots__ = ("node", "index", "next", "freed", "__weakref__")

    def __init__(self, node: PythonBackward, index: int) -> None:
        self.node, self.index, self.next, self.freed = node, index, (node,), False

    def name(self) -> str:
        return self.node.name()

    @property
    def next_functions(self) -> tuple:
        return ((self.node, self.index),)

    def release(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<{self.node.name()} object at {hex(id(self.node))}>"


class _FunctionMeta(type):
    pass


class Function(metaclass=_FunctionMeta):
    """Base class of custom autograd functions: define `forward(ctx, *args)` and
    `backward(ctx, *grads)` as staticmethods and call `apply(*args)`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Legacy autograd function with non-static forward method is deprecated. Please use "
                           "new-style autograd function with static forward method. (Example: "
                           "https://pytorch.org/docs/stable/autograd.html#torch.autograd.Function)")

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("You must implement the forward function for custom autograd.Function.")

    @staticmethod
    def backward(ctx: Any, *grad_outputs: Any) -> Any:
        raise NotImplementedError("You must implement either the backward or vjp method for your custom "
                                  "autograd.Function to use it with backward mode AD.")

    vjp = backward

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Any) -> Any:
        """Override to take `forward(*args)` without ctx and fill ctx here (PyTorch 2's style)."""
        raise NotImplementedError("setup_context is not overridden")

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        ctx = FunctionCtx()
        ctx.needs_input_grad = tuple(isinstance(a, TensorBase) and a.requires_grad for a in args)
        record = is_grad_enabled() and any(ctx.needs_input_grad)
        # the inputs' histories as they are now: forward may modify an input in place (mark_dirty)
        next_fns = tuple(_grad_fn(a) if need else None for a, need in zip(args, ctx.needs_input_grad))
        with set_grad_enabled(False):
            if cls.setup_context is not Function.setup_context:     # forward(*args) + setup_context
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
            else:
                out = cls.forward(ctx, *args, **kwargs)
        if not record:
            return out
        single = not isinstance(out, tuple)
        outs = (out,) if single else out
        differentiable = [isinstance(o, TensorBase) and o.dtype.is_floating_point
                          and id(o) not in ctx._non_differentiable for o in outs]
        if not any(differentiable):
            return out
        first = next(a for a in args if isinstance(a, TensorBase))
        _check_dirty(ctx, args, outs)
        node = PythonBackward(
            cls, ctx,
            next_fns,
            tuple((tuple(a.shape), a.dtype) if isinstance(a, TensorBase) else None for a in args),
            tuple((tuple(o.shape), o.dtype) if d else None for o, d in zip(outs, differentiable)),
            const(0, first.dtype, (), first._storage.device, like=first))
        wrapped = []
        for i, (o, d) in enumerate(zip(outs, differentiable)):
            if not d:
                wrapped.append(o)
                continue
            fn = node if single else OutputSlot(node, i)
            if id(o) in ctx._dirty:
                o._storage.grad_fn = fn           # the input itself, with the Function as its history
                wrapped.append(o)
            else:
                wrapped.append(o._result(o._value()[0], fn))
        # a saved output is the output with its history (as PyTorch unpacks it), so a backward
        # that uses it differentiates again with create_graph
        swap = {id(o): w for o, w in zip(outs, wrapped) if w is not o}
        ctx._saved = tuple(swap.get(id(t), t) for t in ctx._saved)
        return wrapped[0] if single else tuple(wrapped)


def _grad_fn(t: TensorBase) -> Any:
    return t._value()[1]


def _check_dirty(ctx: FunctionCtx, args: tuple, outs: tuple) -> None:
    """PyTorch's rules for inputs marked dirty: each is returned, and none is a leaf that
    requires grad (or, here, a view: its history would have to be rebased through its base)."""
    if not ctx._dirty:
        return
    inputs = {id(a): a for a in args if isinstance(a, TensorBase)}
    at = f" (at {user_loc()})"
    returned = {id(o) for o in outs}
    for key in ctx._dirty:
        t = inputs.get(key)
        if t is None:
            continue                               # a tensor that is no input: nothing to rebase
        if key not in returned:
            raise RuntimeError("Some elements marked as dirty during the forward method were not returned as "
                               "output. The inputs that are modified inplace must all be outputs of the Function." + at)
        if t._base is None and t.requires_grad and t.grad_fn is None:
            raise RuntimeError("a leaf Variable that requires grad has been used in an in-place operation." + at)
        if t._base is not None:
            raise NotImplementedError("fusegrad: a custom Function that marks a view dirty is not supported" + at)


class once_differentiable:
    """Decorator accepted for compatibility (a backward here is always differentiable)."""

    def __new__(cls, fn: Any) -> Any:
        return fn


__all__ = ["AccumulateGrad", "Function", "FunctionCtx", "once_differentiable"]
