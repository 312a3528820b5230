"""`RMSprop`: gradients scaled by a running RMS, optionally centered and with momentum (PyTorch's order)."""
from __future__ import annotations

from .optimizer import Hyperparameters, Optimizer, ParamsT, TensorT, require_nonnegative, step_counter, zeros_state


class RMSprop(Optimizer):
    runtime_hyperparameters = ("lr", "momentum")
    structural_zero = ("momentum",)

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, *,
                 maximize: bool = False) -> None:
        require_nonnegative(lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _runtime_values(self, group: dict) -> dict[str, float]:
        return {"lr": float(group["lr"]), "momentum": float(group["momentum"])}

    def _update(self, p: TensorT, grad: TensorT, state: dict, group: dict, h: Hyperparameters) -> None:
        if not state:
            state["step"] = step_counter()
            state["square_avg"] = zeros_state(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = zeros_state(p)
            if group["centered"]:
                state["grad_avg"] = zeros_state(p)
        state["step"].add_(1)
        grad = self._coupled_decay(p, grad, group)
        alpha = group["alpha"]
        square_avg = state["square_avg"].mul_(alpha).add_(grad * grad * (1 - alpha))
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg.add_((grad - grad_avg) * (1 - alpha))
            avg = (square_avg - grad_avg * grad_avg).sqrt() + group["eps"]
        else:
            avg = square_avg.sqrt() + group["eps"]
        if group["momentum"] > 0:
            buf = state["momentum_buffer"].mul_(h.cast(h["momentum"])).add_(grad / avg)
            p.sub_(buf * h.lr)
        else:
            p.sub_(grad / avg * h.lr)
