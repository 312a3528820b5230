"""`fusegrad.autograd.grad_mode`: the grad mode switches (defined in fusegrad/grad_mode.py,
below Tensor and the ops, which read the mode; this package's engine sits above them)."""
from ..grad_mode import (
                         enable_grad,
                         inference_mode,
                         is_grad_enabled,
                         is_inference_mode_enabled,
                         no_grad,
                         set_grad_enabled,
)

__all__ = ["enable_grad", "is_grad_enabled", "no_grad", "set_grad_enabled", "inference_mode",
           "is_inference_mode_enabled"]
