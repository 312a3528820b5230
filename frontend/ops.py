"""The op layer: PyTorch-semantics math on lazy tensors, built from IR primitives.

`prim` (prims.py) applies one primitive: it asks the IR for a node (shape and dtype inferred
now, the user's source line recorded) and, when autograd records, a grad_fn. Everything here
is composed from `prim`: type promotion and Python scalars (as constants) for binary ops,
float promotion for transcendental ops, reductions with PyTorch's dims and dtypes, and
composites such as sigmoid or softmax, whose last primitive takes PyTorch's grad_fn name.

This module imports only the layers below Tensor (tensor_base.py, prims.py): results are
built through a tensor operand (`x._result(...)`, see tensor_base.py), and `MathMethods`, at
the end, holds Tensor's operators and math methods, which tensor.py composes into Tensor.
"""
from __future__ import annotations

import builtins
import math
from collections import namedtuple
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from . import dtypes as D
from .grad_mode import no_grad
from .prims import c_name as _c_name
from .prims import cast, const, iota_node, named, op_error, operand, prim, reshape_value
from .prims import check_not_bool as _check_not_bool
from .prims import check_operand as _check_operand
from .prims import torch_name as _torch_name
from .tensor_base import TensorBase, normalize_dims
from .traced_float import TracedFloat

if TYPE_CHECKING:
    from .tensor import Tensor

_T = TypeVar("_T", bound=TensorBase)


def _return_type(name: str):
    """PyTorch's (values, indices) result of max/min over a dim, printed as torch.return_types prints it."""
    def __repr__(self):
        return f"fusegrad.return_types.{name}(\nvalues={self.values!r},\nindices={self.indices!r})"
    return type(name, (namedtuple(name, ["values", "indices"]),), {"__slots__": (), "__repr__": __repr__})


MaxResult = _return_type("max")
MinResult = _return_type("min")


# ---------------------------------------------------------------- elementwise

def binary(op: str, a, b, *, name=None, dtype=None, opname=None):
    _check_operand(a, opname or op)
    _check_operand(b, opname or op)
    dt = dtype or D.result_type(a, b)
    like = a if isinstance(a, TensorBase) else b if isinstance(b, TensorBase) else _tensor_of(a, b, opname or op)
    return prim(op, [operand(a, dt, like), operand(b, dt, like)], name=name)


def _tensor_of(a, b, opname: str) -> TensorBase:
    """The tensor operand of a binary op: its result (and a scalar operand's constant) is
    built through it."""
    if isinstance(a, TensorBase):
        return a
    if isinstance(b, TensorBase):
        return b
    raise TypeError(f"{opname}(): argument 'input' (position 1) must be Tensor, not {type(a).__name__}")


def add(a, b, alpha=1):
    if alpha != 1:
        b = _scaled(a, b, alpha)
    return binary("add", a, b, opname="add")


def sub(a, b, alpha=1):
    _check_not_bool_sub(a, b)
    if alpha != 1:
        b = _scaled(a, b, alpha)
    return binary("sub", a, b, name="SubBackward0" if isinstance(a, TensorBase) else "RsubBackward1", opname="sub")


def _scaled(a, b, alpha):
    """b * alpha for add and sub: a tensor, also when b is a number (a constant built through a)."""
    if not isinstance(b, TensorBase):
        _check_operand(b, "mul")
        b = const(b, D.result_type(b, alpha), like=a if isinstance(a, TensorBase) else None)
    return mul(b, alpha)


def _check_not_bool_sub(a, b):
    """PyTorch refuses to subtract bools (tensors or Python bools), with one message for two and one for one."""
    bools = [isinstance(x, builtins.bool) or isinstance(x, TensorBase) and x.dtype.is_bool for x in (a, b)]
    if builtins.all(bools):
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. "
                           "Use the `^` or `logical_xor()` operator instead.")
    if builtins.any(bools):
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. "
                           "If you are trying to invert a mask, use the `~` or `logical_not()` operator instead.")


def mul(a, b):
    return binary("mul", a, b, opname="mul")


def div(a, b, rounding_mode=None):
    if rounding_mode == "floor":
        return floor_divide(a, b)
    if rounding_mode == "trunc":
        dt = D.result_type(a, b)
        if dt.is_floating_point:
            q = binary("div", a, b, dtype=dt)
            return where(lt(q, 0), neg(floor(neg(q))), floor(q))
        return binary("div", a, b, dtype=dt)
    dt = D.result_type(a, b)
    if not dt.is_floating_point:
        dt = D.get_default_dtype()
    return binary("div", a, b, dtype=dt, opname="div")


