"""Scans and order statistics: cumsum, cumprod, sort, argsort, topk, with PyTorch's semantics.

Everything is composed from primitives, so it is lazy, fuses, compiles inside
`@fusegrad.compile` and differentiates through the existing VJP rules:

- `cumsum(x, dim)` is a masked sum over a pairwise axis: the value at i is
  `sum_j where(j <= i, x_j, 0)`. The pair axis is an `expand` (free inside a kernel) and the
  sum fuses with the mask, so nothing of size n*n is materialized, but each row costs
  O(n^2) operations: fine for the sizes models scan (up to a few thousand along `dim`).
  Its gradient is the reversed cumsum (the VJP of that sum and expand).
- `sort` ranks by comparison: rank_i = #{j: x_j sorts before x_i}, with ties broken by
  index (stable) and NaN larger than every number (as PyTorch); a `scatter_add` of the
  positions by rank gives the indices (int64) and a `gather` the values, whose gradient flows
  to the selected elements. O(n^2) comparisons per row, fused into one reduction.

Like the other op modules, this one builds its results through its operands (`x._result`)
and never imports Tensor; `SortingMethods`, at the end, holds Tensor's methods.
"""
from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from . import dtypes as D
from .ops import _return_type
from .prims import cast, const, iota_node, named, op_error, prim, reshape_value
from .tensor_base import TensorBase, normalize_dims

if TYPE_CHECKING:
    from .tensor import Tensor

SortResult = _return_type("sort")
TopkResult = _return_type("topk")


def _dev(x):
    """The device x's values live on (None: the CPU): shaped constants are made there."""
    return x._storage.device


def _axis(x, dim, op: str) -> int:
    """`dim` of x as a non-negative axis (a 0-d tensor takes dim 0 or -1, as PyTorch)."""
    if not isinstance(dim, builtins.int) or isinstance(dim, builtins.bool):
        raise TypeError(f"{op}(): argument 'dim' must be int, not {type(dim).__name__}")
    (axis,) = normalize_dims(x, dim, op)
    return axis


def _pairs(x, axis: int):
    """x as (A, n, 1, B) ("element i") and (A, 1, n, B) ("element j") views, and the iotas
    of i and j over the (A, n, n, B) pair shape."""
    shape = tuple(x.shape)
    n = shape[axis]
    pair = shape[:axis] + (n, n) + shape[axis + 1:]
    xi = reshape_value(x, shape[:axis] + (n, 1) + shape[axis + 1:])
    xj = reshape_value(x, shape[:axis] + (1, n) + shape[axis + 1:])
    dev = x._storage.device
    i = x._result(iota_node(pair, axis, D.int64, dev))
    j = x._result(iota_node(pair, axis + 1, D.int64, dev))
    return xi.expand(pair), xj.expand(pair), i, j


def _scan(x, axis: int, reduce_op: str, identity: Any, name: str):
    """out_i = reduce_j<=i x_j along `axis`: a masked reduction over the pair axis."""
    if x.dim() == 0:
        return prim("reshape", [x], {"shape": ()}, name=name)
    if x.numel() == 0:
        return prim("reshape", [x], {"shape": tuple(x.shape)}, name=name)
    _, xj, i, j = _pairs(x, axis)
    masked = prim("where", [prim("le", [j, i]), xj, const(identity, x.dtype, tuple(xj.shape), _dev(x), like=x)])
    r = prim(reduce_op, [masked], {"axes": (axis + 1,)})
    return named(reshape_value(r, tuple(x.shape)), name)


def _scan_input(x, dtype, op: str):
    if not isinstance(x, TensorBase):
        raise TypeError(f"{op}(): argument 'input' (position 1) must be Tensor, not {type(x).__name__}")
    if dtype is not None:
        return cast(x, D.as_dtype(dtype))
    return x if x.dtype.is_floating_point else cast(x, D.int64)


def cumsum(x: Any, dim: int, *, dtype: Any = None) -> Tensor:
    """Cumulative sum along `dim` (ints and bools sum as int64, as PyTorch). Costs O(n^2)
    fused operations per row of length n along `dim`, no n*n memory (see the module's doc)."""
    axis = _axis(x, dim, "cumsum")
    return _scan(_scan_input(x, dtype, "cumsum"), axis, "sum", 0, "CumsumBackward0")


def cumprod(x: Any, dim: int, *, dtype: Any = None) -> Tensor:
    """Cumulative product along `dim` (ints and bools as int64), O(n^2) fused operations per row."""
    axis = _axis(x, dim, "cumprod")
    return _scan(_scan_input(x, dtype, "cumprod"), axis, "prod", 1, "CumprodBackward0")


# ---------------------------------------------------------------- sorting

