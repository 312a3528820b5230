"""`nn.functional`: activations, normalization, embedding, padding, linear, dropout, one_hot and the
losses, as PyTorch's.

Every function is a composition of frontend ops, so autograd needs no rule of its own: the
compiler's VJP rules differentiate the primitives. A composite's last op takes PyTorch's
grad_fn name (`ops.named`), and the formulas are the numerically stable ones: log-softmax
through log-sum-exp, BCE with logits through log_sigmoid. The two BCE losses take PyTorch's
own input gradients instead (see `_with_input_grad`), finite where the formula's are not.
"""
from __future__ import annotations

import math
import numbers
import types
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import dtypes as D
from .. import indexing, ops, shape_ops, trace_hooks
from ..autograd.grad_mode import is_grad_enabled, no_grad
from ..compound import vector_norm
from ..creation import full, iota
from ..inplace import deferred
from ..random import rand_tensor
from ..source import errors_at_user_line, warn
from .attention import scaled_dot_product_attention  # noqa: F401  (attention, in attention.py)
from .convolution import (  # noqa: F401  (convolution and pooling, on the window view)
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    conv1d,
    conv2d,
    conv_transpose1d,
    conv_transpose2d,
    max_pool1d,
    max_pool1d_with_indices,
    max_pool2d,
    max_pool2d_with_indices,
)
from .upsampling import interpolate  # noqa: F401  (interpolate, in upsampling.py)

if TYPE_CHECKING:
    from ..tensor import Tensor

# ---------------------------------------------------------------- activations


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return input.relu_() if inplace else ops.relu(input)


def sigmoid(input: Tensor) -> Tensor:
    return ops.sigmoid(input)


def tanh(input: Tensor) -> Tensor:
    return ops.tanh(input)


def _softmax_dim(name: str, ndim: int) -> int:
    warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X as "
         "an argument.")
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: D.DType | None = None) -> Tensor:
    if dim is None:
        dim = _softmax_dim("softmax", input.dim())
    return ops.softmax(input, dim, dtype=dtype)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: D.DType | None = None) -> Tensor:
    if dim is None:
        dim = _softmax_dim("log_softmax", input.dim())
    return ops.log_softmax(input, dim, dtype=dtype)


def _result(input: Tensor, out: Tensor, inplace: bool) -> Tensor:
    """`out`, or written into `input` when the caller asked for the in-place form."""
    return input.copy_(out) if inplace else out


def _safe(condition: Tensor, x: Tensor, fill: float) -> Tensor:
    """`x` with `fill` where `condition` holds: the branch a `where` discards gets an argument
    that keeps its value and its gradient finite (0 * inf would make the kept branch's gradient NaN)."""
    return ops.where(condition, fill, x)


def _log1p(e: Tensor) -> Tensor:
    """log(1 + e), accurate for small e: log(u) e / (u - 1) with u = 1 + e, or e where u rounds to 1."""
    u = ops.add(e, 1.0)
    at_one = ops.eq(u, 1.0)
    u_safe = _safe(at_one, u, 2.0)
    return ops.where(at_one, e, ops.div(ops.mul(ops.log(u_safe), e), ops.sub(u_safe, 1.0)))


def _expm1(x: Tensor) -> Tensor:
    """exp(x) - 1, accurate for small x (Kahan): (u - 1) x / log(u) with u = exp(x), x where u
    rounds to 1, -1 where it rounds to 0; differentiable, with finite gradients everywhere."""
    u = ops.exp(x)
    special = ops.logical_or(ops.eq(u, 1.0), ops.eq(u, 0.0))
    u_safe = _safe(special, u, 2.0)
    x_safe = _safe(special, x, math.log(2.0))
    kahan = ops.div(ops.mul(ops.sub(u_safe, 1.0), x_safe), ops.log(u_safe))
    return ops.where(ops.eq(u, 1.0), x, ops.where(ops.eq(u, 0.0), -1.0, kahan))


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x Phi(x) = x (1 + erf(x / sqrt 2)) / 2, or with approximate='tanh'
    x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) / 2."""
    if approximate == "none":
        cdf = ops.mul(ops.add(ops.erf(ops.mul(input, math.sqrt(0.5))), 1.0), 0.5)
    elif approximate == "tanh":
        cube = ops.mul(ops.mul(input, input), input)
        inner = ops.mul(ops.add(input, ops.mul(cube, 0.044715)), math.sqrt(2.0 / math.pi))
        cdf = ops.mul(ops.add(ops.tanh(inner), 1.0), 0.5)
    else:
        raise RuntimeError("approximate argument must be either none or tanh.")
    return ops.named(ops.mul(input, cdf), "GeluBackward0")


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x sigmoid(x)."""
    return _result(input, ops.named(ops.mul(input, ops.sigmoid(input)), "SiluBackward0"), inplace)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x where x > 0, negative_slope * x elsewhere."""
    out = ops.where(ops.gt(input, 0), input, ops.mul(input, negative_slope))
    return _result(input, ops.named(out, "LeakyReluBackward0"), inplace)


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    return leaky_relu(input, negative_slope, inplace=True)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x where x > 0, alpha (exp(x) - 1) elsewhere."""
    negative = ops.le(input, 0)
    out = ops.where(negative, ops.mul(_expm1(_safe(ops.logical_not(negative), input, 0.0)), alpha), input)
    return _result(input, ops.named(out, "EluBackward0"), inplace)