def floor_divide(a, b):
    dt = D.result_type(a, b)
    like = _tensor_of(a, b, "floor_divide")
    a_, b_ = operand(a, dt, like), operand(b, dt, like)
    if dt.is_floating_point:
        return _float_floor_divide(a_, b_)
    q = binary("div", a_, b_)           # truncates toward zero
    return sub(q, cast(_sign_fix(sub(a_, mul(q, b_)), b_), dt))


def _float_floor_divide(a, b):
    """PyTorch's div_floor_floating: the quotient from the exact remainder, so 1 // 0.1 is 9
    and inf // 2 is nan; a plain division where b is 0."""
    q = binary("div", a, b)
    m = fmod(a, b)
    d = sub(binary("div", sub(a, m), b), cast(_sign_fix(m, b), a.dtype))
    f = floor(d)
    f = add(f, cast(lt(0.5, sub(d, f)), a.dtype))
    return where(eq(b, 0), q, where(ne(d, 0), f, mul(q, 0.0)))


def _sign_fix(r, b):
    """Where a truncated remainder `r` is nonzero and its sign differs from the divisor's."""
    return logical_and(ne(r, 0), ne(lt(r, 0), lt(b, 0)))


def remainder(a, b):
    """Python's %: fmod, moved by one divisor where its sign differs from the divisor's."""
    dt = D.result_type(a, b)
    like = _tensor_of(a, b, "remainder")
    a_, b_ = operand(a, dt, like), operand(b, dt, like)
    r = fmod(a_, b_)
    return add(r, mul(cast(_sign_fix(r, b_), dt), b_))


def fmod(a, b):
    """C's fmod: the remainder of the quotient truncated toward zero (the dividend's sign)."""
    dt = D.result_type(a, b)
    like = _tensor_of(a, b, "fmod")
    a_, b_ = operand(a, dt, like), operand(b, dt, like)
    if dt.is_floating_point:
        return prim("fmod", [a_, b_], name="FmodBackward1" if isinstance(b, TensorBase) else "FmodBackward0")
    return sub(a_, mul(binary("div", a_, b_), b_))      # integer div truncates (and checks for 0)


def pow(a, b):
    if isinstance(b, TensorBase) or isinstance(a, TensorBase) and a.dtype.is_floating_point or \
            not isinstance(b, builtins.int):
        name = "PowBackward1" if isinstance(b, TensorBase) else "PowBackward0"
        return binary("pow", a, b, name=name, opname="pow")
    if b < 0 and not a.dtype.is_floating_point:
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    return binary("pow", a, b, name="PowBackward0", opname="pow")


def maximum(a, b):
    return binary("max", a, b, opname="maximum")


def minimum(a, b):
    return binary("min", a, b, opname="minimum")


def _compare(op, a, b, swap=False):
    _check_operand(a, op)
    _check_operand(b, op)
    dt = D.result_type(a, b)
    like = a if isinstance(a, TensorBase) else b if isinstance(b, TensorBase) else _tensor_of(a, b, op)
    x, y = operand(a, dt, like), operand(b, dt, like)
    return prim(op, [y, x] if swap else [x, y])


def lt(a, b):
    return _compare("lt", a, b)


def le(a, b):
    return _compare("le", a, b)


def gt(a, b):
    return _compare("lt", a, b, swap=True)


def ge(a, b):
    return _compare("le", a, b, swap=True)


def eq(a, b):
    return _compare("eq", a, b)


def ne(a, b):
    return _compare("ne", a, b)


def logical_not(x):
    return eq(cast(x, D.bool_), False)


def logical_and(a, b):
    return prim("mul", [cast(a, D.bool_), cast(b, D.bool_)])


def logical_or(a, b):
    return prim("max", [cast(a, D.bool_), cast(b, D.bool_)])


def logical_xor(a, b):
    return prim("ne", [cast(a, D.bool_), cast(b, D.bool_)])


def bitwise(op, a, b):
    """`&`, `|`, `^` on bool tensors (masks); integer bitwise ops are not supported."""
    if builtins.all(not isinstance(x, TensorBase) or x.dtype.is_bool for x in (a, b)) and \
            builtins.all(isinstance(x, (TensorBase, builtins.bool)) for x in (a, b)):
        return {"and": logical_and, "or": logical_or, "xor": logical_xor}[op](a, b)
    raise TypeError(f"bitwise_{op} is only supported on bool tensors in fusegrad")


