"""scatter, scatter_add, scatter_reduce, index_add, index_fill and their in-place forms, with
PyTorch's rules.

All are compositions of the `scatter_add` primitive (whose kernel checks every index and
raises IndexError naming the user's line for one out of range), `where` and `gather`:

- `scatter_add(x, dim, index, src)`: the primitive on x, src cut to index's shape.
- `scatter(x, dim, index, src)`: the scattered values where some index hits, x elsewhere
  (a hit count scattered alongside). As PyTorch documents, the value written where `index`
  repeats a position is undefined for a tensor `src` (here: the sum of the writes); for a
  scalar `value` every write is the same and the result is exact. Gradients: x's is masked
  where written, src's is a gather of the output gradient (as PyTorch's).
- `reduce="add"` / `"multiply"`: add is scatter_add; multiply is the product over a pairwise
  mask (index position k against output position t along `dim`), O(n*k) fused operations
  per row.
- `scatter_reduce(x, dim, index, src, reduce, include_self)`: sum and mean by scatter_add
  and hit counts; prod, amax and amin by the same pairwise masked reduction (x one more
  candidate when included, so a tie with it shares the gradient evenly, as PyTorch's).
- `index_add(x, dim, index, source, alpha)`: scatter_add of source with the 1-D index
  broadcast along `dim`. `index_fill(x, dim, index, value)`: where over the rows index hits.

In-place forms go through inplace.assign (version counter, the leaf-requires-grad check).
Like the other op modules, this one never imports Tensor; `ScatterMethods` is the mixin.
"""
from __future__ import annotations

import builtins
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from . import dtypes as D
from . import inplace
from .prims import cast, const, iota_node, named, op_error, prim, reshape_value
from .prims import torch_name as _torch_name
from .tensor_base import TensorBase, normalize_dims

if TYPE_CHECKING:
    from .tensor import Tensor


def _dev(x):
    """The device x's values live on (None: the CPU): shaped constants are made there."""
    return x._storage.device


def _check_index(op: str, x, index, src=None) -> None:
    """PyTorch's checks on scatter's index: int64, as many dims as self, and sizes that fit."""
    if not isinstance(index, TensorBase):
        raise TypeError(f"{op}(): argument 'index' must be Tensor, not {type(index).__name__}")
    if index.dtype not in (D.int64, D.int32):     # recent PyTorch takes int32 indices too
        raise op_error(RuntimeError, op, f"{op}(): Expected dtype int32/int64 for index", [x, index])
    if index.numel() == 0:
        return
    if index.dim() != x.dim() or (src is not None and src.dim() != x.dim()):
        raise op_error(RuntimeError, op, "Index tensor must have the same number of dimensions as self tensor", [x])


def _check_sizes(op: str, x, axis: int, index, src=None) -> None:
    bad = builtins.any(i > s for d, (i, s) in enumerate(zip(index.shape, x.shape)) if d != axis)
    if src is not None:
        bad = bad or builtins.any(i > s for i, s in zip(index.shape, src.shape))
    if bad:
        msg = (f"Expected index {list(index.shape)} to be no larger than self {list(x.shape)} apart from "
               f"dimension {axis}")
        if src is not None:
            msg = (f"Expected index {list(index.shape)} to be no larger than self {list(x.shape)} apart from "
                   f"dimension {axis} and to be no larger size than src {list(src.shape)}")
        raise op_error(RuntimeError, op, msg, [x, index] + ([src] if src is not None else []))


def _cut(src, shape):
    """src's leading block of `shape` (index may be smaller than src in every dim)."""
    if tuple(src.shape) == tuple(shape):
        return src
    attrs = {"starts": (0,) * src.dim(), "stops": tuple(shape), "steps": (1,) * src.dim()}
    return prim("slice", [src], attrs)


