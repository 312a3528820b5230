"""Gradient clipping, as torch.nn.utils.clip_grad.

Everything stays lazy: the total norm is a tensor, and the gradients are scaled by
clamp(max_norm / (total + 1e-6), max=1) whatever the norm (PyTorch's formulation, which reads
no value on the host), so clipping works inside a `@fusegrad.compile`d step and eagerly costs
one program for all the gradients. Only `error_if_nonfinite=True` reads the norm.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

from ... import ops, shape_ops
from ...autograd.grad_mode import no_grad
from ...compound import vector_norm
from ...creation import tensor
from ...inplace import deferred
from ...tensor import Tensor

_TensorOrTensors = Tensor | Iterable[Tensor]


def _as_list(tensors: _TensorOrTensors) -> list[Tensor]:
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def get_total_norm(tensors: _TensorOrTensors, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach: bool | None = None) -> Tensor:
    """The norm of the norms of `tensors` (the norm of their concatenation)."""
    tensors = _as_list(tensors)
    norm_type = float(norm_type)
    if len(tensors) == 0:
        return tensor(0.0)
    with no_grad():
        norms = [vector_norm(g.detach(), norm_type) for g in tensors]
        device = norms[0].device
        total = vector_norm(shape_ops.stack([n.to(device) for n in norms]), norm_type)
        if error_if_nonfinite and not math.isfinite(total.item()):
            raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
                               "so it cannot be clipped. To disable this error and scale the gradients by the "
                               "non-finite norm anyway, set `error_if_nonfinite=False`")
    return total


def clip_grads_with_norm_(parameters: _TensorOrTensors, max_norm: float, total_norm: Tensor,
                          foreach: bool | None = None) -> None:
    """Scale every `.grad` in place by min(max_norm / (total_norm + 1e-6), 1)."""
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    if not grads:
        return
    with no_grad(), deferred():
        coef = ops.clamp(ops.div(float(max_norm), ops.add(total_norm, 1e-6)), max=1.0)
        for g in grads:
            g.mul_(coef.to(g.device))


def clip_grad_norm_(parameters: _TensorOrTensors, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Clip the gradients of `parameters` so that their total norm is at most `max_norm`;
    returns the total norm before clipping."""
    parameters = _as_list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)
    return total_norm


def clip_grad_value_(parameters: _TensorOrTensors, clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every `.grad` in place to [-clip_value, clip_value]."""
    clip_value = float(clip_value)
    with no_grad(), deferred():
        for p in _as_list(parameters):
            if p.grad is not None:
                p.grad.clamp_(min=-clip_value, max=clip_value)