def where(condition, x, y):
    dt = D.result_type(x, y)
    return prim("where", [cast(condition, D.bool_), operand(x, dt, condition), operand(y, dt, condition)])


def _float_unary(op, x):
    """A float-only primitive (its grad_fn name declared with it), ints promoted to the default dtype."""
    dt = x.dtype if x.dtype.is_floating_point else D.get_default_dtype()
    return prim(op, [cast(x, dt)])


def exp(x):
    return _float_unary("exp", x)


def log(x):
    return _float_unary("log", x)


def sqrt(x):
    return _float_unary("sqrt", x)


def rsqrt(x):
    return named(reciprocal(sqrt(x)), "RsqrtBackward0")


def reciprocal(x):
    return _float_unary("recip", x)


def sin(x):
    return _float_unary("sin", x)


def cos(x):
    return _float_unary("cos", x)


def tanh(x):
    return _float_unary("tanh", x)


def erf(x):
    return _float_unary("erf", x)


def floor(x):
    _check_not_bool(x, "floor", "floor_vml_cpu")
    return x if not x.dtype.is_floating_point else prim("floor", [x])


def ceil(x):
    _check_not_bool(x, "ceil", "ceil_vml_cpu")
    return x if not x.dtype.is_floating_point else named(neg(floor(neg(x))), "CeilBackward0")


def round(x, decimals=0):
    """Half to even (as PyTorch); with decimals, of x scaled by 10**decimals."""
    _check_not_bool(x, "round", "round_vml_cpu")
    if not x.dtype.is_floating_point:
        return x
    if decimals == 0:
        return prim("round", [x])
    if decimals > 0:
        scale = 10.0 ** decimals
        return named(div(round(mul(x, scale)), scale), "RoundBackward1")
    scale = 10.0 ** -decimals
    return named(mul(round(div(x, scale)), scale), "RoundBackward1")


def neg(x):
    if x.dtype.is_bool:
        raise op_error(RuntimeError, "neg", "Negation, the `-` operator, on a bool tensor is not supported. If you "
                       "are trying to invert a mask, use the `~` or `logical_not()` operator instead.", [x])
    return prim("neg", [x])


def abs(x):
    _check_not_bool(x, "abs", "abs_cpu")
    return prim("abs", [x])


def sign(x):
    if x.dtype.is_bool:     # PyTorch: a bool tensor is its own sign
        return prim("reshape", [x], {"shape": tuple(x.shape)}, name="CloneBackward0")   # shape_ops.clone
    zero = const(0, x.dtype, like=x)
    return sub(cast(gt(x, zero), x.dtype), cast(lt(x, zero), x.dtype))


def sigmoid(x):
    """1 / (1 + exp(-x)), PyTorch's formula, where exp(-x) is finite, and exp(x) (equal to
    float precision) below: each branch sees only arguments its exp cannot overflow on, so
    where the value saturates its gradient is 0 (PyTorch's), not 0 * inf = NaN."""
    x = _float_operand(x)
    limit = -88.0 if x.dtype.itemsize == 4 else -708.0    # exp(-limit) is finite
    tail = lt(x, limit)
    body = reciprocal(add(exp(neg(where(tail, limit, x))), 1.0))
    return named(where(tail, exp(where(tail, x, limit)), body), "SigmoidBackward0")


def relu(x):
    if x.dtype.is_bool:
        raise op_error(RuntimeError, "relu", "Boolean inputs not supported for relu", [x])
    return named(where(le(x, 0), const(0, x.dtype, like=x), x), "ReluBackward0")


def clamp(x, min=None, max=None):
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    out = x
    if min is not None:
        out = where(lt(out, min), operand(min, D.result_type(x, min), x), out)
    if max is not None:
        out = where(lt(max, out), operand(max, D.result_type(out, max), x), out)
    return named(out, "ClampBackward1")


def _float_operand(x):
    return x if x.dtype.is_floating_point else cast(x, D.get_default_dtype())


# ---------------------------------------------------------------- reductions

def _drop_dims(t, axes, keepdim, name=None):
    """A reduction's result without its reduced dims (a fresh value, not a view)."""
    if keepdim or not axes:
        return t
    return prim("reshape", [t], {"shape": tuple(s for d, s in enumerate(t.shape) if d not in axes)}, name=name)


def _reduce(op, x, dim, keepdim, name, opname):
    axes = normalize_dims(x, dim, opname)
    if x.dim() == 0:
        axes = ()
    r = prim(op, [x], {"axes": axes}, name=name)
    return _drop_dims(r, axes, keepdim, name)