def _prepare(op: str, x, dim, index, src):
    if not isinstance(x, TensorBase):
        raise TypeError(f"{op}(): argument 'input' (position 1) must be Tensor, not {type(x).__name__}")
    (axis,) = normalize_dims(x, dim, op)
    if isinstance(src, TensorBase):
        _check_index(op, x, index, src)
        index = cast(index, D.int64)
        if src.dtype is not x.dtype:
            raise op_error(RuntimeError, op, f"{op}(): Expected self.dtype to be equal to src.dtype", [x, src])
        _check_sizes(op, x, axis, index, src)
        src = _cut(src, tuple(index.shape))
    else:
        _check_index(op, x, index)
        index = cast(index, D.int64)
        _check_sizes(op, x, axis, index)
    return axis, index, src


def _hits(x, axis, index):
    """How many writes each element of x receives (int64)."""
    zeros = const(0, D.int64, tuple(x.shape), _dev(x), like=x)
    ones = const(1, D.int64, tuple(index.shape), _dev(x), like=x)
    return prim("scatter_add", [zeros, index, ones], {"axis": axis})


def scatter_add(x: Any, dim: int, index: Any, src: Any) -> Tensor:
    axis, index, src = _prepare("scatter_add", x, dim, index, src)
    if not isinstance(src, TensorBase):
        raise TypeError(f"scatter_add(): argument 'src' (position 3) must be Tensor, not {type(src).__name__}")
    if index.numel() == 0:
        return prim("reshape", [x], {"shape": tuple(x.shape)}, name="ScatterAddBackward0")
    return prim("scatter_add", [x, index, src], {"axis": axis}, name="ScatterAddBackward0")


def _pairwise(x, axis, index, src, op: str, identity: Any, with_self: bool = False):
    """The `op` reduction ("prod", "reduce_max", "reduce_min") of the src values written to
    each position of x (`identity` where none is): a mask of index position k against output
    position t along `axis`, reduced over k in one fused kernel (O(n*k) per row). index and
    src are padded to x's extent outside `axis` with an index that matches nothing."""
    shape = tuple(x.shape)
    k = index.shape[axis]
    high = tuple(0 if d == axis else s - i for d, (s, i) in enumerate(zip(shape, index.shape)))
    if builtins.any(high):
        low = (0,) * len(shape)
        one = const(1, D.int64, (), _dev(x), like=x)
        index = prim("sub", [prim("pad", [prim("add", [index, one])], {"low": low, "high": high}), one])
        src = prim("pad", [src], {"low": low, "high": high})
    ishape = tuple(index.shape)
    pair = shape[:axis + 1] + (k,) + shape[axis + 1:]
    idx = reshape_value(index, ishape[:axis] + (1, k) + ishape[axis + 1:]).expand(pair)
    vals = reshape_value(src, ishape[:axis] + (1, k) + ishape[axis + 1:]).expand(pair)
    t = x._result(iota_node(pair, axis, D.int64, x._storage.device))
    masked = prim("where", [prim("eq", [idx, t]), vals, const(identity, x.dtype, pair, _dev(x), like=x)])
    if with_self:      # x as one more candidate: a tie with it shares the gradient evenly (as PyTorch)
        own = reshape_value(x, shape[:axis + 1] + (1,) + shape[axis + 1:])
        masked = prim("concat", [masked, own], {"axis": axis + 1})
    return reshape_value(prim(op, [masked], {"axes": (axis + 1,)}), shape)


def _scatter_multiply(x, axis, index, src):
    """x times the product of the src values written to each position."""
    return prim("mul", [x, _pairwise(x, axis, index, src, "prod", 1)])


