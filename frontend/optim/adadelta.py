"""`Adadelta`: steps scaled by the ratio of running RMS of updates to running RMS of gradients."""
from __future__ import annotations

from .optimizer import (
    Hyperparameters,
    Optimizer,
    ParamsT,
    TensorT,
    require,
    require_nonnegative,
    step_counter,
    zeros_state,
)


class Adadelta(Optimizer):
    def __init__(self, params: ParamsT, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, *, maximize: bool = False) -> None:
        require_nonnegative(lr=lr)
        require(0.0 <= rho <= 1.0, f"Invalid rho value: {rho}")
        require_nonnegative(eps=eps, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def _update(self, p: TensorT, grad: TensorT, state: dict, group: dict, h: Hyperparameters) -> None:
        if not state:
            state["step"] = step_counter()
            state["square_avg"] = zeros_state(p)
            state["acc_delta"] = zeros_state(p)
        state["step"].add_(1)
        grad = self._coupled_decay(p, grad, group)
        rho, eps = group["rho"], group["eps"]
        square_avg = state["square_avg"].mul_(rho).add_(grad * grad * (1 - rho))
        std = (square_avg + eps).sqrt()
        delta = (state["acc_delta"] + eps).sqrt() / std * grad
        state["acc_delta"].mul_(rho).add_(delta * delta * (1 - rho))
        p.sub_(delta * h.lr)