def elu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    return elu(input, alpha, inplace=True)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, and x where beta x > threshold (PyTorch's linear regime)."""
    scaled = ops.mul(input, beta)
    linear = ops.gt(scaled, threshold)
    z = _safe(linear, scaled, 0.0)
    # log1p(exp(z)), as z + log1p(exp(-z)) for z > 0: no overflow, accurate for very negative z
    positive = ops.gt(z, 0)
    z_pos, z_neg = ops.where(positive, z, 0.0), ops.where(positive, 0.0, z)
    soft = ops.where(positive, ops.add(z_pos, _log1p(ops.exp(ops.neg(z_pos)))), _log1p(ops.exp(z_neg)))
    out = ops.where(linear, input, ops.div(soft, beta))
    return ops.named(out, "SoftplusBackward0")


# ---------------------------------------------------------------- layers


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight.T (+ bias), leading dims folded into one matrix product as PyTorch does."""
    if input.dim() == 2:
        out = ops.matmul(input, weight.t())
        return out if bias is None else ops.named(ops.add(out, bias), "AddmmBackward0")
    lead = tuple(input.shape[:-1])
    flat = shape_ops.reshape_value(input, (math.prod(lead), input.shape[-1]))
    out = ops.matmul(flat, weight.t())
    if bias is not None:
        out = ops.add(out, bias)
    name = "ViewBackward0" if bias is not None else "UnsafeViewBackward0" if lead else "SqueezeBackward4"
    return shape_ops.make_view(out, "reshape", {"shape": lead + (weight.shape[0],)}, name)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p), in training mode.

    The mask is drawn inside the fused kernel by the IR's `rand` op from fusegrad's Philox
    stream (the numbers `fusegrad.rand` gives at the same stream position), so a step with
    dropout stays one cached program: only the 16-byte key changes between steps."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    with no_grad():
        if p == 1.0:
            scale = ops.const(0.0, input.dtype, tuple(input.shape))
        else:
            u = rand_tensor(tuple(input.shape), input.dtype)
            scale = ops.where(ops.lt(u, 1.0 - p), 1.0 / (1.0 - p), 0.0)
    return input.mul_(scale) if inplace else ops.mul(input, scale)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    if tensor.dtype is not D.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if num_classes == -1:
        num_classes = int(ops.amax(tensor).item()) + 1 if tensor.numel() else 0
    shape = tuple(tensor.shape) + (num_classes,)
    column = shape_ops.reshape_value(tensor, tuple(tensor.shape) + (1,))
    return ops.cast(ops.eq(column, iota(shape, len(shape) - 1)), D.int64)


# ---------------------------------------------------------------- normalization


def _shape_list(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _normalized_shape(normalized_shape: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(normalized_shape, numbers.Integral):
        return (int(normalized_shape),)
    return tuple(int(d) for d in normalized_shape)  # type: ignore[union-attr]


def _check_normalized(input: Tensor, shape: tuple[int, ...], params: dict[str, Tensor | None], star: str) -> None:
    """PyTorch's layer_norm / rms_norm argument checks (`star` is how the expected shape begins)."""
    if not shape:
        raise RuntimeError("Expected normalized_shape to be at least 1-dimensional, i.e., containing at least one "
                           "element, but got normalized_shape = []")
    for name, param in params.items():
        if param is not None and tuple(param.shape) != shape:
            raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but got {name} of shape "
                               f"{_shape_list(param.shape)} and normalized_shape = {_shape_list(shape)}")
    if input.dim() < len(shape) or tuple(input.shape[input.dim() - len(shape):]) != shape:
        raise RuntimeError(f"Given normalized_shape={_shape_list(shape)}, expected input with shape "
                           f"[{star}{', '.join(str(d) for d in shape)}], but got input of size"
                           f"{_shape_list(input.shape)}")


