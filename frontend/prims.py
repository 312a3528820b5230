"""The primitive layer: one IR primitive on tensors, constants, casts and view building.

`prim` applies one primitive: it asks the IR for a node (shape and dtype inferred now, the
user's source line recorded) and, when autograd records, a grad_fn; the result is built
through the first operand (`_result`, defined by Tensor: see tensor_base.py), so this module,
like the op modules above it (ops, shape_ops, inplace, indexing), never imports Tensor.
A constant is built through a tensor the caller has (`const(..., like=x)`), an iota is a
node (`iota_node`) that the caller wraps the same way (`x._result(node)`); the creation
functions above tensor.py wrap such nodes in Tensors directly.
"""
from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import placement as _placement
from . import trace_hooks as _trace_hooks
from .compiler.ir import Node, fmt_type, make
from .compiler.view import ViewStack
from .grad_fn import Function
from .grad_mode import is_grad_enabled
from .placement import check_devices
from .source import user_loc
from .tensor_base import TensorBase, apply
from .traced_float import TracedFloat


def prim(op: str, tensors: Sequence[TensorBase], attrs: dict | None = None, *, shape: Any = None, dtype: Any = None,
         name: str | None = None) -> Any:
    """One primitive on tensors: a new tensor, built through the first one (the first that
    is not a bare TensorBase constant: see `const`)."""
    check_devices(tensors)
    node, fn = apply(op, [t._value() for t in tensors], attrs, shape=shape, dtype=dtype, record=is_grad_enabled())
    if fn is not None:
        if fn.saves_values and builtins.any(t._storage.inference for t in tensors):
            loc = user_loc()
            raise RuntimeError(INFERENCE_SAVED + (f" (at {loc})" if loc else ""))
        if name is not None:
            fn._name = name
    first = tensors[0]
    if type(first) is TensorBase:      # a bare constant: build through a full operand, if any
        first = next((t for t in tensors if type(t) is not TensorBase), first)
    return first._result(node, fn)


INFERENCE_SAVED = ("Inference tensors cannot be saved for backward. To work around you can make a clone to get a "
                   "normal tensor and use it in autograd.")


def named(t: Any, name: str) -> Any:
    """Give a composite's result PyTorch's grad_fn name (its last primitive's record)."""
    fn = t._value()[1]
    if isinstance(fn, Function):
        fn._name = name
    return t


def iota_node(shape: Sequence[int], axis: int, dtype: Any, device: Any = None) -> Node:
    """Index values along `axis` (free inside a fused kernel), computed on `device`."""
    node = make("iota", (), {"axis": axis}, user_loc(), shape=tuple(shape), dtype=dtype)
    _placement.place(node, device)
    return node


def const(value: Any, dtype: Any, shape: Sequence[int] = (), device: Any = None, *,
          like: TensorBase | None = None) -> Any:
    """A constant tensor of `shape`, computed on `device` (a device object, None: the CPU),
    built through `like` (a Tensor gives a Tensor). Without `like` it is a bare TensorBase:
    a value without Tensor's methods, fit only as an operand of further ops (whose results
    are built through their other, full, operands): pass `like=` (see tensor_base.py)."""
    node = make("const", (), {"value": py_scalar(value, dtype)}, user_loc(), shape=tuple(shape), dtype=dtype)
    _placement.place(node, device)
    return like._result(node) if like is not None else TensorBase._from_value(node)


def py_scalar(value: Any, dtype: Any) -> Any:
    if dtype.is_floating_point:
        return builtins.float(value)
    if dtype.is_bool:
        return builtins.bool(value)
    return builtins.int(value)


def cast(t: Any, dtype: Any) -> Any:
    if t.dtype is dtype:
        return t
    return prim("cast", [t], shape=t.shape, dtype=dtype)


def operand(x: Any, dtype: Any, like: TensorBase | None) -> Any:
    """A tensor operand of `dtype`: tensors are cast, Python scalars become constants (built
    through `like`, the op's tensor operand; outside traces, a bare constant shared by every
    op that uses the same number: `scalar_operand`)."""
    if isinstance(x, TensorBase):
        return cast(x, dtype)
    if isinstance(x, TracedFloat):      # a compiled function's float argument, read at every call
        return cast(x.tensor, dtype)
    if type(x) in _SHAREABLE and not _trace_hooks.active() and (x == x and x != 0 or type(x) is not float):
        return scalar_operand(x, dtype)
    return const(x, dtype, like=like)