def _all_if_empty(dim):
    """An empty dim list reduces over every dim (PyTorch's sum, mean, amax, amin, logsumexp)."""
    return None if isinstance(dim, (tuple, list)) and not dim else dim


def sum(x, dim=None, keepdim=False, dtype=None):
    dim = _all_if_empty(dim)
    if dtype is not None:
        x = cast(x, D.as_dtype(dtype))
    elif not x.dtype.is_floating_point:
        x = cast(x, D.int64)
    return _reduce("sum", x, dim, keepdim, "SumBackward0" if dim is None else "SumBackward1", "sum")


def prod(x, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        x = cast(x, D.as_dtype(dtype))
    elif not x.dtype.is_floating_point:
        x = cast(x, D.int64)
    return _reduce("prod", x, dim, keepdim, "ProdBackward0" if dim is None else "ProdBackward1", "prod")


def mean(x, dim=None, keepdim=False, dtype=None):
    dim = _all_if_empty(dim)
    if dtype is not None:
        x = cast(x, D.as_dtype(dtype))
    if not x.dtype.is_floating_point:
        raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a floating point "
                           f"or complex dtype. Got: {_torch_name(x.dtype)}")
    if x.dtype.is_storage_float:      # float32 inside, one rounding (as PyTorch's 16-bit kernels)
        return named(cast(mean(cast(x, D.float32), dim, keepdim), x.dtype),
                     "MeanBackward0" if dim is None else "MeanBackward1")
    axes = normalize_dims(x, dim, "mean")
    n = 1
    for d in axes:
        n *= x.shape[d]
    total = _reduce("sum", x, dim, keepdim, None, "mean")
    return named(mul(total, 1.0 / n if n else math.nan), "MeanBackward0" if dim is None else "MeanBackward1")


def all(x, dim=None, keepdim=False):
    return _truth(x, "reduce_min", dim, keepdim, "all")


def any(x, dim=None, keepdim=False):
    return _truth(x, "reduce_max", dim, keepdim, "any")


def _truth(x, op, dim, keepdim, opname):
    """all/any: min/max over the elements' truth values; bool, except uint8 for uint8 (as PyTorch)."""
    truth = cast(ne(x, 0), D.uint8)
    r = _reduce(op, truth, dim, keepdim, None, opname)
    return r if x.dtype is D.uint8 else cast(r, D.bool_)


def amax(x, dim=None, keepdim=False):
    return _reduce("reduce_max", x, _all_if_empty(dim), keepdim, "AmaxBackward0", "amax")


def amin(x, dim=None, keepdim=False):
    return _reduce("reduce_min", x, _all_if_empty(dim), keepdim, "AminBackward0", "amin")


def _check_reduced_size(x, axis: int, op: str):
    """max/min/argmax/argmin over a dim of size 0 have no element to pick (PyTorch: IndexError)."""
    if x.shape[axis] == 0:
        raise op_error(IndexError, op, f"Expected reduction dim {axis} to have non-zero size.", [x])


def _one_element_row(x, dim, op: str):
    """A 0-d tensor reduced over dim 0 or -1 (PyTorch allows both): as a 1-element row over dim 0."""
    normalize_dims(x, dim, op)
    return reshape_value(x, (1,)), 0


def _extreme(x, dim, keepdim, which):
    if dim is None:
        if x.numel() == 0:
            raise RuntimeError(f"{which}(): Expected reduction dim to be specified for input.numel() == 0. "
                               "Specify the reduction dim with the 'dim' argument.")
        r = (amax if which == "max" else amin)(x)
        return named(r, "MaxBackward1" if which == "max" else "MinBackward1")
    if x.dim() == 0:
        (x, dim), keepdim = _one_element_row(x, dim, which), False
    (axis,) = normalize_dims(x, dim, which)
    _check_reduced_size(x, axis, which)
    idx = (argmax if which == "max" else argmin)(x, axis, keepdim=True)
    values = prim("gather", [x, idx], {"axis": axis}, name="GatherBackward0")   # shape_ops.gather_along
    values = named(_drop_dims(values, (axis,), keepdim), "MaxBackward0" if which == "max" else "MinBackward0")
    result = MaxResult if which == "max" else MinResult
    return result(values, _drop_dims(idx, (axis,), keepdim))


def max(x, dim=None, keepdim=False, *, other=None):
    if isinstance(dim, TensorBase):
        return maximum(x, dim)
    return _extreme(x, dim, keepdim, "max")


