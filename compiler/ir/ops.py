"""The primitive op set of the IR: each primitive declared once, with its rules.

A declaration (`declare`, the table at the end) gives the op's kind, arity, attribute types,
shape rule, dtype rule, fold rule and autograd name, and the algebraic facts the passes use
(a binary op's unit, a reduction's identity, ...). Its VJP and its CPU and PTX lowerings
register against it by name in their own modules (registry.py). Everything a user can write
is composed from these in the frontend, so autodiff, fusion and both backends need rules
only here.

A shape or dtype rule receives the input nodes (anything with `.shape` and `.dtype`) and the
attributes, and returns the output shape or dtype, raising an IRError that names the op and
the operand types when the inputs are not acceptable.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

from . import dtypes
from .dtypes import DType
from .errors import AxisError, DTypeError, IRError, ShapeError, fmt_type

Scalar = Union[bool, int, float]
ShapeRule = Union[Callable[..., tuple], str]     # a rule, or DECLARED
DTypeRule = Union[Callable[..., DType], str]


@dataclass(frozen=True, eq=False)
class OpDef:
    """One primitive, declared once (by `declare`, at the end of this module).

    Rules of other layers (VJP, CPU and PTX lowerings) register against it in registry.py."""
    name: str
    kind: str           # source | unary | binary | compare | where | cast | reduce | movement | gather | scatter
                        # | matmul | collective
    arity: int | None   # None: variadic (concat)
    shape: ShapeRule    # shape rule (op, inputs, loc, **attrs) -> shape; DECLARED for sources
    dtype: DTypeRule    # dtype rule (op, inputs, loc) -> dtype; DECLARED for sources and cast
    attrs: dict         # attribute name -> its value type (INT, INTS, SCALAR, NAME)
    fold: Callable | None     # (dtype, [(value, dtype), ...]) -> value | None, for constant folding
    grad_name: str      # the grad_fn name autograd shows for it ("MulBackward0")
    float_only: bool    # operands must be floating point (exp, fmod, ...)
    fallible: Callable | None   # dtype -> bool: does the kernel check something at run time?
    bool_operands: bool = True  # accepts bool operands (neg, sub, div, pow and abs do not)
    # algebraic facts, for simplify.py (None / False: no such fact)
    unit: int | None = None     # binary: x op unit == x (and unit op x == x when commutative)
    commutative: bool = False
    involution: bool = False    # unary: op(op(x)) == x
    noop: Callable | None = None      # attrs -> bool: is the op x itself when its output has x's type?
    compose: Callable | None = None   # (inner attrs, outer attrs) -> attrs of op(op(x)) as one op
    effectful: bool = False     # does more than compute its value (a collective's host call): never
                                # merged with an equal node (CSE), folded or evaluated inside another kernel
    # reduce: the value of an empty reduction in a dtype (the accumulator's start)
    identity: Callable[[DType], Scalar] | None = None

    @property
    def elementwise(self) -> bool:
        return self.kind in ELEMENTWISE_KINDS

    def may_fail(self, dtype) -> bool:
        """Can this op's kernel code record an error (index out of range, integer division by 0)?"""
        return self.fallible is not None and self.fallible(dtype)


OPS: dict[str, OpDef] = {}
ELEMENTWISE_KINDS = frozenset({"unary", "binary", "compare", "where", "cast"})


def _types(inputs) -> str:
    return ", ".join(fmt_type(x.shape, x.dtype) for x in inputs)


# ---------------------------------------------------------------- broadcasting

def broadcast_shapes(op: str, inputs, loc=None) -> tuple:
    """NumPy/PyTorch broadcasting of the input shapes (right-aligned, size-1 stretches)."""
    shapes = [tuple(x.shape) for x in inputs]
    if all(s == shapes[0] for s in shapes):
        return shapes[0]
    rank = max(len(s) for s in shapes)
    out = []
    for axis in reversed(range(rank)):
        sizes = [s[len(s) - rank + axis] for s in shapes if len(s) - rank + axis >= 0]
        big = [d for d in sizes if d != 1]
        if any(d != big[0] for d in big):
            a, b = big[0], next(d for d in big if d != big[0])
            raise ShapeError(op, f"cannot broadcast {_types(inputs)}: the size of tensor a ({a}) must "
                                 f"match the size of tensor b ({b}) at non-singleton dimension {axis}",
                             loc)
        out.append(big[0] if big else 1)
    return tuple(reversed(out))


