"""Profiling hooks of the runtime: who listens to native calls, and what each call reports.

The runtime never times anything unless a recorder is active (`recording(fn)`, or
`add_recorder`/`remove_recorder`; the frontend's `fusegrad.profiler.profile()` is one). While
one is, every native call of an executable reports a `NativeCall` to every active recorder:

- CPU programs (runtime/cpu.py): the entry point stamps CLOCK_MONOTONIC nanoseconds before
  and after each kernel into a buffer the runtime hands it for that call (codegen/cpu.py,
  `fg_profile`); on Linux that clock is `time.perf_counter_ns`'s, so kernel times and Python
  timestamps share one time line.
- CUDA programs (runtime/cuda.py): CUDA events around each kernel's launches, read when the
  program has finished (the call waits for it while profiling); their start times are placed
  on the host's clock from the moment the call finished, so they are approximate, their
  durations are the GPU's.

When no recorder is active the only cost is the test of `ACTIVE` in each call (and, inside
the native code, one predictable branch per kernel). Recorders run on the thread that made
the call, under the executable's lock: they should only store what they are given.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..compiler.program import KernelInfo, Program

Recorder = Callable[["NativeCall"], None]

ACTIVE: list[Recorder] = []          # the active recorders (runtime modules import this list itself)
_LOCK = threading.Lock()


@dataclass(frozen=True)
class KernelEvent:
    """One run of one kernel: `program.kernels[index]`, from `start_ns` to `end_ns` (the
    monotonic clock of time.perf_counter_ns), on `threads` threads."""
    program: Program
    index: int
    start_ns: int
    end_ns: int
    threads: int
    device: str

    @property
    def info(self) -> KernelInfo:
        return self.program.kernels[self.index]

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


@dataclass(slots=True)
class NativeCall:
    """One native call of a program: its wall time as the runtime saw it, the threads it ran
    its parallel kernels on, and, where the program was timed per kernel, `kernel_ns`: int64
    nanoseconds, start and end of each kernel of `program.kernels` in turn ([2i], [2i + 1]),
    both 0 for kernels that did not run. `kernel_ns` is None where only the whole call was
    timed. (Made on every profiled call: a plain slotted record, cheap to build.)"""
    program: Program
    device: str                   # 'cpu' | 'cuda'
    threads: int
    start_ns: int
    end_ns: int
    kernel_ns: np.ndarray | None
    thread_id: int                # threading.get_native_id() of the calling thread

    def kernels(self) -> list[KernelEvent]:
        """The kernels that ran, in the order they ran."""
        if self.kernel_ns is None:
            return []
        kernels = self.program.kernels
        stamps = self.kernel_ns.tolist()
        events = []
        for i, (start, end) in enumerate(zip(stamps[0::2], stamps[1::2])):
            if end:
                threads = self.threads if kernels[i].parallel else 1
                events.append(KernelEvent(self.program, i, start, end, threads, self.device))
        return events


def add_recorder(fn: Recorder) -> None:
    """Report every native call to `fn` from now on (until `remove_recorder(fn)`)."""
    with _LOCK:
        ACTIVE[:] = [*ACTIVE, fn]


def remove_recorder(fn: Recorder) -> None:
    """Stop reporting to `fn` (its first registration, if added more than once)."""
    with _LOCK:
        rest = list(ACTIVE)
        if fn in rest:
            rest.remove(fn)
        ACTIVE[:] = rest


@contextmanager
def recording(fn: Recorder) -> Iterator[Recorder]:
    """Report every native call made inside the block to `fn`."""
    add_recorder(fn)
    try:
        yield fn
    finally:
        remove_recorder(fn)


def report(call: NativeCall) -> None:
    """Hand one call to every active recorder."""
    for fn in tuple(ACTIVE):
        fn(call)