def min(x, dim=None, keepdim=False):
    if isinstance(dim, TensorBase):
        return minimum(x, dim)
    return _extreme(x, dim, keepdim, "min")


def _arg_extreme(x, dim, keepdim, which):
    """First index of the max (min) along `dim`, NaN counting as the extreme (as PyTorch)."""
    with no_grad():
        flat = dim is None
        if flat:
            if x.numel() == 0:
                raise IndexError(f"arg{which}(): Expected reduction dim to be specified for input.numel() == 0.")
            kept = (1,) * x.dim()    # keepdim over all dims keeps every dim, with size 1
            x, dim = reshape_value(x, (x.numel(),)), 0
        elif x.dim() == 0:
            (x, dim), keepdim = _one_element_row(x, dim, f"arg{which}"), False
        (axis,) = normalize_dims(x, dim, f"arg{which}")
        _check_reduced_size(x, axis, f"arg{which}")
        best = (amax if which == "max" else amin)(x, axis, keepdim=True)
        hit = eq(x, best)
        if x.dtype.is_floating_point:
            hit = logical_or(hit, ne(x, x))
        first = amin(where(hit, x._result(iota_node(x.shape, axis, D.int64)), x.shape[axis]), axis, keepdim=True)
        if flat:
            return reshape_value(first, kept if keepdim else ())
        return _drop_dims(first, (axis,), keepdim)


def argmax(x, dim=None, keepdim=False):
    return _arg_extreme(x, dim, keepdim, "max")


def argmin(x, dim=None, keepdim=False):
    return _arg_extreme(x, dim, keepdim, "min")


# ---------------------------------------------------------------- matrix products

def matmul(a, b):
    """PyTorch's matmul: dot for 1-D @ 1-D, matrix-vector, and batched with broadcast batch dims."""
    if not isinstance(b, TensorBase) or not isinstance(a, TensorBase):
        raise TypeError(f"matmul(): argument 'other' must be Tensor, not {type(b).__name__}")
    if a.dim() == 0 or b.dim() == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {a.dim()}D and {b.dim()}D")
    if a.dtype is not b.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {_c_name(a.dtype)} != "
                           f"{_c_name(b.dtype)}")
    a2 = reshape_value(a, (1,) + tuple(a.shape)) if a.dim() == 1 else a
    b2 = reshape_value(b, tuple(b.shape) + (1,)) if b.dim() == 1 else b
    rank = builtins.max(a2.dim(), b2.dim())
    if a2.dim() < rank:
        a2 = reshape_value(a2, (1,) * (rank - a2.dim()) + tuple(a2.shape))
    if b2.dim() < rank:
        b2 = reshape_value(b2, (1,) * (rank - b2.dim()) + tuple(b2.shape))
    name = "MmBackward0" if rank == 2 else "BmmBackward0"
    out = prim("matmul", [a2, b2], name=name)
    shape = tuple(out.shape)
    if a.dim() == 1:
        shape = shape[:-2] + shape[-1:]
    if b.dim() == 1:
        shape = shape[:-1]
    if a.dim() == 1 and b.dim() == 1:
        return named(reshape_value(out, ()), "DotBackward0")
    return reshape_value(out, shape) if shape != tuple(out.shape) else out


def mm(a, b):
    if a.dim() != 2 or b.dim() != 2:
        raise RuntimeError(f"{'self' if a.dim() != 2 else 'mat2'} must be a matrix")
    return matmul(a, b)


def bmm(a, b):
    if a.dim() != 3 or b.dim() != 3:
        raise RuntimeError("batch1 must be a 3D tensor")
    return matmul(a, b)


def dot(a, b):
    if a.dim() != 1 or b.dim() != 1:
        raise RuntimeError(f"1D tensors expected, but got {a.dim()}D and {b.dim()}D tensors")
    return matmul(a, b)


# ---------------------------------------------------------------- composites used by nn

def _check_softmax_dtype(x, dim, op: str):
    """PyTorch's softmax kernels take floating point only (`dtype=` converts first); an empty
    input never reaches a kernel."""
    if x.dtype.is_floating_point or x.numel() == 0:
        return
    last = x.dim() == 0 or normalize_dims(x, dim, op)[0] == x.dim() - 1
    kernel = f"{op}_lastdim_kernel_impl" if last else f"{op}_kernel_impl"
    raise op_error(NotImplementedError, op, f'"{kernel}" not implemented for \'{_torch_name(x.dtype)}\'', [x])