def scatter(x: Any, dim: int, index: Any, src: Any = None, value: Any = None, *, reduce: str | None = None) -> Tensor:
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter() missing 1 required positional argument: 'src' or 'value'")
    if reduce not in (None, "add", "multiply"):
        raise op_error(RuntimeError, "scatter", f"reduce argument must be either add or multiply, got {reduce}", [x])
    axis, index, src = _prepare("scatter", x, dim, index, src)
    if index.numel() == 0:
        return prim("reshape", [x], {"shape": tuple(x.shape)}, name="ScatterBackward0")
    if reduce == "add":
        if not isinstance(src, TensorBase):
            src = const(src, x.dtype, tuple(index.shape), _dev(x), like=x)
        return prim("scatter_add", [x, index, src], {"axis": axis}, name="ScatterBackward0")
    if reduce == "multiply":
        if not isinstance(src, TensorBase):
            src = const(src, x.dtype, tuple(index.shape), _dev(x), like=x)
        return named(_scatter_multiply(x, axis, index, src), "ScatterBackward0")
    hit = prim("lt", [const(0, D.int64, (), _dev(x), like=x), _hits(x, axis, index)])
    if isinstance(src, TensorBase):
        zeros = const(0, x.dtype, tuple(x.shape), _dev(x), like=x)
        written = prim("scatter_add", [zeros, index, src], {"axis": axis})
        name = "ScatterBackward0"
    else:
        written = const(src, x.dtype, tuple(x.shape), _dev(x), like=x)
        name = "ScatterBackward1"
    return named(prim("where", [hit, written, x]), name)


_REDUCES = ("sum", "prod", "mean", "amax", "amin")


def _extreme_identity(dtype, op: str):
    """The identity of max (min) in `dtype`: -inf (inf), or the integer type's lowest (highest)."""
    if dtype.is_floating_point:
        return -math.inf if op == "amax" else math.inf
    if dtype.is_bool:
        return op == "amin"
    info = np.iinfo(dtype.np)
    return int(info.min) if op == "amax" else int(info.max)


def scatter_reduce(x: Any, dim: int, index: Any, src: Any, reduce: str, *, include_self: bool = True) -> Tensor:
    """PyTorch's scatter_reduce: the `reduce` ("sum", "prod", "mean", "amax", "amin") of the
    src values written to each position, with x's own value when include_self; positions no
    index hits keep x. sum is a scatter_add; the others a pairwise masked reduction (see
    `_pairwise`); mean of integers rounds down (as PyTorch)."""
    if reduce not in _REDUCES:
        raise op_error(RuntimeError, "scatter_reduce", f"reduce argument must be either sum, prod, mean, amax or amin, "
                       f"got {reduce}", [x])
    if not isinstance(src, TensorBase):
        raise TypeError(f"scatter_reduce(): argument 'src' (position 3) must be Tensor, not {type(src).__name__}")
    axis, index, src = _prepare("scatter_reduce", x, dim, index, src)
    name = "ScatterReduceBackward0"
    if index.numel() == 0:
        return prim("reshape", [x], {"shape": tuple(x.shape)}, name=name)
    counts = _hits(x, axis, index)
    hit = prim("lt", [const(0, D.int64, (), _dev(x), like=x), counts])
    zeros = const(0, x.dtype, tuple(x.shape), _dev(x), like=x)
    if reduce in ("sum", "mean"):
        total = prim("scatter_add", [zeros, index, src], {"axis": axis})
        if include_self:
            total = prim("add", [x, total])
            counts = prim("add", [counts, const(1, D.int64, (), _dev(x), like=x)])
        if reduce == "sum":
            out = total
        else:
            n = cast(prim("max", [counts, const(1, D.int64, (), _dev(x), like=x)]), x.dtype)
            out = prim("div", [total, n]) if x.dtype.is_floating_point else _floor_div(total, n)
    elif reduce == "prod":
        r = _pairwise(x, axis, index, src, "prod", 1)
        out = prim("mul", [x, r]) if include_self else r
    else:
        op = "reduce_max" if reduce == "amax" else "reduce_min"
        out = _pairwise(x, axis, index, src, op, _extreme_identity(x.dtype, reduce), with_self=include_self)
    if not include_self or reduce == "mean":
        out = prim("where", [hit, out, x])
    return named(out, name)


