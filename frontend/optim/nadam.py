"""`NAdam`: Adam with Nesterov momentum and PyTorch's momentum-decay schedule (Dozat's mu_t).

As in PyTorch, the state holds the step count and the running product of the mu_t as 0-d float32
tensors; every scalar derived from them and the hyperparameters is a tensor op in float64, so a
step is one graph with no value read back.
"""
from __future__ import annotations

from .. import ops
from ..creation import ones
from .optimizer import (
    Hyperparameters,
    Optimizer,
    ParamsT,
    TensorT,
    _initial_state,
    require,
    require_nonnegative,
    step_counter,
    zeros_state,
)


class NAdam(Optimizer):
    runtime_hyperparameters = ("lr", "betas")

    def __init__(self, params: ParamsT, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, momentum_decay: float = 4e-3, *,
                 decoupled_weight_decay: bool = False, maximize: bool = False) -> None:
        require_nonnegative(lr=lr, eps=eps)
        for i, beta in enumerate(betas):
            require(0.0 <= beta < 1.0, f"Invalid beta parameter at index {i}: {beta}")
        require_nonnegative(weight_decay=weight_decay)
        require(momentum_decay >= 0.0, f"Invalid momentum_decay value: {momentum_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))

    def _runtime_values(self, group: dict) -> dict[str, float]:
        beta1, beta2 = group["betas"]
        return {"lr": float(group["lr"]), "beta1": float(beta1), "beta2": float(beta2)}

    def _update(self, p: TensorT, grad: TensorT, state: dict, group: dict, h: Hyperparameters) -> None:
        if not state:
            state["step"] = step_counter()
            state["mu_product"] = _initial_state(lambda: ones(()))
            state["exp_avg"] = zeros_state(p)
            state["exp_avg_sq"] = zeros_state(p)
        lr, beta1, beta2 = h.lr.double(), h["beta1"], h["beta2"]
        step = state["step"].add_(1).double()
        bias_correction2 = 1 - ops.pow(beta2, step)
        wd = group["weight_decay"]
        if wd != 0:
            if group["decoupled_weight_decay"]:
                p.mul_(h.cast(1 - lr * wd))
            else:
                grad = grad + wd * p
        decay = group["momentum_decay"]
        mu = beta1 * (1.0 - 0.5 * ops.pow(0.96, step * decay))
        mu_next = beta1 * (1.0 - 0.5 * ops.pow(0.96, (step + 1) * decay))
        mu_product = state["mu_product"].mul_(mu.float()).double()      # float32 in the state, as PyTorch's
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.add_((grad - exp_avg) * h.cast(1 - beta1))
        exp_avg_sq.mul_(h.cast(beta2)).add_(grad * grad * h.cast(1 - beta2))
        denom = (exp_avg_sq / h.cast(bias_correction2)).sqrt() + group["eps"]
        p.sub_(grad / denom * h.cast(lr * (1.0 - mu) / (1.0 - mu_product)))
        p.sub_(exp_avg / denom * h.cast(lr * mu_next / (1.0 - mu_product * mu_next)))
