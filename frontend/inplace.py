"""In-place ops, by functionalization.

`x.add_(1)` computes `x + 1` like any op, then makes it x's new value: the storage's node is
replaced (storage.py). Through a view, the new view value is written back into the base by
inverting the view chain with primitives: reshape and permute invert directly, a slice becomes
`where(mask, unslice(new), base)`. No special cases: the update is ordinary IR that fuses,
compiles and differentiates like the rest.

Storages that hold state (parameters, optimizer moments, `.grad`) or whose memory numpy
shares are realized at the update, so eager training loops keep bounded graphs; inside
`deferred()` the updates of a whole optimizer step are realized together, as one program.

Like the other op modules, this one imports only the layers below Tensor (see tensor_base.py);
`InplaceMethods`, at the end, holds Tensor's in-place methods and operators (`+=`, ...),
which tensor.py composes into Tensor.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np

from . import dtypes as D
from . import ops, philox, shape_ops, trace_hooks
from .compiler.ir import make
from .compiler.ir.dtypes import category
from .compiler.ir.ops import broadcast_shapes
from .compiler.passes.autodiff import unslice
from .grad_mode import is_grad_enabled, is_inference_mode_enabled
from .prims import is_np_scalar
from .realize import realize, realize_with_next, write_in_place
from .source import user_loc
from .storage import Storage, buffer_of
from .tensor_base import TensorBase, leaf_node

_T = TypeVar("_T", bound=TensorBase)

_BATCHES: contextvars.ContextVar = contextvars.ContextVar("fusegrad_deferred", default=None)


def _batches() -> list:
    """This thread's (context's) stack of open `deferred()` batches."""
    batches = _BATCHES.get()
    if batches is None:
        batches = []
        _BATCHES.set(batches)
    return batches


@contextlib.contextmanager
def deferred(with_next: bool = False) -> Iterator[None]:
    """Realize the state updates made inside as one program when the outermost block exits
    (`with_next`: with the next realization, realize.realize_with_next). If that program
    fails, every storage it would have updated keeps its old value."""
    batches = _batches()
    batches.append({})
    try:
        yield
    finally:
        pending = batches.pop()
        if batches:
            for key, entry in pending.items():
                batches[-1].setdefault(key, entry)
        elif pending and not _tracing():
            if with_next:
                realize_with_next(list(pending.values()))
            else:
                _realize_or_revert(list(pending.values()))


def _realize_or_revert(entries) -> None:
    """Realize the updated storages; on failure put back the values they had before."""
    try:
        realize([s for s, _ in entries])
    except Exception:
        for s, (node, fn) in entries:
            s.node, s.grad_fn = node, fn
        raise


def defer(storage, before=None) -> None:
    """Realize `storage` with the current batch (at once when there is none). `before` is its
    (node, grad_fn) before the update, restored if realizing fails."""
    before = before or (storage.node, storage.grad_fn)
    batches = _BATCHES.get()
    if batches:
        batches[-1].setdefault(id(storage), (storage, before))
    elif not _tracing():
        _realize_or_revert([(storage, before)])


def _tracing() -> bool:
    return trace_hooks.active()


def tensor_emitter(like: TensorBase | None) -> Callable[..., Any]:
    """autodiff-style `emit` over tensors (records autograd like any op). Constants, which
    have no tensor operand, are built through `like`."""
    def emit(op: str, *inputs: Any, **attrs: Any) -> Any:
        shape, dtype = attrs.pop("shape", None), attrs.pop("dtype", None)
        if op == "const":
            return ops.const(attrs["value"], dtype, shape, like=like)
        if op == "cast":
            return ops.cast(inputs[0], dtype)
        if shape is not None:
            attrs["shape"] = shape
        return ops.prim(op, list(inputs), attrs)
    return emit


def _write_back(base, chain, new):
    """The base's new value after its view (through `chain`) takes the value `new`."""
    values = [base]
    emit = tensor_emitter(base)
    for op, attrs, _ in chain[:-1]:
        values.append(ops.prim(op, [values[-1]], attrs))
    for (op, attrs, _), old in zip(reversed(chain), reversed(values)):
        if op == "reshape":
            new = ops.prim("reshape", [new], {"shape": tuple(old.shape)})
        elif op == "permute":
            perm = attrs["perm"]
            new = ops.prim("permute", [new], {"perm": tuple(sorted(range(len(perm)), key=perm.__getitem__))})
        elif op == "slice":
            args = (tuple(old.shape), attrs["starts"], attrs["stops"], attrs["steps"])
            placed = unslice(emit, new, *args)
            ones = ops.const(True, D.bool_, tuple(new.shape), like=base)
            new = ops.where(unslice(emit, ones, *args), placed, old)
        else:
            raise RuntimeError("unsupported operation: more than one element of the written-to tensor refers to a "
                               "single memory location. Please clone() the tensor before performing the operation.")
    return new