def softmax(x, dim, dtype=None):
    if dtype is not None:
        x = cast(x, D.as_dtype(dtype))
    _check_softmax_dtype(x, dim, "softmax")
    x = _float_operand(x)
    if x.dtype.is_storage_float:      # float32 inside, one rounding
        return named(cast(softmax(cast(x, D.float32), dim), x.dtype), "SoftmaxBackward0")
    (axis,) = normalize_dims(x, dim, "softmax")
    shifted = sub(x, amax(x, axis, keepdim=True).detach())
    e = exp(shifted)
    return named(div(e, sum(e, axis, keepdim=True)), "SoftmaxBackward0")


def log_softmax(x, dim, dtype=None):
    if dtype is not None:
        x = cast(x, D.as_dtype(dtype))
    _check_softmax_dtype(x, dim, "log_softmax")
    x = _float_operand(x)
    if x.dtype.is_storage_float:      # float32 inside, one rounding
        return named(cast(log_softmax(cast(x, D.float32), dim), x.dtype), "LogSoftmaxBackward0")
    (axis,) = normalize_dims(x, dim, "log_softmax")
    shifted = sub(x, amax(x, axis, keepdim=True).detach())
    return named(sub(shifted, log(sum(exp(shifted), axis, keepdim=True))), "LogSoftmaxBackward0")


def logsumexp(x, dim, keepdim=False):
    x = _float_operand(x)
    if x.dtype.is_storage_float:      # float32 inside, one rounding
        return named(cast(logsumexp(cast(x, D.float32), dim, keepdim), x.dtype), "LogsumexpBackward0")
    axes = normalize_dims(x, _all_if_empty(dim), "logsumexp")
    m = amax(x, axes, keepdim=True).detach()
    m = where(eq(abs(m), math.inf), 0.0, m)     # an infinite max would make inf - inf = nan
    r = add(log(sum(exp(sub(x, m)), axes, keepdim=True)), m)
    return named(_drop_dims(r, axes, keepdim), "LogsumexpBackward0")


# ---------------------------------------------------------------- Tensor's methods

