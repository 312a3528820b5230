"""`nn.functional`: activations, linear, dropout, one_hot and the losses, as PyTorch's.

Every function is a composition of frontend ops, so autograd needs no rule of its own: the
compiler's VJP rules differentiate the primitives. A composite's last op takes PyTorch's
grad_fn name (`ops.named`), and the formulas are the numerically stable ones: log-softmax
through log-sum-exp, BCE with logits through log_sigmoid. The two BCE losses take PyTorch's
own input gradients instead (see `_with_input_grad`), finite where the formula's are not.
"""
from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

from .. import dtypes as D
from .. import ops, shape_ops
from ..autograd.grad_mode import is_grad_enabled, no_grad
from ..creation import iota
from ..random import rand_tensor

if TYPE_CHECKING:
    from ..tensor import Tensor

# ---------------------------------------------------------------- activations


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return input.relu_() if inplace else ops.relu(input)


def sigmoid(input: Tensor) -> Tensor:
    return ops.sigmoid(input)


def tanh(input: Tensor) -> Tensor:
    return ops.tanh(input)


def _softmax_dim(name: str, ndim: int, stacklevel: int) -> int:
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X as "
                  "an argument.", stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: D.DType | None = None) -> Tensor:
    if dim is None:
        dim = _softmax_dim("softmax", input.dim(), _stacklevel)
    return ops.softmax(input, dim, dtype=dtype)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: D.DType | None = None) -> Tensor:
    if dim is None:
        dim = _softmax_dim("log_softmax", input.dim(), _stacklevel)
    return ops.log_softmax(input, dim, dtype=dtype)


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
        warnings.warn(f"Using a target size ({target.size()}) that is different to the input size ({input.size()}). "
                      "This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", stacklevel=3)


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


def _log1p(e: Tensor) -> Tensor:
    """log(1 + e), accurate for small e: log(u) e / (u - 1) with u = 1 + e, or e where u rounds to 1."""
    u = ops.add(e, 1.0)
    return ops.where(ops.eq(u, 1.0), e, ops.div(ops.mul(ops.log(u), e), ops.sub(u, 1.0)))


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