def assign(t, value, opname: str = "copy_"):
    """Make `value` (a tensor of t's shape) the current value of `t` and everything sharing it."""
    if t._storage.inference and not is_inference_mode_enabled():
        raise RuntimeError("Inplace update to inference tensor outside InferenceMode is not allowed.You can make a "
                           "clone to get a normal tensor before doing inplace update.See "
                           "https://github.com/pytorch/rfcs/pull/17 for more details.")
    if is_grad_enabled() and not t._detached:
        if t._base is None and t._requires_grad and t.is_leaf:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        if t._base is not None and t._track and t._base._requires_grad and t._base.is_leaf:
            raise RuntimeError("a view of a leaf Variable that requires grad is being used in an in-place "
                               "operation.")
    if tuple(value.shape) != tuple(t.shape):
        value = value.expand(tuple(t.shape))
    value = ops.cast(value, t.dtype)
    s = t._storage
    if t._base is not None:
        base = t._base if t._track and not t._detached else t._base._alias(detached=True)
        value = ops.named(_write_back(base, t._view, value), "CopySlices")
    node, fn = value._value()
    buf = buffer_of(node)
    if buf is not None and buf is not s.buffer:
        node = make("reshape", (node,), {"shape": tuple(node.shape)}, user_loc())   # copy into t's own memory
    before = (s.node, s.grad_fn)
    if fn is None and (t._detached or not is_grad_enabled()):
        fn = s.grad_fn      # an unrecorded write (no_grad, .data, .detach()) keeps the value's history, as PyTorch
    s.set_value(node, fn)
    if _BATCHES.get() or s.state or s.exported:
        defer(s, before)
    return t


def _fitted(t, value, opname: str):
    """`value` broadcast to t's shape, as PyTorch writes a result into `t`: it must broadcast
    with t's shape, and to exactly t's shape."""
    shape = tuple(t.shape)
    if tuple(value.shape) == shape:
        return value
    out = broadcast_shapes(opname, [t, value], user_loc())
    if out != shape:
        raise ops.op_error(RuntimeError, opname, f"output with shape {list(shape)} doesn't match the broadcast "
                           f"shape {list(out)}", [t, value])
    return value.expand(shape)


OVERLAP = ("unsupported operation: some elements of the input tensor and the written-to tensor refer to a single "
           "memory location. Please clone() the tensor before performing the operation.")


def _dense_span(t):
    """(first, end, layout) of the storage elements `t` covers when they form one dense block
    (PyTorch's "non-overlapping and dense"); None for an empty tensor or any other layout
    (expanded, strided, padded), where PyTorch does not check overlap either."""
    if t.numel() == 0:
        return None
    v = shape_ops._layout(t).single
    if v is None or v.mask is not None:
        return None
    layout = tuple((d, st) for d, st in zip(v.shape, v.strides) if d != 1)
    expected = 1
    for d, st in sorted(layout, key=lambda ds: ds[1]):
        if st != expected:
            return None
        expected *= d
    return v.offset, v.offset + t.numel(), (tuple(v.shape), layout)


def _partly_overlap(a, b) -> bool:
    """Do two dense spans share some elements without being the very same elements in the same order?"""
    if a[:2] == b[:2]:
        return a[2] != b[2]
    return a[0] < b[1] and b[0] < a[1]


def check_no_overlap(t, inputs, opname: str):
    """PyTorch refuses an in-place op whose input partly overlaps the written-to tensor
    (`x.add_(x.t())`): the result would depend on the order elements are written in."""
    for x in inputs:
        if not isinstance(x, TensorBase) or x._storage is not t._storage:
            continue
        out, span = _dense_span(t), _dense_span(x)
        if out is not None and span is not None and _partly_overlap(out, span):
            raise ops.op_error(RuntimeError, opname, OVERLAP, [t, x])