def check_axes(op: str, axes, rank: int, inputs, loc=None) -> tuple:
    """Axes as a sorted tuple of non-negative ints; AxisError if any is out of range."""
    out = []
    for a in axes:
        lo, hi = (-rank, rank - 1) if rank else (-1, 0)
        if not lo <= a <= hi:
            raise AxisError(op, f"Dimension out of range (expected to be in range of [{lo}, {hi}], "
                                f"but got {a}) for {_types(inputs)}", loc)
        out.append(a % rank if rank else 0)
    if len(set(out)) != len(out):
        raise AxisError(op, f"dim {out} appears multiple times in the list of dims", loc)
    return tuple(sorted(out))


# ---------------------------------------------------------------- dtype rules

def _same_dtype(op, inputs, loc):
    first = inputs[0].dtype
    for x in inputs[1:]:
        if x.dtype is not first:
            raise DTypeError(op, f"operands must have one dtype, got {_types(inputs)}", loc)
    return first


def _float_dtype(op, inputs, loc):
    dt = _same_dtype(op, inputs, loc)
    if not dt.is_floating_point:
        raise DTypeError(op, f"needs a floating-point operand, got {_types(inputs)}", loc)
    return dt


def _numeric_dtype(op, inputs, loc):
    dt = _same_dtype(op, inputs, loc)
    if dt.is_bool and not OPS[op].bool_operands:
        raise DTypeError(op, f"is not supported on bool operands ({_types(inputs)})", loc)
    return dt


def _bool_dtype(op, inputs, loc):
    _same_dtype(op, inputs, loc)
    return dtypes.bool_


# ---------------------------------------------------------------- shape rules

def _elementwise_shape(op, inputs, loc, **attrs):
    return broadcast_shapes(op, inputs, loc)


def _where_shape(op, inputs, loc, **attrs):
    if inputs[0].dtype is not dtypes.bool_:
        raise DTypeError(op, f"condition must be bool, got {_types(inputs[:1])}", loc)
    return broadcast_shapes(op, inputs, loc)


def _where_dtype(op, inputs, loc):
    return _same_dtype(op, inputs[1:], loc)


def _reduce_shape(op, inputs, loc, axes):
    (x,) = inputs
    axes = check_axes(op, axes, len(x.shape), inputs, loc)
    return tuple(1 if i in axes else d for i, d in enumerate(x.shape))


def _reshape_shape(op, inputs, loc, shape):
    (x,) = inputs
    if any(d < 0 for d in shape) or _numel(shape) != _numel(x.shape):
        raise ShapeError(op, f"shape '{list(shape)}' is invalid for input of size {_numel(x.shape)} "
                             f"({_types(inputs)})", loc)
    return tuple(shape)


def _permute_shape(op, inputs, loc, perm):
    (x,) = inputs
    if sorted(perm) != list(range(len(x.shape))):
        raise ShapeError(op, f"perm {list(perm)} is not a permutation of the dims of {_types(inputs)}", loc)
    return tuple(x.shape[p] for p in perm)


def _expand_shape(op, inputs, loc, shape):
    (x,) = inputs
    shape, src = tuple(shape), tuple(x.shape)
    if len(shape) < len(src):
        raise ShapeError(op, f"the number of sizes provided ({len(shape)}) must be greater or equal to "
                             f"the number of dimensions in the tensor ({len(src)}) ({_types(inputs)})", loc)
    for axis, (s, t) in enumerate(zip(src, shape[len(shape) - len(src):])):
        if s != t and s != 1:
            raise ShapeError(op, f"the expanded size of the tensor ({t}) must match the existing size "
                                 f"({s}) at non-singleton dimension {axis + len(shape) - len(src)}.  "
                                 f"Target sizes: {list(shape)}.  Tensor sizes: {list(src)} ({_types(inputs)})",
                             loc)
    return shape