def _moments(x: Tensor, dims: tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, x - mean and the biased variance over `dims` (kept as size-1 dims): PyTorch's
    `var(correction=0)` as the mean of squared deviations, the deviations kept for the caller."""
    mean = ops.mean(x, dims, keepdim=True)
    centered = ops.sub(x, mean)
    return mean, centered, ops.mean(ops.mul(centered, centered), dims, keepdim=True)


def _affine(x: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    if weight is not None:
        x = ops.mul(x, weight)
    if bias is not None:
        x = ops.add(x, bias)
    return x


def _widened(t: Tensor | None, dt: D.DType) -> Tensor | None:
    """A 16-bit parameter of a 16-bit input, as float32 for the computation inside."""
    return ops.cast(t, D.float32) if t is not None and t.dtype is dt else t


def layer_norm(input: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last len(normalized_shape) dims
    (biased variance)."""
    shape = _normalized_shape(normalized_shape)
    _check_normalized(input, shape, {"weight": weight, "bias": bias}, "*, ")
    if input.dtype.is_storage_float:      # float32 inside, one rounding (as PyTorch's 16-bit kernels)
        w, b = (_widened(t, input.dtype) for t in (weight, bias))
        out = ops.cast(layer_norm(ops.cast(input, D.float32), shape, w, b, eps), input.dtype)
        return ops.named(out, "NativeLayerNormBackward0")
    dims = tuple(range(input.dim() - len(shape), input.dim()))
    _, centered, var = _moments(input, dims)
    out = _affine(ops.mul(centered, ops.rsqrt(ops.add(var, eps))), weight, bias)
    return ops.named(out, "NativeLayerNormBackward0")


def rms_norm(input: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
             eps: float | None = None) -> Tensor:
    """x / sqrt(mean(x^2) + eps) * weight over the last len(normalized_shape) dims; eps=None is
    the machine epsilon of input's dtype."""
    shape = _normalized_shape(normalized_shape)
    _check_normalized(input, shape, {"weight": weight}, "*")
    if eps is None:
        eps = D.eps(input.dtype) if input.dtype.is_floating_point else 0.0
    if input.dtype.is_storage_float:      # float32 inside, one rounding
        return ops.cast(rms_norm(ops.cast(input, D.float32), shape, _widened(weight, input.dtype), eps), input.dtype)
    dims = tuple(range(input.dim() - len(shape), input.dim()))
    out = ops.mul(input, ops.rsqrt(ops.add(ops.mean(ops.mul(input, input), dims, keepdim=True), eps)))
    return out if weight is None else ops.mul(out, weight)


def _verify_batch_size(size: Sequence[int]) -> None:
    if math.prod([size[0]] + list(size[2:])) == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {size}")


def _per_channel(t: Tensor, rank: int) -> Tensor:
    """A (C,) tensor shaped (1, C, 1, ...) to broadcast along dim 1 of a rank-`rank` input."""
    return shape_ops.reshape_value(t, (1, t.shape[0]) + (1,) * (rank - 2))


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalize each sample's channels in `num_groups` groups (mean and biased variance per
    group), then scale and shift per channel."""
    if input.dim() < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {input.dim()}")
    n, c = input.shape[0], input.shape[1]
    _verify_batch_size([n * c // num_groups, num_groups] + list(input.shape[2:]))
    if c % num_groups != 0:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input of "
                           f"shape {_shape_list(input.shape)} and num_groups={num_groups}")
    for name, param in (("weight", weight), ("bias", bias)):
        if param is not None and (param.dim() != 1 or param.numel() != c):
            raise RuntimeError(f"Expected {name} to be a vector of size equal to the number of channels in input, "
                               f"but got {name} of shape {_shape_list(param.shape)} and input of shape "
                               f"{_shape_list(input.shape)}")
    per_group = c // num_groups * math.prod(input.shape[2:])
    grouped = shape_ops.reshape_value(input, (n, num_groups, per_group))
    _, centered, var = _moments(grouped, (2,))
    out = shape_ops.reshape_value(ops.mul(centered, ops.rsqrt(ops.add(var, eps))), tuple(input.shape))
    rank = input.dim()
    out = _affine(out, None if weight is None else _per_channel(weight, rank),
                  None if bias is None else _per_channel(bias, rank))
    return ops.named(out, "NativeGroupNormBackward0")


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float | Tensor = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Normalize per channel (dim 1) over the batch and spatial dims.

    In training, with the batch's mean and biased variance; the running statistics, when
    given, are updated in place: running = (1 - momentum) running + momentum batch, the
    variance unbiased (n / (n - 1)). Otherwise with the running statistics. `momentum` may be
    a 0-dim tensor (BatchNorm's cumulative average passes 1 / num_batches_tracked so)."""
    if training:
        _verify_batch_size(input.size())
    if training and eps <= 0.0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    if eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    rank = input.dim()
    c = input.size(1) if training or rank >= 2 else 0     # PyTorch's errors for a 1-D input
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and t.numel() != c:
            raise RuntimeError(f"{name} should contain {c} elements not {t.numel()}")
    if training:
        dims = (0,) + tuple(range(2, rank))
        mean, centered, var = _moments(input, dims)
        if running_mean is not None or running_var is not None:
            _update_running_stats(running_mean, running_var, mean, var, input.numel() // c, momentum)
    else:
        if running_mean is None:
            raise RuntimeError("running_mean must be defined in evaluation mode")
        if running_var is None:
            raise RuntimeError("running_var must be defined in evaluation mode")
        centered = ops.sub(input, _per_channel(running_mean, rank))
        var = _per_channel(running_var, rank)
    out = ops.mul(centered, ops.rsqrt(ops.add(var, eps)))
    out = _affine(out, None if weight is None else _per_channel(weight, rank),
                  None if bias is None else _per_channel(bias, rank))
    return ops.named(out, "NativeBatchNormBackward0")


def _update_running_stats(running_mean: Tensor | None, running_var: Tensor | None, mean: Tensor, var: Tensor,
                          n: int, momentum: float | Tensor) -> None:
    """running = (1 - momentum) running + momentum batch, in place, both in one program; the
    variance's batch value is unbiased (n / (n - 1))."""
    keep = 1.0 - momentum if isinstance(momentum, (int, float)) else ops.sub(1.0, momentum)
    unbiased = ops.mul(var, n / (n - 1) if n > 1 else math.nan)
    with no_grad(), deferred():
        for running, batch in ((running_mean, mean), (running_var, unbiased)):
            if running is not None:
                batch = shape_ops.reshape_value(batch.detach(), tuple(running.shape))
                running.copy_(ops.add(ops.mul(running, keep), ops.mul(batch, momentum)))


# ---------------------------------------------------------------- embedding


def _check_padding_idx(padding_idx: int | None, num_embeddings: int) -> int | None:
    if padding_idx is None:
        return None
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise AssertionError("Padding_idx must be within num_embeddings")
    return padding_idx % num_embeddings


def _check_indices(input: Tensor, num_embeddings: int) -> Tensor:
    """The indices, checked as PyTorch checks them: eagerly on the host; in a compiled function
    (no host reads) by the gather's own bounds check, negative indices made out of range."""
    if input.dtype not in (D.int64, D.int32):
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the following scalar types: "
                           f"Long, Int; but got torch.{ops._torch_name(input.dtype)}Tensor instead (while checking "
                           "arguments for embedding)")
    flat = shape_ops.reshape_value(input, (input.numel(),))
    if trace_hooks.active():
        return ops.where(ops.lt(flat, 0), num_embeddings, flat)
    values = input.detach().cpu().numpy()
    if values.size and (values.min() < 0 or values.max() >= num_embeddings):
        raise IndexError("index out of range in self")
    return flat