def _castable(t, result):
    """`result` to be written into `t`: PyTorch refuses a higher category than t's (float into int)."""
    if category(result.dtype) > category(t.dtype):
        raise RuntimeError(f"result type {ops._torch_name(result.dtype)} can't be cast to the desired output type "
                           f"{ops._torch_name(t.dtype)}")
    return result


def _inplace(fn, opname):
    def method(self, *args, **kwargs):
        check_no_overlap(self, args, opname)
        return assign(self, _fitted(self, _castable(self, fn(self, *args, **kwargs)), opname), opname)
    method.__name__ = opname
    return method


def _unary_inplace(fn, opname):
    def method(self):
        return assign(self, _castable(self, fn(self)), opname)
    method.__name__ = opname
    return method


def zero_(t):
    return assign(t, ops.const(0, t.dtype, tuple(t.shape), like=t), "zero_")


def fill_(t, value):
    if hasattr(value, "_value"):
        return assign(t, value, "fill_")
    return assign(t, ops.const(value, t.dtype, tuple(t.shape), like=t), "fill_")


def copy_(t, src, non_blocking=False):
    """PyTorch's copy_: `src` (a tensor or a number) broadcast to t's shape, converted to t's dtype."""
    src = _copy_source(t, src)
    check_no_overlap(t, [src], "copy_")
    return assign(t, ops.named(_copied(t, src), "CopyBackwards"), "copy_")


def _copy_source(t, src):
    if isinstance(src, TensorBase):
        return src
    if isinstance(src, (bool, int, float)) or is_np_scalar(src):
        return ops.const(src, t.dtype, like=t)
    raise TypeError(f"copy_(): argument 'other' (position 1) must be Tensor, not {type(src).__name__}")


def _copied(t, src):
    """The value copy_ writes: a new value (never `src` itself). As PyTorch's CopyBackwards, it
    passes a zero gradient to the value it overwrites when that one requires grad (a view's
    write-back does this for views)."""
    new = ops.cast(_fitted(t, src, "copy_"), t.dtype)
    if t._base is None and t.requires_grad and is_grad_enabled():
        return ops.where(ops.const(True, D.bool_, tuple(t.shape), like=t), new, t)
    return shape_ops.clone(new)


def clamp_(t, min=None, max=None):
    check_no_overlap(t, [min, max], "clamp_")
    return assign(t, _castable(t, ops.clamp(t, min, max)), "clamp_")


def _assign_values(t, values: np.ndarray, opname):
    """Assign host `values` (t's shape) to `t`, rounded to its dtype."""
    same = values.dtype == t.dtype.np and not t.dtype.is_storage_float and values.flags.c_contiguous
    array = values if same else np.ascontiguousarray(D.to_storage(values, t.dtype))
    return assign(t, t._wrap(Storage(leaf_node(array, t.dtype), buffer=array)), opname)


def _random_fill(t, draw: Callable[[Any, np.ndarray | None], np.ndarray], opname):
    """Fill `t` with `draw(host type, out)`'s numbers (philox.py): drawn straight into t's
    memory when `_fills_in_place(t)`, else drawn into a new array and assigned."""
    if _fills_in_place(t):
        write_in_place(t._storage, lambda buffer: draw(buffer.dtype, buffer.reshape(-1)))
        return t
    values = draw(np.float32 if t.dtype is D.float32 else np.float64, None)
    return _assign_values(t, values.reshape(tuple(t.shape)), opname)


def _fills_in_place(t) -> bool:
    """Whether t is a whole float32/float64 CPU storage whose value is in its memory, with no
    autograd history, outside traces: what a direct fill may overwrite (anything else goes
    through `assign`, which checks and records what PyTorch does). A deferred batch does not
    matter: the fill cannot fail half-way, and pending readers of the old value get a copy."""
    s = t._storage
    return (t._base is None and not t._view and s.grad_fn is None and isinstance(s.buffer, np.ndarray)
            and not s.readonly and s.device is None and s.holder is not None and s.holder() is s.node
            and t.dtype in (D.float32, D.float64) and s.buffer.size == t.numel()
            and not trace_hooks.active()
            and not (s.inference and not is_inference_mode_enabled())
            and not (is_grad_enabled() and not t._detached and t._requires_grad))