def _slice_shape(op, inputs, loc, starts, stops, steps):
    (x,) = inputs
    if not len(starts) == len(stops) == len(steps) == len(x.shape):
        raise ShapeError(op, f"needs one start/stop/step per dim of {_types(inputs)}", loc)
    out = []
    for d, a, b, s in zip(x.shape, starts, stops, steps):
        if s < 1:
            raise ShapeError(op, f"slice step must be positive, got {s}", loc)
        if not (0 <= a <= d and a <= b <= d):
            raise ShapeError(op, f"slice [{a}:{b}] is out of range for a dim of size {d} ({_types(inputs)})", loc)
        out.append(-(-(b - a) // s))
    return tuple(out)


def _pad_shape(op, inputs, loc, low, high):
    (x,) = inputs
    if not len(low) == len(high) == len(x.shape) or min(low + high, default=0) < 0:
        raise ShapeError(op, f"needs non-negative low/high padding per dim of {_types(inputs)}", loc)
    return tuple(d + a + b for d, a, b in zip(x.shape, low, high))


def window_out_sizes(sizes, kernel, strides, dilations) -> tuple:
    """The window counts of `window` along each windowed dim (floor((H - d (K - 1) - 1) / s) + 1)."""
    return tuple((h - d * (k - 1) - 1) // s + 1 for h, k, s, d in zip(sizes, kernel, strides, dilations))


def _window_shape(op, inputs, loc, kernel, strides, dilations):
    """x[..., H1..Hk] -> [..., O1..Ok, K1..Kk]: the windows of the trailing k dims."""
    (x,) = inputs
    k = len(kernel)
    if not len(strides) == len(dilations) == k or not 1 <= k <= len(x.shape):
        raise ShapeError(op, f"needs one kernel size, stride and dilation for each of 1..{len(x.shape)} trailing "
                             f"dims of {_types(inputs)}, got kernel={list(kernel)} strides={list(strides)} "
                             f"dilations={list(dilations)}", loc)
    for name, values in (("kernel size", kernel), ("stride", strides), ("dilation", dilations)):
        if any(v < 1 for v in values):
            raise ShapeError(op, f"{name} must be positive, got {list(values)} ({_types(inputs)})", loc)
    sizes = tuple(x.shape[len(x.shape) - k:])
    for h, kk, d in zip(sizes, kernel, dilations):
        if d * (kk - 1) + 1 > h:
            raise ShapeError(op, f"Kernel size can't be greater than actual input size: a window of size {kk} "
                                 f"with dilation {d} spans {d * (kk - 1) + 1} elements, the dim has {h} "
                                 f"({_types(inputs)})", loc)
    return tuple(x.shape[:len(x.shape) - k]) + window_out_sizes(sizes, kernel, strides, dilations) + tuple(kernel)


def _concat_shape(op, inputs, loc, axis):
    first = inputs[0].shape
    (axis,) = check_axes(op, (axis,), len(first), inputs, loc)
    for x in inputs[1:]:
        if len(x.shape) != len(first) or any(a != b for i, (a, b) in enumerate(zip(x.shape, first)) if i != axis):
            raise ShapeError(op, f"sizes of tensors must match except in dimension {axis} ({_types(inputs)})", loc)
    return tuple(sum(x.shape[axis] for x in inputs) if i == axis else d for i, d in enumerate(first))


def _concat_dtype(op, inputs, loc):
    return _same_dtype(op, inputs, loc)


def _gather_shape(op, inputs, loc, axis):
    src, index = inputs
    (axis,) = check_axes(op, (axis,), len(src.shape), inputs, loc)
    if len(index.shape) != len(src.shape) or any(
            i > s for d, (i, s) in enumerate(zip(index.shape, src.shape)) if d != axis):
        raise ShapeError(op, f"index {fmt_type(index.shape, index.dtype)} does not fit source "
                             f"{fmt_type(src.shape, src.dtype)} outside dimension {axis}", loc)
    return tuple(index.shape)


def _index_dtype_check(op, index, loc):
    if index.dtype not in (dtypes.int64, dtypes.int32):
        raise DTypeError(op, f"index must be int64 or int32, got {fmt_type(index.shape, index.dtype)}", loc)


def _gather_dtype(op, inputs, loc):
    _index_dtype_check(op, inputs[1], loc)
    return inputs[0].dtype


def _scatter_shape(op, inputs, loc, axis):
    base, index, src = inputs
    (axis,) = check_axes(op, (axis,), len(base.shape), inputs, loc)
    if tuple(index.shape) != tuple(src.shape) or len(index.shape) != len(base.shape) or any(
            i > b for d, (i, b) in enumerate(zip(index.shape, base.shape)) if d != axis):
        raise ShapeError(op, f"index and source must have one shape that fits the base outside "
                             f"dimension {axis} ({_types(inputs)})", loc)
    return tuple(base.shape)


def _scatter_dtype(op, inputs, loc):
    _index_dtype_check(op, inputs[1], loc)
    return _same_dtype(op, (inputs[0], inputs[2]), loc)


def _matmul_shape(op, inputs, loc, **attrs):
    a, b = inputs
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise ShapeError(op, f"operands need at least 2 dims, got {_types(inputs)}", loc)
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(op, f"mat1 and mat2 shapes cannot be multiplied "
                             f"({'x'.join(map(str, a.shape))} and {'x'.join(map(str, b.shape))})", loc)
    batch = broadcast_shapes(op, [_Shaped(a.shape[:-2]), _Shaped(b.shape[:-2])], loc)
    return batch + (a.shape[-2], b.shape[-1])


def _matmul_dtype(op, inputs, loc):
    dt = _same_dtype(op, inputs, loc)
    if dt.is_bool:
        raise DTypeError(op, f"is not implemented for bool operands ({_types(inputs)})", loc)
    return dt


#: the reductions an all_reduce performs across processes (its `reduce` attribute); the index is
#: the op code of the host call (codegen/cpu.py, runtime/hostcalls.py)
ALL_REDUCE_OPS = ("sum", "avg", "max", "min")


def _all_reduce_shape(op, inputs, loc, reduce, group):
    """The input's shape: every process contributes a tensor of one type and receives the result."""
    (x,) = inputs
    if reduce not in ALL_REDUCE_OPS:
        raise IRError(op, f"reduce must be one of {', '.join(ALL_REDUCE_OPS)}, got {reduce!r}", loc)
    if group < 0:
        raise IRError(op, f"group must be a non-negative process group id, got {group}", loc)
    if reduce == "avg" and not x.dtype.is_floating_point:
        raise DTypeError(op, f"reduce='avg' needs a floating-point operand, got {_types(inputs)}", loc)
    return tuple(x.shape)


def _all_reduce_dtype(op, inputs, loc):
    dt = inputs[0].dtype
    if dt.is_bool:
        raise DTypeError(op, f"is not supported on bool operands ({_types(inputs)})", loc)
    return dt


def _cast_shape(op, inputs, loc, **attrs):
    return tuple(inputs[0].shape)


class _Shaped:
    """A bare shape posing as a value for broadcast_shapes."""
    dtype = dtypes.int64

    def __init__(self, shape):
        self.shape = tuple(shape)


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# ---------------------------------------------------------------- fold rules
#
# A fold rule computes the op on constant operands as the kernel would: it receives the
# result dtype and the operands as (Python value, dtype) pairs, and returns the result as a
# Python value, or None to leave the node to the kernel.

def _ufunc(fn, floats_only=False):
    """Fold by a NumPy function on arrays of the operand dtypes, rounded to the result dtype.
    16-bit floats compute in float32 and round once, as their kernels do."""
    def fold(dtype, operands):
        if floats_only and not dtype.is_floating_point:
            return None          # integer division / power: checks and C semantics in the kernel
        args = [np.array(v, dtype=np.float32 if d.is_storage_float else d.np) for v, d in operands]
        with np.errstate(all="ignore"):
            out = fn(*args)
            if dtype.is_storage_float:
                return dtypes.round_to(out, dtype).item()
            return out.astype(dtype.np).item()
    return fold


def _fold_where(dtype, operands):
    return operands[1 if operands[0][0] else 2][0]


def _fold_fill(dtype, operands):
    """A movement of a constant is the same constant of another shape."""
    return operands[0][0]


def _fold_cast(dtype, operands):
    value, src = operands[0]
    if src.is_storage_float:        # a 16-bit constant holds a float32 value: cast its rounded value
        with np.errstate(all="ignore"):
            value = dtypes.round_to(np.float32(value), src).item()
    if dtype.is_int and not _exact_in(value, dtype):
        return None  # truncation, NaN, inf, out of range: leave to the kernel's defined cast
    if dtype.is_storage_float:
        with np.errstate(all="ignore"):
            return dtypes.round_to(np.float32(value), dtype).item()    # via float32, as kernels
    return np.array(value).astype(dtype.np).item()


def _exact_in(value, dt) -> bool:
    """True when `value` is an integer that `dt` holds (casting it needs no rounding rule)."""
    if not float(value).is_integer():
        return False
    info = np.iinfo(dt.np)
    return info.min <= value <= info.max


# ---------------------------------------------------------------- the table

#: attribute value types, as the text parser checks them
INT, INTS, SCALAR, NAME = "an integer", "a list of integers", "a number or a bool", "a name"

#: the shape/dtype rule of an op whose node declares its type (sources; cast's dtype)
DECLARED = "declared at the node"


def declare(name: str, kind: str, arity: int | None, shape: ShapeRule, dtype: DTypeRule, *,
            attrs: dict | None = None, fold: Callable | None = None, grad_name: str | None = None,
            float_only: bool = False, fallible: Callable | None = None, **facts) -> OpDef:
    """Declare one primitive (once): see OpDef. `facts`: bool_operands, unit, commutative,
    involution, noop, compose, identity, effectful."""
    if name in OPS:
        raise ValueError(f"primitive {name!r} declared twice")
    d = OpDef(name, kind, arity, shape, dtype, dict(attrs or {}), fold,
              grad_name or f"{name.capitalize()}Backward0", float_only, fallible, **facts)
    OPS[name] = d
    return d


def _unary_dtype(op, inputs, loc):
    return _float_dtype(op, inputs, loc) if OPS[op].float_only else _numeric_dtype(op, inputs, loc)


_binary_dtype = _unary_dtype


def _ints(dtype) -> bool:
    return dtype.is_int


def _always(dtype) -> bool:
    return True


def _lowest(dt: DType) -> Scalar:
    """The least value of `dt` (-inf for floats): reduce_max's identity."""
    if dt.is_floating_point:
        return float("-inf")
    return False if dt.is_bool else int(np.iinfo(dt.np).min)


def _highest(dt: DType) -> Scalar:
    """The greatest value of `dt` (inf for floats): reduce_min's identity."""
    if dt.is_floating_point:
        return float("inf")
    return True if dt.is_bool else int(np.iinfo(dt.np).max)


def _noop(attrs: dict) -> bool:
    return True


def _sorted_perm(attrs: dict) -> bool:
    return list(attrs["perm"]) == sorted(attrs["perm"])


def _compose_reshapes(inner: dict, outer: dict) -> dict:
    return outer


def _compose_perms(inner: dict, outer: dict) -> dict:
    return {"perm": tuple(inner["perm"][p] for p in outer["perm"])}


# sources: the node declares its shape and dtype
declare("input", "source", 0, DECLARED, DECLARED, attrs={"name": NAME})
declare("param", "source", 0, DECLARED, DECLARED, attrs={"name": NAME})
declare("const", "source", 0, DECLARED, DECLARED, attrs={"value": SCALAR})
declare("iota", "source", 0, DECLARED, DECLARED, attrs={"axis": INT})
declare("rand", "source", 1, DECLARED, DECLARED)          # input: the i64[2] key (seed, offset)

# elementwise unary: name, fold, autograd name, float only
_unary_table: tuple[tuple[str, Callable, str, bool], ...] = (
    ("neg", np.negative, "NegBackward0", False),
    ("exp", np.exp, "ExpBackward0", True),
    ("log", np.log, "LogBackward0", True),
    ("sqrt", np.sqrt, "SqrtBackward0", True),
    ("recip", np.reciprocal, "ReciprocalBackward0", True),
    ("sin", np.sin, "SinBackward0", True),
    ("cos", np.cos, "CosBackward0", True),
    ("tanh", np.tanh, "TanhBackward0", True),
    ("abs", np.abs, "AbsBackward0", False),
    ("floor", np.floor, "FloorBackward0", True),
    ("round", np.round, "RoundBackward0", True),
    ("erf", np.vectorize(math.erf, otypes=[np.float64]), "ErfBackward0", True))
for _name, _fn, _grad, _float_only in _unary_table:
    declare(_name, "unary", 1, _elementwise_shape, _unary_dtype, fold=_ufunc(_fn), grad_name=_grad,
            float_only=_float_only, bool_operands=_name not in ("neg", "abs"), involution=_name == "neg")

# elementwise binary; div and pow fold for floats only (integer ones check in the kernel)
declare("add", "binary", 2, _elementwise_shape, _binary_dtype, fold=_ufunc(np.add), grad_name="AddBackward0",
        unit=0, commutative=True)
declare("sub", "binary", 2, _elementwise_shape, _binary_dtype, fold=_ufunc(np.subtract), grad_name="SubBackward0",
        bool_operands=False, unit=0)
declare("mul", "binary", 2, _elementwise_shape, _binary_dtype, fold=_ufunc(np.multiply), grad_name="MulBackward0",
        unit=1, commutative=True)
declare("div", "binary", 2, _elementwise_shape, _binary_dtype, fold=_ufunc(np.divide, floats_only=True),
        grad_name="DivBackward0", fallible=_ints, bool_operands=False, unit=1)
declare("pow", "binary", 2, _elementwise_shape, _binary_dtype, fold=_ufunc(np.power, floats_only=True),
        grad_name="PowBackward1", fallible=_ints, bool_operands=False)
declare("max", "binary", 2, _elementwise_shape, _binary_dtype, fold=_ufunc(np.maximum),
        grad_name="MaximumBackward0", commutative=True)
declare("min", "binary", 2, _elementwise_shape, _binary_dtype, fold=_ufunc(np.minimum),
        grad_name="MinimumBackward0", commutative=True)
declare("fmod", "binary", 2, _elementwise_shape, _binary_dtype, fold=_ufunc(np.fmod, floats_only=True),  # C's fmod
        grad_name="FmodBackward0", float_only=True)

_compare_table: tuple[tuple[str, Callable], ...] = (
    ("lt", np.less), ("le", np.less_equal), ("eq", np.equal), ("ne", np.not_equal))
for _name, _fn in _compare_table:
    declare(_name, "compare", 2, _elementwise_shape, _bool_dtype, fold=_ufunc(_fn))

declare("where", "where", 3, _where_shape, _where_dtype, fold=_fold_where, grad_name="WhereBackward0")
declare("cast", "cast", 1, _cast_shape, DECLARED, fold=_fold_cast,   # the node declares the target dtype
        grad_name="ToCopyBackward0")

# reductions: each with its identity (an empty reduction's value, where the accumulator starts);
# reducing only axes of size 1 is a no-op
declare("sum", "reduce", 1, _reduce_shape, _numeric_dtype, attrs={"axes": INTS}, grad_name="SumBackward1",
        identity=lambda dt: 0, noop=_noop)
declare("reduce_max", "reduce", 1, _reduce_shape, _numeric_dtype, attrs={"axes": INTS}, grad_name="AmaxBackward0",
        identity=_lowest, noop=_noop)
declare("reduce_min", "reduce", 1, _reduce_shape, _numeric_dtype, attrs={"axes": INTS}, grad_name="AminBackward0",
        identity=_highest, noop=_noop)
declare("prod", "reduce", 1, _reduce_shape, _numeric_dtype, attrs={"axes": INTS}, grad_name="ProdBackward1",
        identity=lambda dt: 1, noop=_noop)

declare("reshape", "movement", 1, _reshape_shape, _same_dtype, attrs={"shape": INTS}, fold=_fold_fill,
        grad_name="ViewBackward0", noop=_noop, compose=_compose_reshapes)
declare("permute", "movement", 1, _permute_shape, _same_dtype, attrs={"perm": INTS}, fold=_fold_fill,
        grad_name="PermuteBackward0", noop=_sorted_perm, compose=_compose_perms)
declare("expand", "movement", 1, _expand_shape, _same_dtype, attrs={"shape": INTS}, fold=_fold_fill,
        grad_name="ExpandBackward0", noop=_noop)
declare("slice", "movement", 1, _slice_shape, _same_dtype, attrs={"starts": INTS, "stops": INTS, "steps": INTS},
        fold=_fold_fill, grad_name="SliceBackward0", noop=_noop)
declare("pad", "movement", 1, _pad_shape, _same_dtype, attrs={"low": INTS, "high": INTS},
        grad_name="ConstantPadNdBackward0")
declare("window", "movement", 1, _window_shape, _same_dtype,
        attrs={"kernel": INTS, "strides": INTS, "dilations": INTS}, fold=_fold_fill, grad_name="UnfoldBackward0")
declare("concat", "movement", None, _concat_shape, _concat_dtype, attrs={"axis": INT}, grad_name="CatBackward0")
declare("gather", "gather", 2, _gather_shape, _gather_dtype, attrs={"axis": INT}, grad_name="GatherBackward0",
        fallible=_always)
declare("scatter_add", "scatter", 3, _scatter_shape, _scatter_dtype, attrs={"axis": INT},
        grad_name="ScatterAddBackward0", fallible=_always)
declare("matmul", "matmul", 2, _matmul_shape, _matmul_dtype, grad_name="MmBackward0")
# a collective: the input reduced across the processes of a group, by a call to the host (the
# runtime's registered function) between kernels; can fail (no process group, a failed call)
declare("all_reduce", "collective", 1, _all_reduce_shape, _all_reduce_dtype, attrs={"reduce": NAME, "group": INT},
        grad_name="AllReduceBackward0", fallible=_always, effectful=True)


def _names(kind: str) -> tuple:
    return tuple(n for n, d in OPS.items() if d.kind == kind)


# the op set by kind, derived from the declarations above
SOURCES = _names("source")
UNARY = _names("unary")
FLOAT_ONLY_UNARY = frozenset(n for n in UNARY if OPS[n].float_only)
BINARY = _names("binary")
FLOAT_ONLY_BINARY = frozenset(n for n in BINARY if OPS[n].float_only)
COMPARE = _names("compare")
REDUCE = _names("reduce")
MOVEMENT = _names("movement")


def infer(op: str, inputs, attrs: dict, loc=None):
    """(shape, dtype) of `op` applied to `inputs`; raises IRError naming op, types and loc.

    Sources and `cast` declare their type at the node instead (see graph.make)."""
    d = OPS.get(op)
    if d is None:
        raise IRError(op, "unknown op", loc)
    if d.arity is not None and len(inputs) != d.arity:
        raise ShapeError(op, f"takes {d.arity} operands, got {len(inputs)}", loc)
    if d.kind == "source" or d.kind == "cast" or isinstance(d.shape, str) or isinstance(d.dtype, str):
        raise IRError(op, "declares its shape and dtype; it has no rule", loc)
    key = (op, tuple([(x.shape, x.dtype) for x in inputs]),
           tuple([(k, type(v), v) for k, v in attrs.items()]) if attrs else ())
    try:
        known = _INFERRED.get(key)
    except TypeError:                       # an attribute that is not hashable: no memo
        return d.shape(op, inputs, loc, **attrs), d.dtype(op, inputs, loc)
    if known is None:
        known = d.shape(op, inputs, loc, **attrs), d.dtype(op, inputs, loc)
        if len(_INFERRED) >= MAX_INFERRED:
            _INFERRED.clear()
        _INFERRED[key] = known
    return known


# The rules are pure functions of the op, the operands' types and the attributes, so their
# results are kept (only successful ones: an error is raised again with its own loc).
_INFERRED: dict = {}
MAX_INFERRED = 1 << 16
