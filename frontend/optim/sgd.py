"""`SGD`: stochastic gradient descent with momentum, dampening, Nesterov and weight decay,
in PyTorch's exact order (the momentum buffer starts as the first gradient)."""
from __future__ import annotations

from .optimizer import (
    Hyperparameters,
    Optimizer,
    ParamsT,
    TensorT,
    require,
    require_nonnegative,
    state_tensor,
    zeros_state,
)


class SGD(Optimizer):
    runtime_hyperparameters = ("lr", "momentum")
    structural_zero = ("momentum",)

    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False) -> None:
        require_nonnegative(lr=lr, momentum=momentum, weight_decay=weight_decay)
        require(not nesterov or (momentum > 0 and dampening == 0),
                "Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _runtime_values(self, group: dict) -> dict[str, float]:
        return {"lr": float(group["lr"]), "momentum": float(group["momentum"])}

    def _update(self, p: TensorT, grad: TensorT, state: dict, group: dict, h: Hyperparameters) -> None:
        grad = self._coupled_decay(p, grad, group)
        if group["momentum"] != 0:
            momentum = h.cast(h["momentum"])
            buf = state.get("momentum_buffer")
            if buf is None and group["dampening"] == 0:
                # PyTorch's first step sets buf = grad; so does momentum * 0 + grad, exactly, and
                # then every step is the same program (a compiled step compiles once)
                buf = state["momentum_buffer"] = zeros_state(p)
            if buf is None:
                buf = state["momentum_buffer"] = state_tensor(grad)
            else:
                buf.mul_(momentum).add_(grad, alpha=1 - group["dampening"])
            grad = grad + momentum * buf if group["nesterov"] else buf
        p.sub_(grad * h.lr)
