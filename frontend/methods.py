"""Tensor methods and operators, bound from the op modules onto the Tensor class.

Keeping the table here leaves tensor.py about what a tensor is, and ops.py / shape_ops.py
about what ops do; each line below is one PyTorch method.
"""
from __future__ import annotations

from . import indexing, inplace, ops, shape_ops
from .tensor import Tensor


def _reflected(fn):
    return lambda self, other: fn(other, self)


def _binary_dunder(fn):
    def method(self, other):
        if not isinstance(other, (Tensor, int, float, bool)) and not ops._is_np_scalar(other):
            return NotImplemented
        return fn(self, other)
    return method


BINARY = {
    "__add__": ops.add, "__sub__": ops.sub, "__mul__": ops.mul, "__truediv__": ops.div,
    "__floordiv__": ops.floor_divide, "__mod__": ops.remainder, "__pow__": ops.pow,
    "__lt__": ops.lt, "__le__": ops.le, "__gt__": ops.gt, "__ge__": ops.ge, "__eq__": ops.eq, "__ne__": ops.ne,
    "__and__": lambda a, b: ops.bitwise("and", a, b), "__or__": lambda a, b: ops.bitwise("or", a, b),
    "__xor__": lambda a, b: ops.bitwise("xor", a, b),
    "__radd__": _reflected(ops.add), "__rsub__": _reflected(ops.sub), "__rmul__": _reflected(ops.mul),
    "__rtruediv__": _reflected(ops.div), "__rfloordiv__": _reflected(ops.floor_divide),
    "__rmod__": _reflected(ops.remainder), "__rpow__": _reflected(ops.pow),
    "__rand__": _reflected(lambda a, b: ops.bitwise("and", a, b)),
    "__ror__": _reflected(lambda a, b: ops.bitwise("or", a, b)),
}

METHODS = {
    "add": ops.add, "sub": ops.sub, "mul": ops.mul, "div": ops.div, "true_divide": ops.div,
    "floor_divide": ops.floor_divide, "remainder": ops.remainder, "fmod": ops.fmod, "pow": ops.pow,
    "maximum": ops.maximum, "minimum": ops.minimum, "lt": ops.lt, "le": ops.le, "gt": ops.gt, "ge": ops.ge,
    "eq": ops.eq, "ne": ops.ne, "logical_not": ops.logical_not, "logical_and": ops.logical_and,
    "logical_or": ops.logical_or, "logical_xor": ops.logical_xor, "where": lambda self, c, y: ops.where(c, self, y),
    "exp": ops.exp, "log": ops.log, "sqrt": ops.sqrt, "rsqrt": ops.rsqrt, "reciprocal": ops.reciprocal,
    "sin": ops.sin, "cos": ops.cos, "tanh": ops.tanh, "erf": ops.erf, "sigmoid": ops.sigmoid, "relu": ops.relu,
    "abs": ops.abs,
    "neg": ops.neg, "negative": ops.neg, "sign": ops.sign, "floor": ops.floor, "ceil": ops.ceil,
    "round": ops.round, "clamp": ops.clamp, "clip": ops.clamp, "square": lambda x: ops.mul(x, x),
    "sum": ops.sum, "mean": ops.mean, "prod": ops.prod, "max": ops.max, "min": ops.min, "amax": ops.amax,
    "amin": ops.amin, "all": ops.all, "any": ops.any, "argmax": ops.argmax, "argmin": ops.argmin,
    "softmax": ops.softmax, "log_softmax": ops.log_softmax, "logsumexp": ops.logsumexp,
    "matmul": ops.matmul, "mm": ops.mm, "bmm": ops.bmm, "dot": ops.dot, "mv": ops.matmul,
    "view": shape_ops.view, "reshape": shape_ops.reshape, "flatten": shape_ops.flatten,
    "permute": shape_ops.permute, "transpose": shape_ops.transpose, "t": shape_ops.t_,
    "expand": shape_ops.expand, "expand_as": shape_ops.expand_as, "squeeze": shape_ops.squeeze,
    "unsqueeze": shape_ops.unsqueeze, "narrow": shape_ops.narrow, "contiguous": shape_ops.contiguous,
    "clone": shape_ops.clone, "gather": lambda x, dim, index: shape_ops.gather_along(
        x, ops.normalize_dims(x, dim, "gather")[0], index),
    "view_as": lambda x, other: shape_ops.view(x, tuple(other.shape)),
    "reshape_as": lambda x, other: shape_ops.reshape(x, tuple(other.shape)),
    "__getitem__": indexing.getitem, "__setitem__": indexing.setitem,
    "__neg__": ops.neg, "__abs__": ops.abs, "__invert__": ops.logical_not, "__pos__": lambda x: x,
    "__matmul__": ops.matmul, "__rmatmul__": _reflected(ops.matmul),
    "index_select": indexing.index_select, "masked_fill": indexing.masked_fill,
    "scatter_add": indexing.scatter_add,
}
METHODS.update(inplace.METHODS)

for _name, _fn in BINARY.items():
    setattr(Tensor, _name, _binary_dunder(_fn))
for _name, _fn in METHODS.items():
    setattr(Tensor, _name, _fn)
PROPERTIES = {
    "T": property(lambda x: shape_ops.permute(x, tuple(reversed(range(x.dim())))) if x.dim() >= 2 else x),
    "mT": property(lambda x: shape_ops.transpose(x, -2, -1)),
}
for _name, _prop in PROPERTIES.items():
    setattr(Tensor, _name, _prop)