_SHAREABLE = (int, float, builtins.bool)
_SCALARS: dict = {}            # (type, value, dtype) -> bare constant
MAX_SCALARS = 4096


def scalar_operand(x: Any, dtype: Any) -> TensorBase:
    """The bare constant `x` of `dtype` (shape ()), made once and shared: IR nodes are
    immutable and a bare constant is never written, so `y + 1.0` need not build a constant
    node, a storage and a tensor each time. Not for float zeros and NaN (0.0 == -0.0, and
    NaN is not equal to itself) nor inside traces (which must see the constants they make)."""
    key = (type(x), x, dtype)
    c = _SCALARS.get(key)
    if c is None:
        if len(_SCALARS) >= MAX_SCALARS:
            _SCALARS.clear()
        node = make("const", (), {"value": py_scalar(x, dtype)}, None, shape=(), dtype=dtype)
        c = _SCALARS[key] = TensorBase._from_value(node)
    return c


def op_error(exc_type: type[Exception], op: str, message: str, tensors: Sequence[Any]) -> Exception:
    """PyTorch's exception for `op` (its type and message), naming the operand types and the
    user's line as the IR's errors do: `floor(b8[2]): "floor_vml_cpu" not implemented for 'Bool' (at m.py:3)`."""
    types = ", ".join(fmt_type(t.shape, t.dtype) for t in tensors)
    loc = user_loc()
    return exc_type(f"{op}({types}): {message}" + (f" (at {loc})" if loc else ""))


def check_not_bool(x: Any, op: str, kernel: str) -> None:
    """PyTorch has no bool kernel for `op`: NotImplementedError naming its CPU kernel."""
    if x.dtype.is_bool:
        raise op_error(NotImplementedError, op, f'"{kernel}" not implemented for \'Bool\'', [x])


def check_operand(x: Any, opname: str) -> None:
    if isinstance(x, (TensorBase, builtins.int, builtins.float, builtins.bool, TracedFloat)) or is_np_scalar(x):
        return
    raise TypeError(f"{opname}(): argument 'other' must be Tensor or Number, not {type(x).__name__}")


def is_np_scalar(x: Any) -> bool:
    return isinstance(x, np.generic)


def torch_name(dt: Any) -> str:
    return {"float32": "Float", "float64": "Double", "float16": "Half", "bfloat16": "BFloat16", "int64": "Long",
            "int32": "Int", "uint8": "Byte", "bool": "Bool"}[dt.name]


def c_name(dt: Any) -> str:
    return {"float32": "float", "float64": "double", "float16": "c10::Half", "bfloat16": "c10::BFloat16",
            "int64": "long int", "int32": "int", "uint8": "unsigned char", "bool": "bool"}[dt.name]


# ---------------------------------------------------------------- views

def make_view(t: TensorBase, op: str, attrs: dict, name: str | None) -> Any:
    """A new tensor viewing `t`'s storage through one more movement primitive."""
    base = t._base if t._base is not None else t
    v = base._wrap(base._storage, base=base, view=t._view + ((op, attrs, name),), track=is_grad_enabled())
    v._value()   # build now: a bad shape raises at the user's line
    return v


def layout(t: TensorBase) -> ViewStack:
    """How `t` sits in its base's storage."""
    st = ViewStack.contiguous(t._storage.node.shape)
    for op, attrs, _ in t._view:
        st = st.apply(op, attrs)
    return st


def reshape_value(t: Any, shape: Sequence[int]) -> Any:
    """`t` as `shape`: a view where strides allow, else a lazy copy (reshape semantics)."""
    shape = tuple(shape)
    if shape == tuple(t.shape):
        return t
    if layout(t).reshape(shape).single is not None:
        return make_view(t, "reshape", {"shape": shape}, "ViewBackward0")
    return prim("reshape", [t], {"shape": shape}, name="UnsafeViewBackward0")
