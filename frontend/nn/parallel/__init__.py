"""`fusegrad.nn.parallel`: PyTorch's torch.nn.parallel — `DistributedDataParallel` (on MPI,
through fusegrad.distributed)."""
from .distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
