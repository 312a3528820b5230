"""`fusegrad.linalg`: the part of `torch.linalg` that models use: vector_norm, matrix_norm
('fro', 1, -1, inf, -inf; the orders that need singular values raise NotImplementedError) and
norm, which is one or the other as PyTorch decides."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .compound import matrix_norm as _matrix_norm
from .compound import vector_norm as _vector_norm
from .prims import op_error

if TYPE_CHECKING:
    from .tensor import Tensor


def vector_norm(x: Any, ord: Any = 2, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    return _vector_norm(x, ord, dim, keepdim, dtype=dtype)


def matrix_norm(A: Any, ord: Any = "fro", dim: Any = (-2, -1), keepdim: bool = False, *,
                dtype: Any = None) -> Tensor:
    return _matrix_norm(A, ord, dim, keepdim, dtype=dtype)


def norm(A: Any, ord: Any = None, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """torch.linalg.norm: the 2-norm of all elements (ord None), else a matrix norm over two dims
    (a string order, or dim a 2-tuple, or no dim and a 2-D input) or a vector norm."""
    if isinstance(dim, int):
        dim = (dim,)
    if ord is None:
        return _vector_norm(A, 2, dim, keepdim, dtype=dtype)
    if dim is None and A.dim() not in (1, 2):
        raise op_error(RuntimeError, "linalg.norm", "linalg.norm: If dim is not specified but ord is, the input "
                       f"must be 1D or 2D. Got {A.dim()}D.", [A])
    if isinstance(ord, str) or (len(dim) == 2 if dim is not None else A.dim() == 2):
        return _matrix_norm(A, ord, (-2, -1) if dim is None else dim, keepdim, dtype=dtype)
    return _vector_norm(A, ord, dim, keepdim, dtype=dtype)


__all__ = ["matrix_norm", "norm", "vector_norm"]
