"""Clearing accumulated gradients: what `Module.zero_grad` and `Optimizer.zero_grad` share."""
from __future__ import annotations

from ..autograd.grad_mode import no_grad
from ..inplace import deferred


def zero_grads(params, set_to_none: bool = True) -> None:
    """Drop each parameter's `.grad` (the default), or zero it in place, all zeroed in one program."""
    with no_grad(), deferred():
        for p in params:
            grad = p.grad
            if grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                grad.detach_()
                grad.zero_()
