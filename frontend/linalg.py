"""`fusegrad.linalg`: the part of `torch.linalg` that models use (vector_norm, norm of a vector
or, with ord None or 'fro' over two dims, the Frobenius norm)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .compound import norm as _norm
from .compound import vector_norm as _vector_norm

if TYPE_CHECKING:
    from .tensor import Tensor


def vector_norm(x: Any, ord: Any = 2, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    return _vector_norm(x, ord, dim, keepdim, dtype=dtype)


def norm(A: Any, ord: Any = None, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """torch.linalg.norm for vector orders (and 'fro'); matrix orders other than 'fro' are not supported."""
    if ord is None:
        return _vector_norm(A, 2, dim, keepdim, dtype=dtype)
    if isinstance(ord, str):
        return _norm(A, ord, dim, keepdim, dtype)
    if dim is not None and not isinstance(dim, int) and len(dim) == 2 or dim is None and A.dim() == 2:
        raise NotImplementedError(f"fusegrad: linalg.norm with the matrix order {ord!r} is not supported")
    return _vector_norm(A, ord, dim, keepdim, dtype=dtype)


__all__ = ["norm", "vector_norm"]