def random_(t, from_=None, to=None, *, generator=None):
    """Integers in [from, to) (or [0, from) given one bound), as PyTorch's random_."""
    if from_ is None:
        lo, hi = 0, (1 << 24) + 1 if t.dtype.is_floating_point else (1 << 63) - 1
    elif to is None:
        lo, hi = 0, from_
    else:
        lo, hi = from_, to
    u = philox.uniform(t.numel(), np.float64, generator)
    return _assign_values(t, (lo + np.floor(u * (hi - lo))).reshape(tuple(t.shape)), "random_")


def uniform_(t, a=0.0, b=1.0, *, generator=None):
    n = t.numel()
    return _random_fill(t, lambda dtype, out: philox.uniform_between(n, a, b, dtype, generator, out), "uniform_")


def normal_(t, mean=0.0, std=1.0, *, generator=None):
    n = t.numel()
    return _random_fill(t, lambda dtype, out: philox.normal(n, dtype, generator, mean, std, out), "normal_")


def masked_fill_(t, mask, value):
    return assign(t, ops.where(mask, value, t), "masked_fill_")


# in-place forms of ops (Tensor.add_, ...: InplaceMethods below)
add_, sub_, mul_ = _inplace(ops.add, "add_"), _inplace(ops.sub, "sub_"), _inplace(ops.mul, "mul_")
div_, pow_ = _inplace(ops.div, "div_"), _inplace(ops.pow, "pow_")
round_, fmod_ = _inplace(ops.round, "round_"), _inplace(ops.fmod, "fmod_")
remainder_ = _inplace(ops.remainder, "remainder_")
neg_, exp_, erf_ = _unary_inplace(ops.neg, "neg_"), _unary_inplace(ops.exp, "exp_"), _unary_inplace(ops.erf, "erf_")
log_, sqrt_ = _unary_inplace(ops.log, "log_"), _unary_inplace(ops.sqrt, "sqrt_")
abs_, relu_ = _unary_inplace(ops.abs, "abs_"), _unary_inplace(ops.relu, "relu_")
sigmoid_, tanh_ = _unary_inplace(ops.sigmoid, "sigmoid_"), _unary_inplace(ops.tanh, "tanh_")
floor_ = _unary_inplace(ops.floor, "floor_")


# ---------------------------------------------------------------- Tensor's methods

class InplaceMethods(TensorBase):
    """Tensor methods that update a tensor in place, and the in-place operators (`+=`, ...)."""

    __slots__ = ()

    def __iadd__(self: _T, other: Any) -> _T:
        return add_(self, other)

    def __isub__(self: _T, other: Any) -> _T:
        return sub_(self, other)

    def __imul__(self: _T, other: Any) -> _T:
        return mul_(self, other)

    def __itruediv__(self: _T, other: Any) -> _T:
        return div_(self, other)

    def __ipow__(self: _T, other: Any) -> _T:
        return pow_(self, other)

    def add_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return add_(self, *args, **kwargs)

    def sub_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return sub_(self, *args, **kwargs)

    def mul_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return mul_(self, *args, **kwargs)

    def div_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return div_(self, *args, **kwargs)

    def pow_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return pow_(self, *args, **kwargs)

    def clamp_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return clamp_(self, *args, **kwargs)

    def zero_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return zero_(self, *args, **kwargs)

    def fill_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return fill_(self, *args, **kwargs)

    def copy_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return copy_(self, *args, **kwargs)

    def random_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return random_(self, *args, **kwargs)

    def uniform_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return uniform_(self, *args, **kwargs)

    def normal_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return normal_(self, *args, **kwargs)

    def masked_fill_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return masked_fill_(self, *args, **kwargs)

    def neg_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return neg_(self, *args, **kwargs)

    def exp_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return exp_(self, *args, **kwargs)

    def erf_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return erf_(self, *args, **kwargs)

    def log_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return log_(self, *args, **kwargs)

    def sqrt_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return sqrt_(self, *args, **kwargs)

    def abs_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return abs_(self, *args, **kwargs)

    def relu_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return relu_(self, *args, **kwargs)

    def sigmoid_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return sigmoid_(self, *args, **kwargs)

    def tanh_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return tanh_(self, *args, **kwargs)

    def floor_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return floor_(self, *args, **kwargs)

    def round_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return round_(self, *args, **kwargs)

    def fmod_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return fmod_(self, *args, **kwargs)

    def remainder_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return remainder_(self, *args, **kwargs)

    def clip_(self: _T, *args: Any, **kwargs: Any) -> _T:
        return clamp_(self, *args, **kwargs)
