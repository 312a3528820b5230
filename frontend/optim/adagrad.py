"""`Adagrad`: each coordinate's step scaled by the root of its summed squared gradients (PyTorch's order)."""
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


class Adagrad(Optimizer):
    def __init__(self, params: ParamsT, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, *, maximize: bool = False) -> None:
        require_nonnegative(lr=lr)
        require(lr_decay >= 0.0, f"Invalid lr_decay value: {lr_decay}")
        require_nonnegative(weight_decay=weight_decay)
        require(initial_accumulator_value >= 0.0,
                f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        require_nonnegative(eps=eps)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, maximize=maximize))

    def _update(self, p: TensorT, grad: TensorT, state: dict, group: dict, h: Hyperparameters) -> None:
        if not state:
            state["step"] = step_counter()
            state["sum"] = zeros_state(p)
            if group["initial_accumulator_value"] != 0:
                state["sum"].add_(group["initial_accumulator_value"])
        step = state["step"].add_(1).double()
        grad = self._coupled_decay(p, grad, group)
        clr = h.lr.double() / (1 + (step - 1) * group["lr_decay"])
        state_sum = state["sum"].add_(grad * grad)
        std = ops.sqrt(state_sum) + group["eps"]
        p.sub_(grad / std * h.cast(clr))
