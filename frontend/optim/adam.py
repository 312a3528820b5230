"""`Adam` (and, with decoupled weight decay, the base of AdamW), as PyTorch 2's single-tensor Adam.

The step count is a tensor in the state, as in PyTorch 2, and the bias corrections are
computed from it by tensor ops (in float64), so a step is one graph with no value read back.
"""
from __future__ import annotations

from .. import ops
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


class Adam(Optimizer):
    decoupled_weight_decay = False
    runtime_hyperparameters = ("lr", "betas")

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False) -> None:
        require_nonnegative(lr=lr, eps=eps)
        for i, beta in enumerate(betas):
            require(0.0 <= beta < 1.0, f"Invalid beta parameter at index {i}: {beta}")
        require_nonnegative(weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    def _runtime_values(self, group: dict) -> dict[str, float]:
        beta1, beta2 = group["betas"]
        return {"lr": float(group["lr"]), "beta1": float(beta1), "beta2": float(beta2)}

    def _update(self, p: TensorT, grad: TensorT, state: dict, group: dict, h: Hyperparameters) -> None:
        if not state:
            state["step"] = step_counter()
            state["exp_avg"] = zeros_state(p)
            state["exp_avg_sq"] = zeros_state(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = zeros_state(p)
        lr, beta1, beta2 = h.lr, h["beta1"], h["beta2"]
        step = state["step"].add_(1).double()
        if self.decoupled_weight_decay:
            p.mul_(1 - lr * group["weight_decay"])
        else:
            grad = self._coupled_decay(p, grad, group)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.add_((grad - exp_avg) * h.cast(1 - beta1))
        exp_avg_sq.mul_(h.cast(beta2)).add_(grad * grad * h.cast(1 - beta2))
        if group["amsgrad"]:
            exp_avg_sq = state["max_exp_avg_sq"].copy_(ops.maximum(state["max_exp_avg_sq"], exp_avg_sq))
        step_size = lr / (1 - ops.pow(beta1, step))
        bias_correction2_sqrt = ops.sqrt(1 - ops.pow(beta2, step))
        denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + group["eps"]
        p.sub_(exp_avg / denom * step_size)
