"""Compound math ops that real models use (issue 13), each composed from the math ops:
addmm, baddbmm, addbmm (beta * input + alpha * products), isnan/isinf/isfinite, var/std
(`correction` and the legacy `unbiased`), var_mean/std_mean, norm and vector_norm, and
addcmul, addcdiv, lerp with their in-place forms (inplace.py's machinery: version of the
value, leaf checks, overlap checks).

Like the other op modules, this one imports only the layers below Tensor and builds its
results through its operands; `CompoundMethods`, at the end, holds the Tensor methods.
"""
from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import dtypes as D
from . import ops, shape_ops
from .inplace import _inplace
from .prims import cast, const, named, op_error, operand
from .prims import torch_name as _torch_name
from .tensor_base import TensorBase, normalize_dims

if TYPE_CHECKING:
    from .tensor import Tensor


def _device_of(x: TensorBase) -> Any:
    return None if x.device.type == "cpu" else x.device


# ---------------------------------------------------------------- beta * input + alpha * products

def _same_dtype(op: str, tensors: Sequence[tuple[str, TensorBase]]) -> None:
    (first_name, first), *rest = tensors
    for name, t in rest:
        if t.dtype is not first.dtype:
            raise op_error(RuntimeError, op, f"{first_name} and {name} must have the same dtype, but got "
                           f"{_torch_name(first.dtype)} and {_torch_name(t.dtype)}", [x for _, x in tensors])


def _scaled_sum(op: str, input: TensorBase, product: Any, beta: Any, alpha: Any, name: str) -> Tensor:
    """beta * input + alpha * product, input broadcast to the product's shape; with beta == 0
    input is not read (its NaNs do not propagate), as PyTorch's. For integer tensors beta and
    alpha are truncated to integers, as PyTorch's kernels do."""
    shape = tuple(product.shape)
    bias = shape_ops.expand(input, shape)       # checks that input broadcasts to the result
    scaled = product if alpha == 1 else ops.mul(product, operand(alpha, product.dtype, product))
    if beta == 0:
        return named(shape_ops.clone(scaled) if scaled is product else scaled, name)
    if beta != 1:
        bias = ops.mul(bias, operand(beta, bias.dtype, bias))
    return named(ops.add(bias, scaled), name)