def _before(a, b, descending: bool):
    """Whether value `a` sorts strictly before value `b`: NaN is larger than every number."""
    if descending:
        a, b = b, a
    lt = prim("lt", [a, b])
    if not a.dtype.is_floating_point:
        return lt
    a_nan, b_nan = prim("ne", [a, a]), prim("ne", [b, b])
    return prim("max", [lt, prim("mul", [b_nan, prim("eq", [a_nan, const(False, D.bool_, (), _dev(a), like=a)])])])


def _same(a, b):
    eq = prim("eq", [a, b])
    if not a.dtype.is_floating_point:
        return eq
    return prim("max", [eq, prim("mul", [prim("ne", [a, a]), prim("ne", [b, b])])])


def _ranks(x, axis: int, descending: bool):
    """Each element's position in the stable sorted order along `axis` (int64)."""
    xi, xj, i, j = _pairs(x, axis)
    first = prim("max", [_before(xj, xi, descending), prim("mul", [_same(xj, xi), prim("lt", [j, i])])])
    r = prim("sum", [cast(first, D.int64)], {"axes": (axis + 1,)})
    return reshape_value(r, tuple(x.shape))


def _sort_indices(x, axis: int, descending: bool):
    """The int64 indices that sort x along `axis` (stable): position r holds the i of rank r."""
    rank = _ranks(x, axis, descending)
    positions = x._result(iota_node(tuple(x.shape), axis, D.int64, x._storage.device))
    zeros = const(0, D.int64, tuple(x.shape), _dev(x), like=x)
    return prim("scatter_add", [zeros, rank, positions], {"axis": axis})


def _check_sortable(x, op: str):
    if not isinstance(x, TensorBase):
        raise TypeError(f"{op}(): argument 'input' (position 1) must be Tensor, not {type(x).__name__}")


def sort(x: Any, dim: int = -1, descending: bool = False, stable: bool | None = None) -> Any:
    """(values, indices) of x sorted along `dim`. Always stable (PyTorch's stable=True order,
    which is also a valid answer for stable=False); NaN sorts as the largest value."""
    _check_sortable(x, "sort")
    if x.dim() == 0:
        axis = _axis(x, dim, "sort")
        return SortResult(prim("reshape", [x], {"shape": ()}, name="SortBackward0"),
                          const(0, D.int64, (), _dev(x), like=x))
    axis = _axis(x, dim, "sort")
    if x.dtype.is_bool:
        idx = _sort_indices(cast(x, D.uint8), axis, builtins.bool(descending))
    else:
        idx = _sort_indices(x, axis, builtins.bool(descending))
    values = named(prim("gather", [x, idx], {"axis": axis}), "SortBackward0")
    return SortResult(values, idx)


def argsort(x: Any, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    return sort(x, dim, descending, stable).indices


def msort(x: Any) -> Tensor:
    return sort(x, 0).values


def topk(x: Any, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:
    """(values, indices) of the k largest (smallest) elements along `dim`, in sorted order
    (also for sorted=False, which leaves the order to the implementation)."""
    _check_sortable(x, "topk")
    axis = _axis(x, dim, "topk")
    n = x.shape[axis] if x.dim() else 1
    if not isinstance(k, builtins.int) or isinstance(k, builtins.bool):
        raise TypeError(f"topk(): argument 'k' (position 2) must be int, not {type(k).__name__}")
    if not 0 <= k <= n:
        raise op_error(RuntimeError, "topk", "selected index k out of range", [x])
    values, idx = sort(x, axis if x.dim() else dim, descending=largest)
    if x.dim() == 0:
        return TopkResult(named(values, "TopkBackward0"), idx)
    if k != n:
        starts = (0,) * x.dim()
        stops = tuple(k if d == axis else s for d, s in enumerate(x.shape))
        attrs = {"starts": starts, "stops": stops, "steps": (1,) * x.dim()}
        idx = prim("slice", [idx], attrs)
    values = named(prim("gather", [x, idx], {"axis": axis}), "TopkBackward0")
    return TopkResult(values, idx)


# ---------------------------------------------------------------- Tensor's methods

class SortingMethods(TensorBase):
    """Tensor methods for scans and order statistics (tensor.py composes them into Tensor)."""

    __slots__ = ()

    def cumsum(self, dim: int, *, dtype: Any = None) -> Tensor:
        return cumsum(self, dim, dtype=dtype)

    def cumprod(self, dim: int, *, dtype: Any = None) -> Tensor:
        return cumprod(self, dim, dtype=dtype)

    def sort(self, dim: int = -1, descending: bool = False, stable: bool | None = None) -> Any:
        return sort(self, dim, descending, stable)

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
        return argsort(self, dim, descending, stable)

    def msort(self) -> Tensor:
        return msort(self)

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:
        return topk(self, k, dim, largest, sorted)
