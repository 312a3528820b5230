"""`fusegrad.cuda`: torch.cuda's queries.

The queries (`is_available`, `device_count`, `get_device_name`, `current_device`,
`synchronize`, `manual_seed_all`) ask the CUDA runtime (runtime/cuda.py), which imports
pycuda on first use: importing fusegrad never does. Without pycuda or a GPU,
`is_available()` is False and moving a tensor to "cuda" raises a clear error. Where tensors
live and how values move between devices is the lazy layer's business (placement.py).
"""
from __future__ import annotations

from . import random
from .placement import device_index, lazy_init
from .runtime import cuda as _rt

SEED_ALL: list = [None]       # the last seed given to manual_seed_all


# ---------------------------------------------------------------- torch.cuda

def is_available() -> bool:
    return _rt.available()


def device_count() -> int:
    return _rt.device_count() if is_available() else 0


def current_device() -> int:
    lazy_init()
    return 0


def get_device_name(device=None) -> str:
    return lazy_init().device_name(device_index(device))


def synchronize(device=None) -> None:
    device_index(device)
    lazy_init().synchronize()


def manual_seed_all(seed: int) -> None:
    """Seed the random numbers of every GPU. fusegrad draws a GPU tensor's numbers from its
    one Philox stream (frontend/random.py), so with a GPU this seeds that stream as
    `fusegrad.manual_seed` does; without one it only records the seed (`SEED_ALL`), as
    PyTorch silently keeps it for when CUDA starts."""
    SEED_ALL[0] = int(seed)
    if is_available():
        random.manual_seed(SEED_ALL[0])
