"""`fusegrad.accelerator`: PyTorch's device-generic accelerator queries (torch.accelerator).

fusegrad's one accelerator is CUDA (frontend/cuda.py); these answer for it, as PyTorch does
for the accelerator it was built with, and they never start the CUDA runtime unless asked
whether a GPU is there.
"""
from __future__ import annotations

from . import cuda
from .device import device


def current_accelerator(check_available: bool = False) -> device | None:
    """device('cuda') when a CUDA GPU can be used, else None (a CPU-only machine).
    `check_available` is accepted for PyTorch's signature: the answer already checks it."""
    return device("cuda") if cuda.is_available() else None


def is_available() -> bool:
    """Whether an accelerator is there to run on (PyTorch: built, driver present, a device)."""
    return current_accelerator() is not None


def device_count() -> int:
    """How many accelerator devices there are; 0 without one."""
    return cuda.device_count() if is_available() else 0
