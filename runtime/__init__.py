"""fusegrad.runtime: executing what codegen made. Knows nothing of tensors or passes.

`load(program)` turns a compiler `Program` into a callable executable for its target.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .buffers import aligned_empty
from .cache import OBJECTS
from .config import ENV_THREADS  # noqa: F401  (validates FUSEGRAD_NUM_THREADS at import)

if TYPE_CHECKING:
    from ..compiler.program import Program
    from .cpu import CpuExecutable
    from .cuda import CudaExecutable


def set_num_threads(n: int | None) -> None:
    """Worker threads for kernels big enough to split, fixed at `n`. None: the default, which is
    FUSEGRAD_NUM_THREADS (fixed) if set, else all CPUs with each program falling back to one
    thread while it measures itself faster so (a machine other processes keep busy)."""
    from .cpu import set_num_threads as _set
    _set(n)


def get_num_threads() -> int:
    from .cpu import num_threads
    return num_threads()


def num_threads_fixed() -> bool:
    """Whether the thread count is fixed (set_num_threads(n) or FUSEGRAD_NUM_THREADS), rather than
    chosen per program between all CPUs and one."""
    from .cpu import num_threads_fixed as _fixed
    return _fixed()


def load(program: Program) -> CpuExecutable | CudaExecutable:
    """An executable for the program's target (ValueError for a target without a runtime)."""
    if program.target == "cpu":
        from .cpu import CpuExecutable
        return CpuExecutable(program)
    if program.target == "cuda":
        from .cuda import CudaExecutable
        return CudaExecutable(program)
    raise ValueError(f"no runtime for target {program.target!r}")
