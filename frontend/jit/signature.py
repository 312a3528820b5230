"""Call signatures of compiled functions: flattening argument structures, the key a call is
looked up by (tensor shapes, dtypes, devices, requires_grad; other values, but for float
arguments traced as runtime values; grad mode and the default dtype), and, in words, why a
new key made the function trace again.
"""
from __future__ import annotations

import numpy as np

from ..autograd.grad_mode import is_grad_enabled
from ..compiler.ir import fmt_type
from ..compiler.ir.dtypes import from_short
from ..dtypes import get_default_dtype
from ..tensor import Tensor


def flatten(obj, leaves: list):
    """The shape of a structure of lists/tuples/dicts; its other values go to `leaves`."""
    if isinstance(obj, (list, tuple)):
        return (type(obj), tuple(flatten(x, leaves) for x in obj))
    if isinstance(obj, dict):
        return (dict, tuple((k, flatten(v, leaves)) for k, v in obj.items()))
    leaves.append(obj)
    return None


def unflatten(tree, leaves):
    if tree is None:
        return next(leaves)
    kind, items = tree
    if kind is dict:
        return {k: unflatten(v, leaves) for k, v in items}
    values = [unflatten(x, leaves) for x in items]
    return tuple(values) if kind is tuple else kind(values) if kind is list else kind(*values)


RUNTIME_FLOAT = ("F", "float")      # the key of a float argument traced as a runtime value


def runtime_float(name: str, value, floats) -> bool:
    """Whether argument `name` is traced as a runtime float (traced_float.py): a float, among
    the compiled function's `floats`."""
    return type(value) is float and name in floats


def leaf_key(x, static: bool):
    if isinstance(x, Tensor):
        node, fn = x._value()
        if static:
            return ("static", node.shape, node.dtype.short, x._host_values().tobytes())
        device = x._storage.device
        return ("T", node.shape, node.dtype.short, "cpu" if device is None else str(device), fn is not None)
    try:
        hash(x)
    except TypeError:
        raise TypeError(f"compiled functions take tensors and hashable values; got an unhashable "
                        f"{type(x).__name__}") from None
    return ("V", type(x).__name__, x)


def describe(key) -> str:
    if key == RUNTIME_FLOAT:
        return "a float read at every call"
    if key[0] in ("T", "static"):
        return ("static " if key[0] == "static" else "") + fmt_type(key[1], from_short(key[2]))
    return repr(key[2])


def reason(old, new) -> str:
    """Which argument (or global mode) changed between two signatures, in words."""
    (old_args, (old_grad, old_dtype)), (new_args, (new_grad, new_dtype)) = old, new
    if old_grad != new_grad:
        return f"grad mode changed {'enabled' if old_grad else 'disabled'} → {'enabled' if new_grad else 'disabled'}"
    if old_dtype != new_dtype:
        return f"the default dtype changed {old_dtype} → {new_dtype}"
    for (name, tree, keys), (_, tree2, keys2) in zip(old_args, new_args):
        if tree != tree2 or len(keys) != len(keys2):
            return f"argument {name} changed structure"
        for a, b in zip(keys, keys2):
            if a != b:
                if a[0] == b[0] == "T" and a[1:3] == b[1:3] and a[3] != b[3]:
                    return f"argument {name} changed device {a[3]} → {b[3]}"
                what = "shape" if a[0] == b[0] == "T" and a[1] != b[1] else \
                    "dtype" if a[0] == b[0] == "T" and a[2] != b[2] else \
                    "requires_grad" if a[0] == b[0] == "T" and a[4] != b[4] else "value"
                return f"argument {name} changed {what} {describe(a)} → {describe(b)}"
    return "the arguments changed"


def call_key(fn, args, kwargs):
    """(key, tensor and other leaves per argument, argument names) of a call of compiled
    function `fn` (its signature, positional parameter names and static arguments)."""
    if not kwargs and len(args) == len(fn.param_names) and not fn.static:
        items = zip(fn.param_names, args)       # the common case, without inspect
    else:
        items = fn.signature.bind(*args, **kwargs).arguments.items()
    keys, leaves, names = [], [], []
    floats = fn.runtime_floats
    for name, value in items:
        names.append(name)
        if floats and runtime_float(name, value, floats):
            keys.append((name, None, (RUNTIME_FLOAT,)))      # any value: the program reads it
            leaves.append([np.array(value)])                 # its buffer, a float64 0-d input
            continue
        if isinstance(value, Tensor):
            keys.append((name, None, (leaf_key(value, name in fn.static),)))
            leaves.append([value])
            continue
        arg_leaves = []
        tree = flatten(value, arg_leaves)
        keys.append((name, tree, tuple(leaf_key(x, name in fn.static) for x in arg_leaves)))
        leaves.append(arg_leaves)
    return (tuple(keys), (is_grad_enabled(), get_default_dtype())), leaves, names
