"""fusegrad.autograd: PyTorch's autograd API over gradients built as IR nodes.

`backward()` and `grad()` walk grad_fn records (grad_fn.py) and apply the compiler's VJP
rules (compiler/passes/autodiff.py), so gradients fuse and compile with the forward pass.
`Function` (function.py) is the base of custom functions with a Python backward.
"""
from ..grad_fn import AccumulateGrad
from ..grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from . import function
from .engine import backward, grad
from .function import Function, FunctionCtx, once_differentiable


def Variable(tensor, requires_grad=False, volatile=False):
    """The legacy wrapper: a tensor sharing `tensor`'s data, optionally requiring grad."""
    out = tensor.detach()
    if requires_grad:
        out.requires_grad_(True)
    return out


__all__ = ["backward", "grad", "Variable", "Function", "FunctionCtx", "once_differentiable", "AccumulateGrad",
           "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "inference_mode",
           "is_inference_mode_enabled", "function"]
