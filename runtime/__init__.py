"""fusegrad.runtime: executing what codegen made. Knows nothing of tensors or passes.

`load(program)` turns a compiler `Program` into a callable executable for its target.
"""
from .buffers import aligned_empty
from .cache import OBJECTS


def load(program):
    if program.target == "cpu":
        from .cpu import CpuExecutable
        return CpuExecutable(program)
    if program.target == "cuda":
        from .cuda import CudaExecutable
        return CudaExecutable(program)
    raise ValueError(f"no runtime for target {program.target!r}")
