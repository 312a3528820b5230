"""`Program`: what the compiler hands the runtime. Plain data, no graphs, picklable.

A program is the source text of one module (LLVM IR for the CPU, PTX for CUDA) with its
entry point (CPU) or its launches in order (CUDA), the buffer table it expects (slot, role,
shape, dtype, arena offset), the checks its kernels can fail with, per-kernel facts for
dumps, and the text of every compiler stage.
"""
from __future__ import annotations

from dataclasses import dataclass, field

STAGES = ("graph", "passes", "kernels", "llvm", "ptx")


@dataclass(frozen=True)
class BufferInfo:
    slot: int
    role: str            # error | input | param | output | temp
    name: str
    shape: tuple
    dtype: str           # dtype name, e.g. 'float32'
    offset: int = -1     # byte offset in the arena (temps)


@dataclass(frozen=True)
class KernelInfo:
    name: str
    kind: str
    space: tuple
    fused: tuple         # '%3 mul' style names of the nodes it evaluates
    reads: tuple         # buffer slots
    writes: tuple
    bytes_moved: int
    parallel: bool


@dataclass(frozen=True)
class Launch:
    """One kernel launch of a CUDA program: the PTX entry `function` of schedule kernel
    `kernel` (a scatter takes two or three), called with the device pointers of buffer-table
    slots `args` (slot 0, the error word, first), then, if `scratch_bytes`, a pointer to that
    much device memory that the runtime zeroes once and keeps for this launch. Kernels stride
    over blocks, so any grid of at most `grid` blocks of `block` threads covers the work."""
    function: str
    kernel: str
    args: tuple
    grid: int
    block: int
    scratch_bytes: int = 0


@dataclass
class Program:
    name: str
    target: str                      # 'cpu' | 'cuda'
    source: str                      # LLVM IR text or PTX text
    entry: str                       # CPU: the function running every kernel; CUDA: ''
    buffers: list
    inputs: list                     # slots, in the graph's input order
    params: list                     # slots, in the graph's param order
    outputs: dict                    # output name -> slot
    arena_bytes: int
    checks: list                     # (error code, message, source line); index = check id
    kernels: list                    # KernelInfo, in launch order
    stages: dict = field(default_factory=dict)   # stage name -> text
    key: str = ""                    # hash of the source, target and versions (cache key)
    launches: list = field(default_factory=list)   # CUDA: Launch records, in order

    @property
    def num_kernels(self) -> int:
        return len(self.kernels)

    def text(self, stage: str) -> str:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
        if stage not in self.stages:
            raise ValueError(f"stage {stage!r} was not produced for target {self.target!r}")
        return self.stages[stage]

    def slots(self, role: str) -> list:
        return [b for b in self.buffers if b.role == role]
