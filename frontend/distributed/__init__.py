"""`fusegrad.distributed`: PyTorch's `torch.distributed` on MPI, for data-parallel training.

    import fusegrad.distributed as dist
    dist.init_process_group("mpi")          # rank and world size from MPI (mpirun -n 4 python train.py)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)

- process_group.py: init_process_group, destroy_process_group, is_initialized, get_rank,
  get_world_size, the group registry (`communicator(group_id)`), timeouts;
- backend.py: ReduceOp, the cross-rank signature check, all-reduce of a numpy array;
- collectives.py: all_reduce, broadcast, all_gather, all_gather_into_tensor, reduce_scatter,
  reduce_scatter_tensor, barrier, all_reduce_coalesced on tensors, in place (zero-copy for CPU tensors), `Work`.

`nn.parallel.DistributedDataParallel` and `utils.data.distributed.DistributedSampler` build on
this. MPI comes from mpi4py, the optional extra `fusegrad[distributed]`; without it this package
imports and `is_available()` is False.
"""
from __future__ import annotations

from .backend import RedOpType, ReduceOp, allreduce_array
from .collectives import (
    Work,
    all_gather,
    all_gather_into_tensor,
    all_reduce,
    all_reduce_coalesced,
    barrier,
    broadcast,
    reduce_scatter,
    reduce_scatter_tensor,
)
from .process_group import (
    DEFAULT_TIMEOUT,
    DistBackendError,
    ProcessGroup,
    communicator,
    destroy_process_group,
    get_backend,
    get_rank,
    get_world_size,
    init_process_group,
    is_available,
    is_initialized,
    is_mpi_available,
)

default_pg_timeout = DEFAULT_TIMEOUT


def is_nccl_available() -> bool:
    return False


def is_gloo_available() -> bool:
    return False


__all__ = ["DistBackendError", "ProcessGroup", "RedOpType", "ReduceOp", "Work", "all_gather", "all_gather_into_tensor",
           "all_reduce", "all_reduce_coalesced", "allreduce_array", "barrier", "broadcast", "communicator",
           "default_pg_timeout", "destroy_process_group", "get_backend", "get_rank", "get_world_size",
           "init_process_group", "is_available", "is_gloo_available", "is_initialized", "is_mpi_available",
           "is_nccl_available", "reduce_scatter", "reduce_scatter_tensor"]
