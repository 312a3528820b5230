"""`Program`: what the compiler hands the runtime. Plain data, no graphs, picklable.

A program is the source text of one module (LLVM IR for the CPU, PTX for CUDA) with its
entry point, the buffer table it expects (slot, role, shape, dtype, arena offset), the checks
its kernels can fail with, per-kernel facts for dumps, and the text of every compiler stage.
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


@dataclass
class Program:
    name: str
    target: str                      # 'cpu' | 'cuda'
    source: str                      # LLVM IR text or PTX text
    entry: str
    buffers: list
    inputs: list                     # slots, in the graph's input order
    params: list                     # slots, in the graph's param order
    outputs: dict                    # output name -> slot
    arena_bytes: int
    checks: list                     # (error code, message, source line); index = check id
    kernels: list                    # KernelInfo, in launch order
    stages: dict = field(default_factory=dict)   # stage name -> text
    key: str = ""                    # hash of the source, target and versions (cache key)

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
