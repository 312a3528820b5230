"""`fusegrad.autograd.function`: the grad_fn records (defined in fusegrad/grad_fn.py, below
Tensor and the ops, which record them; this package's engine sits above them)."""
from ..grad_fn import AccumulateGrad, Function

__all__ = ["AccumulateGrad", "Function"]