def _embedding_renorm_(weight: Tensor, flat: Tensor, max_norm: float, norm_type: float) -> None:
    """Rescale, in place, the rows of `weight` that `flat` looks up and whose norm exceeds
    max_norm to norm max_norm (scale max_norm / (norm + 1e-7), PyTorch's embedding_renorm_)."""
    with no_grad():
        rows = weight.shape[0]
        used = indexing.scatter_add(ops.const(0.0, weight.dtype, (rows,), device=weight.device), 0, flat,
                                    ops.const(1.0, weight.dtype, tuple(flat.shape), device=weight.device))
        norms = vector_norm(weight.detach(), norm_type, dim=1)
        scale = ops.where(ops.logical_and(ops.gt(used, 0), ops.gt(norms, max_norm)),
                          ops.div(max_norm, ops.add(norms, 1e-7)), 1.0)
        weight.mul_(shape_ops.reshape_value(scale, (rows, 1)))


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None, max_norm: float | None = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of `weight` picked by the integer `input`: shape input.shape + (embedding_dim,).
    The padding_idx row gets no gradient; with scale_grad_by_freq, each row's gradient is
    divided by how often the batch looks it up."""
    if sparse:
        raise NotImplementedError("fusegrad has no sparse tensors: embedding(sparse=True) is not supported")
    rows = weight.shape[0]
    padding_idx = _check_padding_idx(padding_idx, rows)
    flat = _check_indices(input, rows)
    if max_norm is not None:
        _embedding_renorm_(weight, flat, max_norm, norm_type)
    picked = indexing.index_select(weight, 0, flat)
    if scale_grad_by_freq and weight.requires_grad and is_grad_enabled():
        # value: the picked rows; gradient: divided by how often each row is looked up
        counts = indexing.scatter_add(ops.const(0.0, weight.dtype, (rows,), device=weight.device), 0, flat,
                                      ops.const(1.0, weight.dtype, tuple(flat.shape), device=weight.device))
        scale = shape_ops.reshape_value(ops.reciprocal(indexing.index_select(counts, 0, flat)), (flat.shape[0], 1))
        fixed = picked.detach()
        picked = ops.add(fixed, ops.mul(ops.sub(picked, fixed), scale))
    if padding_idx is not None and weight.requires_grad and is_grad_enabled():
        # the padding row's value, without gradient
        not_pad = shape_ops.reshape_value(ops.ne(flat, padding_idx), (flat.shape[0], 1))
        picked = ops.where(not_pad, picked, picked.detach())
    return shape_ops.make_view(picked, "reshape", {"shape": tuple(input.shape) + (weight.shape[1],)},
                               "EmbeddingBackward0")


# ---------------------------------------------------------------- padding


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad (or, with negative sizes, crop) the last len(pad) // 2 dims: pad = (last_left,
    last_right, second_last_left, ...). Constant mode only."""
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if mode != "constant":
        raise NotImplementedError(f"F.pad: mode '{mode}' is not supported by fusegrad yet (only 'constant')")
    pad = [int(p) for p in pad]
    if len(pad) % 2 != 0:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) // 2 > input.dim():
        raise RuntimeError(f"Padding length should be less than or equal to two times the input dimension but got "
                           f"padding length {len(pad)} and input of dimension {input.dim()}")
    out = input
    for i in range(len(pad) // 2):
        axis = input.dim() - 1 - i
        left, right = pad[2 * i], pad[2 * i + 1]
        size = out.shape[axis]
        if size + left + right < 0:
            raise RuntimeError(f"The input size {size}, plus negative padding {left} and {right} resulted in a "
                               f"negative output size, which is invalid. Check dimension {axis} of your input.")
        start, stop = max(-left, 0), size - max(-right, 0)
        if start or stop != size:
            out = shape_ops.narrow(out, axis, start, max(stop - start, 0))
        pieces = []
        for amount in (left, right):
            shape = list(out.shape)
            shape[axis] = max(amount, 0)
            pieces.append(full(tuple(shape), 0.0 if value is None else value, dtype=out.dtype, device=out.device))
        if left > 0 or right > 0:
            out = shape_ops.cat([pieces[0], out, pieces[1]], axis)
    if out is input:
        out = shape_ops.clone(input)
    return ops.named(out, "ConstantPadNdBackward0")


# ---------------------------------------------------------------- loss helpers


def _reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """The reduction mode, from the legacy `size_average`/`reduce` flags when either is given."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        return "mean" if size_average and reduce else "sum" if reduce else "none"
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return ops.mean(loss)
    if reduction == "sum":
        return ops.sum(loss)
    return loss


def _warn_size(input: Tensor, target: Tensor) -> None:
    if tuple(target.shape) != tuple(input.shape):
        warn(f"Using a target size ({target.size()}) that is different to the input size ({input.size()}). "
             "This will likely lead to incorrect results due to broadcasting. "
             "Please ensure they have the same size.")


def _pointwise_loss(errors: Tensor, reduction: str, weight: Tensor | None) -> Tensor:
    """Reduce elementwise `errors`; with weights, the mean is the weighted mean (PyTorch's)."""
    if weight is None:
        return _reduce(errors, reduction)
    if tuple(weight.shape) != tuple(errors.shape):
        raise ValueError("Weights and input must have the same size.")
    weighted = ops.mul(errors, weight)
    if reduction == "mean":
        return ops.div(ops.sum(weighted), ops.sum(weight))
    return _reduce(weighted, reduction)


# ---------------------------------------------------------------- regression losses


def mse_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
             reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    _warn_size(input, target)
    reduction = _reduction(size_average, reduce, reduction)
    diff = ops.sub(input, target)
    loss = _pointwise_loss(ops.mul(diff, diff), reduction, weight)
    return loss if weight is not None else ops.named(loss, "MseLossBackward0")


def l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
            reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    _warn_size(input, target)
    reduction = _reduction(size_average, reduce, reduction)
    return _pointwise_loss(ops.abs(ops.sub(input, target)), reduction, weight)


def smooth_l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
                   reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (d = input - target); beta=0 is L1."""
    _warn_size(input, target)
    reduction = _reduction(size_average, reduce, reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    if beta == 0.0:
        return l1_loss(input, target, reduction=reduction)
    diff = ops.sub(input, target)
    size = ops.abs(diff)
    errors = ops.where(ops.lt(size, beta), ops.mul(ops.mul(diff, diff), 0.5 / beta), ops.sub(size, 0.5 * beta))
    return ops.named(_reduce(errors, reduction), "SmoothL1LossBackward0")


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Tensor | None = None) -> Tensor:
    """0.5 d^2 where |d| < delta, delta (|d| - 0.5 delta) elsewhere; with `weight`, the weighted
    losses are reduced (their plain mean for 'mean', as PyTorch)."""
    _warn_size(input, target)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    if weight is not None and tuple(weight.shape) != tuple(input.shape):
        raise ValueError("Weights and input must have the same size.")
    reduction = _reduction(None, None, reduction)
    diff = ops.sub(input, target)
    size = ops.abs(diff)
    errors = ops.where(ops.lt(size, delta), ops.mul(ops.mul(diff, diff), 0.5),
                       ops.mul(ops.sub(size, 0.5 * delta), delta))
    if weight is not None:
        return _reduce(ops.mul(errors, weight), reduction)
    return ops.named(_reduce(errors, reduction), "HuberLossBackward0")


def _xlogy_self(t: Tensor) -> Tensor:
    """t log t, 0 where t is 0 (xlogy(t, t))."""
    zero = ops.eq(t, 0)
    return ops.where(zero, 0.0, ops.mul(t, ops.log(_safe(zero, t, 1.0))))


def kl_div(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
           reduction: str = "mean", log_target: bool = False) -> Tensor:
    """target (log target - input) pointwise (input holds log-probabilities), with target given
    as log-probabilities when log_target; 'batchmean' divides the sum by the batch size."""
    if size_average is not None or reduce is not None:
        mode = _reduction(size_average, reduce, reduction)
    else:
        if reduction == "mean":
            warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                 "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                 "'mean' will be changed to behave the same as 'batchmean' in the next major release.")
        mode = "sum" if reduction == "batchmean" else _reduction(None, None, reduction)
    if log_target:
        pointwise = ops.mul(ops.exp(target), ops.sub(target, input))
    else:
        pointwise = ops.sub(_xlogy_self(target), ops.mul(target, input))
    loss = _reduce(pointwise, mode)
    if reduction == "batchmean" and input.dim() != 0:
        loss = ops.div(loss, input.shape[0])
    return loss


# ---------------------------------------------------------------- classification losses


def _class_dim(input: Tensor) -> int:
    return 1 if input.dim() >= 2 else 0


def _check_targets(input: Tensor, target: Tensor) -> None:
    if target.dtype not in (D.int64, D.uint8):
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got {ops._torch_name(target.dtype)}")
    if input.dim() >= 2 and target.dim() >= 1 and target.shape[0] != input.shape[0]:
        raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target batch_size "
                         f"({target.shape[0]}).")
    expected = tuple(input.shape[:1]) + tuple(input.shape[2:]) if input.dim() >= 2 else ()
    if tuple(target.shape) != expected:
        raise RuntimeError(f"Expected target size {list(expected)}, got {list(target.shape)}")


def _picked(logp: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int) -> tuple[Tensor, Tensor]:
    """Per-element -logp[target] * w and the weights w (0 where target == ignore_index)."""
    _check_targets(logp, target)
    target = ops.cast(target, D.int64)
    cdim = _class_dim(logp)
    keep = ops.ne(target, ignore_index)
    safe = ops.where(keep, target, 0)
    picked = shape_ops.gather_along(logp, cdim, shape_ops.reshape_value(
        safe, tuple(safe.shape[:cdim]) + (1,) + tuple(safe.shape[cdim:])))
    picked = shape_ops.reshape_value(picked, tuple(target.shape))
    w = ops.cast(keep, logp.dtype)
    if weight is not None:
        flat = shape_ops.reshape_value(safe, (safe.numel(),))
        class_w = shape_ops.reshape_value(shape_ops.gather_along(weight, 0, flat), tuple(target.shape))
        w = ops.mul(w, class_w)
    return ops.neg(ops.mul(picked, w)), w


def _weighted_reduce(loss: Tensor, w: Tensor | None, reduction: str) -> Tensor:
    if reduction == "mean":
        return ops.div(ops.sum(loss), ops.sum(w))
    return _reduce(loss, reduction)


def _nll_name(input: Tensor, reduction: str) -> str:
    """PyTorch's grad_fn name: inputs of 3 dims and more go through nll_loss2d (and a view)."""
    if input.dim() < 3:
        return "NllLossBackward0"
    return "ViewBackward0" if reduction == "none" and input.dim() != 4 else "NllLoss2DBackward0"


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
             ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    reduction = _reduction(size_average, reduce, reduction)
    loss, w = _picked(input, target, weight, ignore_index)
    return ops.named(_weighted_reduce(loss, w, reduction), _nll_name(input, reduction))


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
                  ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """log_softmax then nll_loss for class indices; -sum(target * log_softmax) for class probabilities."""
    reduction = _reduction(size_average, reduce, reduction)
    cdim = _class_dim(input)
    logp = ops.log_softmax(input, cdim)
    classes = input.shape[cdim]
    if tuple(target.shape) == tuple(input.shape):   # PyTorch's rule: same shape means class probabilities
        if not target.dtype.is_floating_point:
            raise RuntimeError("Expected floating point type for target with class probabilities, got "
                               f"{ops._torch_name(target.dtype)}")
        return _soft_cross_entropy(logp, target, weight, reduction, label_smoothing, cdim)
    loss, w = _picked(logp, target, weight, ignore_index)
    if label_smoothing == 0.0:
        return ops.named(_weighted_reduce(loss, w, reduction), _nll_name(input, reduction))
    if weight is not None:
        logp = ops.mul(logp, _along(weight, cdim, input.dim()))
    smooth = ops.mul(ops.neg(ops.sum(logp, cdim)), ops.cast(ops.ne(target, ignore_index), logp.dtype))
    if reduction == "mean":
        denominator = ops.sum(w)
        loss, smooth = ops.div(ops.sum(loss), denominator), ops.div(ops.sum(smooth), denominator)
    else:
        loss, smooth = _reduce(loss, reduction), _reduce(smooth, reduction)
    return ops.add(ops.mul(loss, 1.0 - label_smoothing), ops.mul(smooth, label_smoothing / classes))


def _along(weight: Tensor, cdim: int, rank: int) -> Tensor:
    """Class weights shaped to broadcast along the class dim."""
    return shape_ops.reshape_value(weight, tuple(weight.shape[0] if d == cdim else 1 for d in range(rank)))


def _soft_cross_entropy(logp: Tensor, target: Tensor, weight: Tensor | None, reduction: str, label_smoothing: float,
                        cdim: int) -> Tensor:
    classes = logp.shape[cdim]
    if label_smoothing > 0.0:
        target = ops.add(ops.mul(target, 1.0 - label_smoothing), label_smoothing / classes)
    if weight is not None:
        logp = ops.mul(logp, _along(weight, cdim, logp.dim()))
    products = ops.mul(logp, target)
    if reduction == "none":
        return ops.neg(ops.sum(products, cdim))
    total = ops.neg(ops.sum(products))
    if reduction == "sum":
        return total
    return ops.named(ops.div(total, logp.numel() / classes), "DivBackward1")


# PyTorch gives both BCE losses a backward formula of their own instead of differentiating the
# loss formula: (x - y) / max((1 - x) x, 1e-12) for probabilities (finite where x is 0 or 1,
# where log's gradient is infinite), sigmoid(x) - y for logits (no cancellation at large |x|).
# Here the loss is computed from the detached input and that gradient is attached by a term
# whose value is 0 (`_with_input_grad`). Gradients with respect to target, weight and
# pos_weight come from the loss formula, as PyTorch's do.

BCE_EPSILON = 9.999999960041972e-13     # PyTorch's EPSILON: 1e-12 as a float32, in float64 too


def _with_input_grad(value: Tensor, input: Tensor, grad: Tensor) -> Tensor:
    """`value` (computed from input.detach()) whose gradient with respect to `input` is `grad`:
    value + (input - input.detach()) * grad.detach(), the second term being 0. First order
    only: the gradient itself is not differentiated again."""
    if not input.requires_grad:
        return value
    return ops.add(value, ops.mul(ops.sub(input, input.detach()), grad.detach()))


def _no_weight_grad(name: str, weight: Tensor | None) -> None:
    if weight is not None and weight.requires_grad and is_grad_enabled():
        raise RuntimeError(f"The function '{name}' is not differentiable with respect to argument 'weight'. "
                           "This input cannot have requires_grad True.")


def _clamped_log(x: Tensor) -> Tensor:
    """log(x) clamped below at -100, as PyTorch's BCE (log(0) = -inf becomes -100)."""
    return ops.clamp(ops.log(x), min=-100.0)


def _bce_values(x: Tensor, target: Tensor) -> Tensor:
    """PyTorch's elementwise BCE: (y - 1) max(log(1 - x), -100) - y max(log(x), -100)."""
    return ops.sub(ops.mul(ops.sub(target, 1.0), _clamped_log(ops.sub(1.0, x))), ops.mul(target, _clamped_log(x)))


def _bce_input_grad(x: Tensor, target: Tensor) -> Tensor:
    """PyTorch's BCE backward: (x - y) / max((1 - x) x, BCE_EPSILON)."""
    return ops.div(ops.sub(x, target), ops.maximum(ops.mul(ops.sub(1.0, x), x), BCE_EPSILON))


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
                         reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    reduction = _reduction(size_average, reduce, reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Using a target size ({target.size()}) that is different to the input size "
                         f"({input.size()}) is deprecated. Please ensure they have the same size.")
    _no_weight_grad("binary_cross_entropy", weight)
    x = input.detach()
    loss = _with_input_grad(_bce_values(x, target), input, _bce_input_grad(x, target.detach()))
    if weight is not None:
        loss = ops.mul(loss, weight)
    return ops.named(_reduce(loss, reduction), "BinaryCrossEntropyBackward0")


def _log_sigmoid(x: Tensor) -> Tensor:
    """min(x, 0) - log1p(exp(-|x|)), PyTorch's log_sigmoid: no overflow for any x."""
    return ops.sub(ops.minimum(x, 0.0), _log1p(ops.exp(ops.neg(ops.abs(x)))))


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     size_average: bool | None = None, reduce: bool | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """PyTorch's (1 - y) x - (1 + (pw - 1) y) log_sigmoid(x), with PyTorch's gradient
    (1 + (pw - 1) y) sigmoid(x) - pw y (sigmoid(x) - y without pos_weight)."""
    reduction = _reduction(size_average, reduce, reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Target size ({target.size()}) must be the same as input size ({input.size()})")
    x = input.detach()
    log_sig, sig = _log_sigmoid(x), ops.sigmoid(x)
    if pos_weight is None:
        scaled_log_sig, grad = log_sig, ops.sub(sig, target.detach())
    else:
        scale = ops.add(ops.mul(ops.sub(pos_weight, 1.0), target), 1.0)
        scaled_log_sig = ops.mul(log_sig, scale)
        grad = ops.sub(ops.mul(sig, scale.detach()), ops.mul(pos_weight, target).detach())
    value = ops.sub(ops.mul(ops.sub(1.0, target), x), scaled_log_sig)
    loss = _with_input_grad(value, input, grad)
    if weight is not None:
        loss = ops.mul(loss, weight)
    return ops.named(_reduce(loss, reduction), "BinaryCrossEntropyWithLogitsBackward0")


def _errors_at_user_line() -> None:
    """Every public functional here names the user's line in the errors it raises."""
    for name, value in list(globals().items()):
        if not name.startswith("_") and isinstance(value, types.FunctionType) \
                and value.__module__.startswith(__package__):
            globals()[name] = errors_at_user_line(value)


_errors_at_user_line()