class MathMethods(TensorBase):
    """Python's operators and the Tensor methods of the elementwise, reduction and matrix ops
    (tensor.py composes Tensor from this and the other op modules' mixins). A binary operator
    answers NotImplemented for an operand that is not a tensor or a number, so Python can try
    the other operand."""

    __slots__ = ()

    def __hash__(self) -> int:     # defining __eq__ would otherwise make tensors unhashable
        return id(self)

    def __add__(self, other: Any) -> Tensor:
        return add(self, other) if _is_operand(other) else NotImplemented

    def __sub__(self, other: Any) -> Tensor:
        return sub(self, other) if _is_operand(other) else NotImplemented

    def __mul__(self, other: Any) -> Tensor:
        return mul(self, other) if _is_operand(other) else NotImplemented

    def __truediv__(self, other: Any) -> Tensor:
        return div(self, other) if _is_operand(other) else NotImplemented

    def __floordiv__(self, other: Any) -> Tensor:
        return floor_divide(self, other) if _is_operand(other) else NotImplemented

    def __mod__(self, other: Any) -> Tensor:
        return remainder(self, other) if _is_operand(other) else NotImplemented

    def __pow__(self, other: Any) -> Tensor:
        return pow(self, other) if _is_operand(other) else NotImplemented

    def __lt__(self, other: Any) -> Tensor:
        return lt(self, other) if _is_operand(other) else NotImplemented

    def __le__(self, other: Any) -> Tensor:
        return le(self, other) if _is_operand(other) else NotImplemented

    def __gt__(self, other: Any) -> Tensor:
        return gt(self, other) if _is_operand(other) else NotImplemented

    def __ge__(self, other: Any) -> Tensor:
        return ge(self, other) if _is_operand(other) else NotImplemented

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return eq(self, other) if _is_operand(other) else NotImplemented

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return ne(self, other) if _is_operand(other) else NotImplemented

    def __radd__(self, other: Any) -> Tensor:
        return add(other, self) if _is_operand(other) else NotImplemented

    def __rsub__(self, other: Any) -> Tensor:
        return sub(other, self) if _is_operand(other) else NotImplemented

    def __rmul__(self, other: Any) -> Tensor:
        return mul(other, self) if _is_operand(other) else NotImplemented

    def __rtruediv__(self, other: Any) -> Tensor:
        return div(other, self) if _is_operand(other) else NotImplemented

    def __rfloordiv__(self, other: Any) -> Tensor:
        return floor_divide(other, self) if _is_operand(other) else NotImplemented

    def __rmod__(self, other: Any) -> Tensor:
        return remainder(other, self) if _is_operand(other) else NotImplemented

    def __rpow__(self, other: Any) -> Tensor:
        return pow(other, self) if _is_operand(other) else NotImplemented

    def __and__(self, other: Any) -> Tensor:
        return bitwise("and", self, other) if _is_operand(other) else NotImplemented

    def __or__(self, other: Any) -> Tensor:
        return bitwise("or", self, other) if _is_operand(other) else NotImplemented

    def __xor__(self, other: Any) -> Tensor:
        return bitwise("xor", self, other) if _is_operand(other) else NotImplemented

    def __rand__(self, other: Any) -> Tensor:
        return bitwise("and", other, self) if _is_operand(other) else NotImplemented

    def __ror__(self, other: Any) -> Tensor:
        return bitwise("or", other, self) if _is_operand(other) else NotImplemented

    def __neg__(self) -> Tensor:
        return neg(self)

    def __abs__(self) -> Tensor:
        return abs(self)

    def __invert__(self) -> Tensor:
        return logical_not(self)

    def __pos__(self: _T) -> _T:
        return self

    def __matmul__(self, other: Any) -> Tensor:
        return matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return matmul(other, self)

    def add(self, *args: Any, **kwargs: Any) -> Tensor:
        return add(self, *args, **kwargs)

    def sub(self, *args: Any, **kwargs: Any) -> Tensor:
        return sub(self, *args, **kwargs)

    def mul(self, *args: Any, **kwargs: Any) -> Tensor:
        return mul(self, *args, **kwargs)

    def div(self, *args: Any, **kwargs: Any) -> Tensor:
        return div(self, *args, **kwargs)

    def true_divide(self, *args: Any, **kwargs: Any) -> Tensor:
        return div(self, *args, **kwargs)

    def floor_divide(self, *args: Any, **kwargs: Any) -> Tensor:
        return floor_divide(self, *args, **kwargs)

    def remainder(self, *args: Any, **kwargs: Any) -> Tensor:
        return remainder(self, *args, **kwargs)

    def fmod(self, *args: Any, **kwargs: Any) -> Tensor:
        return fmod(self, *args, **kwargs)

    def pow(self, *args: Any, **kwargs: Any) -> Tensor:
        return pow(self, *args, **kwargs)

    def maximum(self, *args: Any, **kwargs: Any) -> Tensor:
        return maximum(self, *args, **kwargs)

    def minimum(self, *args: Any, **kwargs: Any) -> Tensor:
        return minimum(self, *args, **kwargs)

    def lt(self, *args: Any, **kwargs: Any) -> Tensor:
        return lt(self, *args, **kwargs)

    def le(self, *args: Any, **kwargs: Any) -> Tensor:
        return le(self, *args, **kwargs)

    def gt(self, *args: Any, **kwargs: Any) -> Tensor:
        return gt(self, *args, **kwargs)

    def ge(self, *args: Any, **kwargs: Any) -> Tensor:
        return ge(self, *args, **kwargs)

    def eq(self, *args: Any, **kwargs: Any) -> Tensor:
        return eq(self, *args, **kwargs)

    def ne(self, *args: Any, **kwargs: Any) -> Tensor:
        return ne(self, *args, **kwargs)

    def logical_not(self, *args: Any, **kwargs: Any) -> Tensor:
        return logical_not(self, *args, **kwargs)

    def logical_and(self, *args: Any, **kwargs: Any) -> Tensor:
        return logical_and(self, *args, **kwargs)

    def logical_or(self, *args: Any, **kwargs: Any) -> Tensor:
        return logical_or(self, *args, **kwargs)

    def logical_xor(self, *args: Any, **kwargs: Any) -> Tensor:
        return logical_xor(self, *args, **kwargs)

    def exp(self, *args: Any, **kwargs: Any) -> Tensor:
        return exp(self, *args, **kwargs)

    def log(self, *args: Any, **kwargs: Any) -> Tensor:
        return log(self, *args, **kwargs)

    def sqrt(self, *args: Any, **kwargs: Any) -> Tensor:
        return sqrt(self, *args, **kwargs)

    def rsqrt(self, *args: Any, **kwargs: Any) -> Tensor:
        return rsqrt(self, *args, **kwargs)

    def reciprocal(self, *args: Any, **kwargs: Any) -> Tensor:
        return reciprocal(self, *args, **kwargs)

    def sin(self, *args: Any, **kwargs: Any) -> Tensor:
        return sin(self, *args, **kwargs)

    def cos(self, *args: Any, **kwargs: Any) -> Tensor:
        return cos(self, *args, **kwargs)

    def tanh(self, *args: Any, **kwargs: Any) -> Tensor:
        return tanh(self, *args, **kwargs)

    def erf(self, *args: Any, **kwargs: Any) -> Tensor:
        return erf(self, *args, **kwargs)

    def sigmoid(self, *args: Any, **kwargs: Any) -> Tensor:
        return sigmoid(self, *args, **kwargs)

    def relu(self, *args: Any, **kwargs: Any) -> Tensor:
        return relu(self, *args, **kwargs)

    def abs(self, *args: Any, **kwargs: Any) -> Tensor:
        return abs(self, *args, **kwargs)

    def neg(self, *args: Any, **kwargs: Any) -> Tensor:
        return neg(self, *args, **kwargs)

    def negative(self, *args: Any, **kwargs: Any) -> Tensor:
        return neg(self, *args, **kwargs)

    def sign(self, *args: Any, **kwargs: Any) -> Tensor:
        return sign(self, *args, **kwargs)

    def floor(self, *args: Any, **kwargs: Any) -> Tensor:
        return floor(self, *args, **kwargs)

    def ceil(self, *args: Any, **kwargs: Any) -> Tensor:
        return ceil(self, *args, **kwargs)

    def round(self, *args: Any, **kwargs: Any) -> Tensor:
        return round(self, *args, **kwargs)

    def clamp(self, *args: Any, **kwargs: Any) -> Tensor:
        return clamp(self, *args, **kwargs)

    def clip(self, *args: Any, **kwargs: Any) -> Tensor:
        return clamp(self, *args, **kwargs)

    def sum(self, *args: Any, **kwargs: Any) -> Tensor:
        return sum(self, *args, **kwargs)

    def mean(self, *args: Any, **kwargs: Any) -> Tensor:
        return mean(self, *args, **kwargs)

    def prod(self, *args: Any, **kwargs: Any) -> Tensor:
        return prod(self, *args, **kwargs)

    def max(self, *args: Any, **kwargs: Any) -> Any:
        return max(self, *args, **kwargs)

    def min(self, *args: Any, **kwargs: Any) -> Any:
        return min(self, *args, **kwargs)

    def amax(self, *args: Any, **kwargs: Any) -> Tensor:
        return amax(self, *args, **kwargs)

    def amin(self, *args: Any, **kwargs: Any) -> Tensor:
        return amin(self, *args, **kwargs)

    def all(self, *args: Any, **kwargs: Any) -> Tensor:
        return all(self, *args, **kwargs)

    def any(self, *args: Any, **kwargs: Any) -> Tensor:
        return any(self, *args, **kwargs)

    def argmax(self, *args: Any, **kwargs: Any) -> Tensor:
        return argmax(self, *args, **kwargs)

    def argmin(self, *args: Any, **kwargs: Any) -> Tensor:
        return argmin(self, *args, **kwargs)

    def softmax(self, *args: Any, **kwargs: Any) -> Tensor:
        return softmax(self, *args, **kwargs)

    def log_softmax(self, *args: Any, **kwargs: Any) -> Tensor:
        return log_softmax(self, *args, **kwargs)

    def logsumexp(self, *args: Any, **kwargs: Any) -> Tensor:
        return logsumexp(self, *args, **kwargs)

    def matmul(self, *args: Any, **kwargs: Any) -> Tensor:
        return matmul(self, *args, **kwargs)

    def mm(self, *args: Any, **kwargs: Any) -> Tensor:
        return mm(self, *args, **kwargs)

    def bmm(self, *args: Any, **kwargs: Any) -> Tensor:
        return bmm(self, *args, **kwargs)

    def dot(self, *args: Any, **kwargs: Any) -> Tensor:
        return dot(self, *args, **kwargs)

    def mv(self, *args: Any, **kwargs: Any) -> Tensor:
        return matmul(self, *args, **kwargs)

    def where(self, condition: Any, other: Any) -> Tensor:
        return where(condition, self, other)

    def square(self) -> Tensor:
        return mul(self, self)


def _is_operand(other: Any) -> bool:
    """Whether a binary operator takes `other`: a tensor or a (Python, numpy or traced) number."""
    return isinstance(other, (TensorBase, builtins.int, builtins.float, builtins.bool, np.generic, TracedFloat))