def addmm(input: TensorBase, mat1: TensorBase, mat2: TensorBase, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    """beta * input + alpha * (mat1 @ mat2), input broadcast to the product's shape."""
    for name, m in (("mat1", mat1), ("mat2", mat2)):
        if m.dim() != 2:
            raise op_error(RuntimeError, "addmm", f"{name} must be a matrix, got {m.dim()}-D tensor",
                           [input, mat1, mat2])
    _same_dtype("addmm", [("mat1", mat1), ("mat2", mat2)])
    _same_dtype("addmm", [("self", input), ("mat2", mat2)])
    return _scaled_sum("addmm", input, ops.matmul(mat1, mat2), beta, alpha, "AddmmBackward0")


def _check_batches(op: str, input: TensorBase, batch1: TensorBase, batch2: TensorBase) -> None:
    for name, b in (("batch1", batch1), ("batch2", batch2)):
        if b.dim() != 3:
            raise op_error(RuntimeError, op, f"{name} must be a 3D tensor", [input, batch1, batch2])
    want = [batch1.shape[0], batch1.shape[2]]
    if list(batch2.shape[:2]) != want:
        raise op_error(RuntimeError, op, f"Expected size for first two dimensions of batch2 tensor to be: {want} but "
                       f"got: {list(batch2.shape[:2])}.", [input, batch1, batch2])
    _same_dtype(op, [("batch1", batch1), ("batch2", batch2)])
    _same_dtype(op, [("self", input), ("batch2", batch2)])


def baddbmm(input: TensorBase, batch1: TensorBase, batch2: TensorBase, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    """beta * input + alpha * (batch1 @ batch2) per batch, input broadcast to (b, n, p)."""
    _check_batches("baddbmm", input, batch1, batch2)
    return _scaled_sum("baddbmm", input, ops.matmul(batch1, batch2), beta, alpha, "BaddbmmBackward0")


def addbmm(input: TensorBase, batch1: TensorBase, batch2: TensorBase, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    """beta * input + alpha * sum_b batch1[b] @ batch2[b]: one (n, b*k) @ (b*k, p) matmul."""
    _check_batches("addbmm", input, batch1, batch2)
    b, n, k = batch1.shape
    p = batch2.shape[2]
    left = shape_ops.reshape(shape_ops.permute(batch1, (1, 0, 2)), (n, b * k))
    right = shape_ops.reshape(batch2, (b * k, p))
    return _scaled_sum("addbmm", input, ops.matmul(left, right), beta, alpha, "AddbmmBackward0")


# ---------------------------------------------------------------- classification

def _filled(x: TensorBase, value: bool) -> Tensor:
    return const(value, D.bool_, tuple(x.shape), _device_of(x), like=x)


def isnan(input: TensorBase) -> Tensor:
    return ops.ne(input, input) if input.dtype.is_floating_point else _filled(input, False)


def isinf(input: TensorBase) -> Tensor:
    return ops.eq(ops.abs(input), math.inf) if input.dtype.is_floating_point else _filled(input, False)


def isposinf(input: TensorBase) -> Tensor:
    return ops.eq(input, math.inf) if input.dtype.is_floating_point else _filled(input, False)


def isneginf(input: TensorBase) -> Tensor:
    return ops.eq(input, -math.inf) if input.dtype.is_floating_point else _filled(input, False)


def isfinite(input: TensorBase) -> Tensor:
    """Neither NaN nor infinite: |x| < inf (false for NaN)."""
    return ops.lt(ops.abs(input), math.inf) if input.dtype.is_floating_point else _filled(input, True)


# ---------------------------------------------------------------- variance and norms

def _var_args(x: TensorBase, dim: Any, unbiased: Any, correction: Any, op: str) -> tuple[Any, float]:
    """(dim, correction) from PyTorch's three signatures: (dim, *, correction), the legacy
    (dim, unbiased) and (unbiased)."""
    if isinstance(dim, builtins.bool):
        if unbiased is not None:
            raise TypeError(f"{op}() received an invalid combination of arguments")
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}() received an invalid combination of arguments - got both unbiased and correction")
    if not x.dtype.is_floating_point:
        raise op_error(RuntimeError, op, "std and var only support floating point and complex dtypes", [x])
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return (None if isinstance(dim, (tuple, list)) and not dim else dim), builtins.float(correction)


def _var(x: TensorBase, dim: Any, correction: float, keepdim: bool, op: str) -> tuple[Any, Any]:
    """(variance, mean) over `dim`: sum((x - mean)^2) / max(0, N - correction) (two passes;
    N - correction <= 0 gives inf or NaN, as PyTorch's)."""
    axes = normalize_dims(x, dim, op) if x.dim() else ()
    n = 1
    for d in axes:
        n *= x.shape[d]
    m = ops.mean(x, axes, keepdim=True) if axes else x
    centered = ops.sub(x, m)
    total = ops.sum(ops.mul(centered, centered), axes, keepdim=keepdim) if axes else ops.mul(centered, centered)
    var = ops.div(total, builtins.max(0.0, n - correction))
    mean = m if keepdim or not axes else ops._drop_dims(m, axes, False)
    return var, mean


def var(input: TensorBase, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
        correction: Any = None) -> Tensor:
    dim, c = _var_args(input, dim, unbiased, correction, "var")
    return named(_var(input, dim, c, keepdim, "var")[0], "VarBackward0")


def std(input: TensorBase, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
        correction: Any = None) -> Tensor:
    dim, c = _var_args(input, dim, unbiased, correction, "std")
    return named(ops.sqrt(_var(input, dim, c, keepdim, "std")[0]), "StdBackward0")


def var_mean(input: TensorBase, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
             correction: Any = None) -> tuple[Tensor, Tensor]:
    dim, c = _var_args(input, dim, unbiased, correction, "var_mean")
    v, m = _var(input, dim, c, keepdim, "var_mean")
    return named(v, "VarMeanBackward0"), m


def std_mean(input: TensorBase, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
             correction: Any = None) -> tuple[Tensor, Tensor]:
    dim, c = _var_args(input, dim, unbiased, correction, "std_mean")
    v, m = _var(input, dim, c, keepdim, "std_mean")
    return named(ops.sqrt(v), "StdMeanBackward0"), m


def _safe_root(total: Any, p: float) -> Any:
    """total ** (1 / p), with a zero gradient (not 0 * inf = NaN) where total is 0."""
    zero = ops.eq(total, 0)
    safe = ops.where(zero, 1.0, total)
    root = ops.sqrt(safe) if p == 2 else ops.pow(safe, 1.0 / p)
    return ops.where(zero, 0.0, root)


def vector_norm(x: TensorBase, ord: Any = 2, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """torch.linalg.vector_norm: (sum |x|^ord)^(1/ord) over `dim` (all dims by default);
    inf and -inf: the largest and smallest |x|; 0: the number of nonzeros."""
    if dtype is not None:
        x = cast(x, D.as_dtype(dtype))
    if not x.dtype.is_floating_point:
        raise op_error(RuntimeError, "linalg.vector_norm", "linalg.vector_norm: Expected a floating point or complex "
                       f"tensor as input. Got {_torch_name(x.dtype)}", [x])
    if isinstance(dim, builtins.int):
        dim = (dim,)
    axes = normalize_dims(x, ops._all_if_empty(dim), "linalg.vector_norm") if x.dim() else ()
    p = builtins.float(ord)
    if p == math.inf or p == -math.inf:
        if x.numel() == 0 and builtins.any(x.shape[d] == 0 for d in axes):
            raise op_error(RuntimeError, "linalg.vector_norm", "linalg.vector_norm cannot compute the inf norm on an "
                           "empty tensor because the operation does not have an identity", [x])
        out = (ops.amax if p > 0 else ops.amin)(ops.abs(x), axes, keepdim=keepdim) if axes else ops.abs(x)
        return named(out, "LinalgVectorNormBackward0")
    if p == 0:
        return ops.sum(cast(ops.ne(x, 0), x.dtype), axes, keepdim=keepdim) if axes else cast(ops.ne(x, 0), x.dtype)
    if p == 1:
        body = ops.abs(x)
    elif p == 2:
        body = ops.mul(x, x)
    else:
        body = ops.pow(ops.abs(x), p)
    total = ops.sum(body, axes, keepdim=keepdim) if axes else body
    return named(total if p == 1 else _safe_root(total, p), "LinalgVectorNormBackward0")


def norm(input: TensorBase, p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
    """torch.norm: the vector norm of order p over `dim` (all elements by default); 'fro' is
    the 2-norm over one or two dims. The nuclear norm is not supported."""
    if isinstance(dim, builtins.int):
        dim = (dim,)
    if isinstance(p, str):
        if p == "nuc":
            raise op_error(NotImplementedError, "norm", "fusegrad: the nuclear norm (p='nuc') is not supported",
                           [input])
        if p != "fro":
            raise op_error(RuntimeError, "norm", f"norm(): unknown norm type {p!r}", [input])
        if dim is not None and len(dim) > 2:
            raise op_error(RuntimeError, "norm", f"linalg.matrix_norm: dim must be a 2-tuple. Got {list(dim)}",
                           [input])
        p = 2
    return vector_norm(input, 2 if p is None else p, dim, keepdim, dtype=dtype)


def matrix_norm(A: TensorBase, ord: Any = "fro", dim: Any = (-2, -1), keepdim: bool = False,
                dtype: Any = None) -> Tensor:
    """torch.linalg.matrix_norm for 'fro' and the orders 1, -1, inf, -inf: the largest (smallest)
    sum of absolute values down a column (1) or along a row (inf). Orders 2, -2 and 'nuc' need
    singular values, which fusegrad does not compute: NotImplementedError."""
    op = "linalg.matrix_norm"
    if A.dim() < 2:
        raise op_error(RuntimeError, op, "linalg.matrix_norm: The input tensor A must have at least 2 dimensions.",
                       [A])
    if not (A.dtype if dtype is None else dtype).is_floating_point:
        raise op_error(RuntimeError, op, "linalg.matrix_norm: Expected a floating point or complex tensor as "
                       f"input. Got {_torch_name(A.dtype)}", [A])
    dims = tuple(dim)
    if len(dims) != 2:
        raise op_error(RuntimeError, op, f"linalg.matrix_norm: dim must be a 2-tuple. Got {list(dims)}", [A])
    d0, d1 = (normalize_dims(A, d, op)[0] for d in dims)
    if d0 == d1:
        raise op_error(RuntimeError, op, f"linalg.matrix_norm: dims must be different. Got ({dims[0]}, {dims[1]})",
                       [A])
    x = cast(A, dtype) if dtype is not None else A
    if ord == "fro":
        return vector_norm(x, 2, (d0, d1), keepdim)
    if ord in ("nuc", 2, -2):
        raise op_error(NotImplementedError, op, f"fusegrad: the matrix norm of order {ord!r} needs singular "
                       "values, which fusegrad does not compute", [A])
    if isinstance(ord, str) or ord not in (1, -1, math.inf, -math.inf):
        raise op_error(RuntimeError, op, f"linalg.matrix_norm: Order {ord} not supported.", [A])
    summed, picked = (d0, d1) if builtins.abs(ord) == 1 else (d1, d0)
    sums = ops.sum(ops.abs(x), (summed,), keepdim=True)
    out = (ops.amax if ord > 0 else ops.amin)(sums, (picked,), keepdim=True)
    return out if keepdim else shape_ops.squeeze(out, (d0, d1))


# ---------------------------------------------------------------- pointwise compounds

def addcmul(input: TensorBase, tensor1: TensorBase, tensor2: TensorBase, *, value: Any = 1) -> Tensor:
    """input + value * tensor1 * tensor2 (broadcast, promoted)."""
    dt = D.result_type(input, tensor1, tensor2)
    product = ops.mul(cast(tensor1, dt), cast(tensor2, dt))
    if value != 1:
        product = ops.mul(product, operand(value, dt, product))
    return named(ops.add(cast(input, dt), product), "AddcmulBackward0")


def addcdiv(input: TensorBase, tensor1: TensorBase, tensor2: TensorBase, *, value: Any = 1) -> Tensor:
    """input + value * tensor1 / tensor2 (broadcast, promoted; integer quotients refused)."""
    if not tensor1.dtype.is_floating_point and not tensor2.dtype.is_floating_point:
        raise op_error(RuntimeError, "addcdiv", "Integer division with addcdiv is no longer supported, and in a "
                       "future  release addcdiv will perform a true division of tensor1 and tensor2. The historic "
                       "addcdiv behavior can be implemented as (input + value * torch.trunc(tensor1 / tensor2))"
                       ".to(input.dtype) for integer inputs and as (input + value * tensor1 / tensor2) for float "
                       "inputs. The future addcdiv behavior is just the latter implementation: (input + value * "
                       "tensor1 / tensor2), for all dtypes.", [input, tensor1, tensor2])
    dt = D.result_type(input, tensor1, tensor2)
    quotient = ops.div(cast(tensor1, dt), cast(tensor2, dt))
    if value != 1:
        quotient = ops.mul(quotient, operand(value, dt, quotient))
    return named(ops.add(cast(input, dt), quotient), "AddcdivBackward0")


def lerp(input: TensorBase, end: TensorBase, weight: Any) -> Tensor:
    """input + weight * (end - input), PyTorch's formula: from `end` back where |weight| >= 0.5
    (so weight 1 gives `end` exactly)."""
    tensor_weight = isinstance(weight, TensorBase)
    kernel = "lerp_kernel_tensor" if tensor_weight else "lerp_kernel_scalar"
    operands = [input, end] + ([weight] if tensor_weight else [])
    if not input.dtype.is_floating_point:
        raise op_error(NotImplementedError, "lerp", f'"{kernel}" not implemented for \'{_torch_name(input.dtype)}\'',
                       operands)
    for name, t in (("end", end), ("weight", weight)):
        if isinstance(t, TensorBase) and t.dtype is not input.dtype and (name == "end" or t.dim() > 0):
            raise op_error(RuntimeError, "lerp", f"expected dtype {ops._c_name(input.dtype)} for `{name}` but got "
                           f"dtype {ops._c_name(t.dtype)}", operands)
    diff = ops.sub(end, input)
    if not tensor_weight:
        w = builtins.float(weight)
        out = ops.add(input, ops.mul(diff, w)) if builtins.abs(w) < 0.5 else ops.sub(end, ops.mul(diff, 1.0 - w))
        return named(out, "LerpBackward0")
    weight = cast(weight, input.dtype)      # a 0-d weight of another float dtype (PyTorch takes it)
    near = ops.lt(ops.abs(weight), 0.5)
    out = ops.where(near, ops.add(input, ops.mul(weight, diff)), ops.sub(end, ops.mul(diff, ops.sub(1.0, weight))))
    return named(out, "LerpBackward1")


addcmul_ = _inplace(addcmul, "addcmul_")
addcdiv_ = _inplace(addcdiv, "addcdiv_")
lerp_ = _inplace(lerp, "lerp_")
addmm_ = _inplace(addmm, "addmm_")
baddbmm_ = _inplace(baddbmm, "baddbmm_")
addbmm_ = _inplace(addbmm, "addbmm_")


# ---------------------------------------------------------------- Tensor's methods

class CompoundMethods(TensorBase):
    """Tensor methods of the compound math ops, and their in-place forms."""

    __slots__ = ()

    def addmm(self, mat1: TensorBase, mat2: TensorBase, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
        return addmm(self, mat1, mat2, beta=beta, alpha=alpha)

    def baddbmm(self, batch1: TensorBase, batch2: TensorBase, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
        return baddbmm(self, batch1, batch2, beta=beta, alpha=alpha)

    def addbmm(self, batch1: TensorBase, batch2: TensorBase, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
        return addbmm(self, batch1, batch2, beta=beta, alpha=alpha)

    def addmm_(self, mat1: TensorBase, mat2: TensorBase, *, beta: Any = 1, alpha: Any = 1) -> Any:
        return addmm_(self, mat1, mat2, beta=beta, alpha=alpha)

    def baddbmm_(self, batch1: TensorBase, batch2: TensorBase, *, beta: Any = 1, alpha: Any = 1) -> Any:
        return baddbmm_(self, batch1, batch2, beta=beta, alpha=alpha)

    def addbmm_(self, batch1: TensorBase, batch2: TensorBase, *, beta: Any = 1, alpha: Any = 1) -> Any:
        return addbmm_(self, batch1, batch2, beta=beta, alpha=alpha)

    def isnan(self) -> Tensor:
        return isnan(self)

    def isinf(self) -> Tensor:
        return isinf(self)

    def isposinf(self) -> Tensor:
        return isposinf(self)

    def isneginf(self) -> Tensor:
        return isneginf(self)

    def isfinite(self) -> Tensor:
        return isfinite(self)

    def var(self, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *, correction: Any = None) -> Tensor:
        return var(self, dim, unbiased, keepdim, correction=correction)

    def std(self, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *, correction: Any = None) -> Tensor:
        return std(self, dim, unbiased, keepdim, correction=correction)

    def norm(self, p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
        return norm(self, p, dim, keepdim, dtype)

    def addcmul(self, tensor1: TensorBase, tensor2: TensorBase, *, value: Any = 1) -> Tensor:
        return addcmul(self, tensor1, tensor2, value=value)

    def addcdiv(self, tensor1: TensorBase, tensor2: TensorBase, *, value: Any = 1) -> Tensor:
        return addcdiv(self, tensor1, tensor2, value=value)

    def lerp(self, end: TensorBase, weight: Any) -> Tensor:
        return lerp(self, end, weight)

    def addcmul_(self, tensor1: TensorBase, tensor2: TensorBase, *, value: Any = 1) -> Any:
        return addcmul_(self, tensor1, tensor2, value=value)

    def addcdiv_(self, tensor1: TensorBase, tensor2: TensorBase, *, value: Any = 1) -> Any:
        return addcdiv_(self, tensor1, tensor2, value=value)

    def lerp_(self, end: TensorBase, weight: Any) -> Any:
        return lerp_(self, end, weight)
