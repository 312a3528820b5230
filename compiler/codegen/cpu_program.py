"""CPU backend, program: a schedule becomes one module per distinct kernel and a plan.

Each kernel with an output is keyed by its structure (codegen/kernel_key.py); kernels with
one key share one module (codegen/cpu.py), emitted once per process (`EMITTED`, bounded
LRU) and compiled once (the runtime caches its object by the key, in memory and on disk).
The plan is a `KernelCall` per kernel, in schedule order, which the runner (codegen/
cpu_runner.py) follows. The modules of functions that kernel modules share (GEMM
micro-kernels, cpu.SharedModule) come with the program once each. The program's checks are
the kernels' checks, in schedule order, each with its own source line.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from ..passes.schedule import Schedule
from ..program import HOST_CALLS
from .cpu import KernelModuleCode, emit_kernel_module
from .kernel_key import kernel_key
from .kernel_plan import has_output

MAX_EMITTED = 512           # kernel modules kept in memory (their IR text), least recently used dropped


@dataclass
class KernelCall:
    """One kernel of the schedule as the runner calls it."""
    name: str
    index: int             # position in the schedule (= in Program.kernels): its profile slots
    code: KernelModuleCode
    args: tuple            # the table slots of its arguments (module doc of codegen/cpu.py)
    first_check: int       # the program's id of the kernel's check 0


@dataclass
class CpuCode:
    modules: list          # KernelModuleCode of each distinct kernel, in first use order
    calls: list            # KernelCall per kernel with an output, in schedule order
    shared: list           # SharedModule the kernel modules call, each once, in first use order


class EmittedKernels:
    """Kernel modules by structural key (LRU, at most `max_entries`), with hit counts."""

    def __init__(self, max_entries: int = MAX_EMITTED) -> None:
        self.max_entries = max_entries
        self.modules: OrderedDict = OrderedDict()
        self.stats = {"hits": 0, "emitted": 0}
        self._lock = threading.Lock()

    def get(self, key: str) -> KernelModuleCode | None:
        with self._lock:
            code = self.modules.get(key)
            if code is not None:
                self.modules.move_to_end(key)
                self.stats["hits"] += 1
            return code

    def put(self, code: KernelModuleCode) -> None:
        with self._lock:
            self.stats["emitted"] += 1
            self.modules[code.key] = code
            while len(self.modules) > self.max_entries:
                self.modules.popitem(last=False)


EMITTED = EmittedKernels()


def emit_program(sched: Schedule, checks: list) -> CpuCode:
    """The kernel modules and calls of the schedule; appends the program's checks to `checks`."""
    calls: list = []
    modules: dict = {}
    shared: dict = {}
    for i, k in enumerate(sched.kernels):
        if not has_output(k):
            continue
        keyed = kernel_key(sched, k)
        code = modules.get(keyed.key) or EMITTED.get(keyed.key)
        if code is None:
            code = emit_kernel_module(sched, k, keyed)
            EMITTED.put(code)
        modules[keyed.key] = code
        shared.update((s.key, s) for s in code.shared)
        host_slots = tuple(len(sched.buffers) + HOST_CALLS.index(h) for h in code.host_calls)
        calls.append(KernelCall(k.name, i, code, (0, *keyed.slots, *host_slots), len(checks)))
        checks.extend((error, message, keyed.nodes[node].loc) for error, message, node in code.checks)
    return CpuCode(list(modules.values()), calls, list(shared.values()))