def _floor_div(a, b):
    """Integer a // b rounded toward minus infinity (b > 0)."""
    q = prim("div", [a, b])                 # truncates toward zero
    fix = prim("mul", [prim("lt", [prim("sub", [a, prim("mul", [q, b])]), const(0, a.dtype, (), _dev(a), like=a)]),
                       const(True, D.bool_, (), _dev(a), like=a)])
    return prim("sub", [q, cast(fix, a.dtype)])


def _check_index_vector(op: str, x, axis: int, index, source=None) -> None:
    if not isinstance(index, TensorBase):
        raise TypeError(f"{op}(): argument 'index' must be Tensor, not {type(index).__name__}")
    if index.dim() > 1:
        raise op_error(IndexError, op, f"{op}(): Index is supposed to be a vector", [x, index])
    if index.dtype not in (D.int64, D.int32):
        raise op_error(RuntimeError, op, f"{op}(): Expected dtype int32/int64 for index", [x, index])
    if source is not None:
        if source.dtype is not x.dtype:
            raise op_error(RuntimeError, op, f"{op}(): self ({_torch_name(x.dtype)}) and source "
                           f"({_torch_name(source.dtype)}) must have the same scalar type", [x, source])
        if source.dim() != x.dim() and not (source.dim() == 0 and x.dim() <= 1):
            raise op_error(IndexError, op, f"{op}(): Source/destination tensor must have same slice shapes. "
                           f"Destination slice shape: {list(x.shape)} at dimension {axis} and source slice shape: "
                           f"{list(source.shape)} at dimension 0.", [x, source])
        n = index.numel()
        ssize = source.shape[axis] if source.dim() else 1
        if ssize != n:
            raise op_error(RuntimeError, op, f"{op}_(): Number of indices ({n}) should be equal to "
                           f"source.size(dim): ({ssize}), for dim: {axis}", [x, index, source])
        for d in range(x.dim()):
            if d != axis and source.shape[d] != x.shape[d]:
                raise op_error(RuntimeError, op, f"{op}(): Source/destination tensor must have same slice shapes.",
                               [x, source])


def _along(index, axis: int, shape):
    """A 1-D index as a tensor of `shape` that varies along `axis` only."""
    idx = cast(reshape_value(index, (index.numel(),)), D.int64)
    return reshape_value(idx, tuple(idx.shape[0] if d == axis else 1 for d in range(len(shape)))).expand(shape)


def index_add(x: Any, dim: int, index: Any, source: Any, *, alpha: Any = 1) -> Tensor:
    (axis,) = normalize_dims(x, dim, "index_add")
    _check_index_vector("index_add", x, axis, index, source)
    if x.dim() == 0:
        src = reshape_value(source, (1,))
        flat = reshape_value(x, (1,))
        out = index_add(flat, 0, index, src, alpha=alpha)
        return reshape_value(out, ())
    if alpha != 1:
        source = prim("mul", [source, const(alpha, source.dtype, (), _dev(source), like=source)])
    shape = tuple(source.shape)
    if index.numel() == 0:
        return prim("reshape", [x], {"shape": tuple(x.shape)}, name="IndexAddBackward0")
    return prim("scatter_add", [x, _along(index, axis, shape), source], {"axis": axis}, name="IndexAddBackward0")


def index_fill(x: Any, dim: int, index: Any, value: Any) -> Tensor:
    (axis,) = normalize_dims(x, dim, "index_fill")
    _check_index_vector("index_fill", x, axis, index)
    if isinstance(value, TensorBase) and value.dim() != 0:
        raise op_error(RuntimeError, "index_fill", "index_fill_ only supports a 0-dimensional value tensor, but got "
                       f"tensor with {value.dim()} dimension(s).", [x, value])
    if index.numel() == 0:
        return prim("reshape", [x], {"shape": tuple(x.shape)}, name="IndexFillBackward0")
    if x.dim() == 0:
        return reshape_value(index_fill(reshape_value(x, (1,)), 0, index, value), ())
    n = x.shape[axis]
    idx = cast(reshape_value(index, (index.numel(),)), D.int64)
    zero, size = const(0, D.int64, (), _dev(x), like=idx), const(n, D.int64, (), _dev(x), like=idx)
    idx = prim("where", [prim("lt", [idx, zero]), prim("add", [idx, size]), idx])
    counts = prim("scatter_add", [const(0, D.int64, (n,), _dev(x), like=x), idx,
                                   const(1, D.int64, (idx.numel(),), _dev(x), like=x)],
                  {"axis": 0})
    mask = reshape_value(prim("lt", [const(0, D.int64, (), _dev(x), like=x), counts]),
                         tuple(n if d == axis else 1 for d in range(x.dim())))
    fill = value if isinstance(value, TensorBase) else const(value, x.dtype, (), _dev(x), like=x)
    fill = cast(fill, x.dtype)
    return named(prim("where", [mask.expand(tuple(x.shape)), fill.expand(tuple(x.shape)), x]), "IndexFillBackward0")


# ---------------------------------------------------------------- in-place forms

def scatter_(x: Any, dim: int, index: Any, src: Any = None, value: Any = None, *, reduce: str | None = None) -> Any:
    return inplace.assign(x, scatter(x, dim, index, src, value, reduce=reduce), "scatter_")


def scatter_reduce_(x: Any, dim: int, index: Any, src: Any, reduce: str, *, include_self: bool = True) -> Any:
    return inplace.assign(x, scatter_reduce(x, dim, index, src, reduce, include_self=include_self), "scatter_reduce_")


def scatter_add_(x: Any, dim: int, index: Any, src: Any) -> Any:
    return inplace.assign(x, scatter_add(x, dim, index, src), "scatter_add_")


def index_add_(x: Any, dim: int, index: Any, source: Any, *, alpha: Any = 1) -> Any:
    return inplace.assign(x, index_add(x, dim, index, source, alpha=alpha), "index_add_")


def index_fill_(x: Any, dim: int, index: Any, value: Any) -> Any:
    return inplace.assign(x, index_fill(x, dim, index, value), "index_fill_")


# ---------------------------------------------------------------- Tensor's methods

class ScatterMethods(TensorBase):
    """Tensor's scatter/index_add/index_fill methods and their in-place forms."""

    __slots__ = ()

    def scatter(self, dim: int, index: Tensor, src: Any = None, value: Any = None, *,
                reduce: str | None = None) -> Tensor:
        return scatter(self, dim, index, src, value, reduce=reduce)

    def scatter_(self, dim: int, index: Tensor, src: Any = None, value: Any = None, *,
                 reduce: str | None = None) -> Any:
        return scatter_(self, dim, index, src, value, reduce=reduce)

    def scatter_add(self, dim: int, index: Tensor, src: Tensor) -> Tensor:
        return scatter_add(self, dim, index, src)

    def scatter_add_(self, dim: int, index: Tensor, src: Tensor) -> Any:
        return scatter_add_(self, dim, index, src)

    def scatter_reduce(self, dim: int, index: Tensor, src: Tensor, reduce: str, *, include_self: bool = True) -> Tensor:
        return scatter_reduce(self, dim, index, src, reduce, include_self=include_self)

    def scatter_reduce_(self, dim: int, index: Tensor, src: Tensor, reduce: str, *, include_self: bool = True) -> Any:
        return scatter_reduce_(self, dim, index, src, reduce, include_self=include_self)

    def index_add(self, dim: int, index: Tensor, source: Tensor, *, alpha: Any = 1) -> Tensor:
        return index_add(self, dim, index, source, alpha=alpha)

    def index_add_(self, dim: int, index: Tensor, source: Tensor, *, alpha: Any = 1) -> Any:
        return index_add_(self, dim, index, source, alpha=alpha)

    def index_fill(self, dim: int, index: Tensor, value: Any) -> Tensor:
        return index_fill(self, dim, index, value)

    def index_fill_(self, dim: int, index: Tensor, value: Any) -> Any:
        return index_fill_(self, dim, index, value)
