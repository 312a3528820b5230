"""CPU runtime: LLVM IR -> machine code with llvmlite, and calling it on numpy buffers.

A program is one module per distinct kernel (compiler/codegen/cpu_program.py), a plan of
which kernels run in what order on which buffers (`Program.calls`), and the runner module
that follows any plan (compiler/codegen/cpu_runner.py; its text is the same for every
program). Each module's machine code is cached by `cache.OBJECTS` (memory and disk): a
kernel module's by its structural key, so a kernel compiles once however many programs, or
steps of one, contain it; the runner's by its text, so it compiles once. Loading a cached
object skips LLVM's optimiser and code generator entirely; the modules a program still lacks
compile concurrently (runtime/objects.py). Loading links the objects into one MCJIT engine
and lays the plan out for the runner (`Plan`).

A `CpuExecutable` owns its buffer table (one pointer per slot, then one per host call), its
arena of intermediates (allocated once, reused by every call) and its error word. Calling it
binds the argument buffers into the table and makes one native call to the runner, which
runs every kernel; libgomp, when the process can load it, supplies the worker threads, and each call
runs on all of them or on one as runtime/threads.py chooses (unless the count was fixed).

A program with a collective calls the host between kernels through the table slot of
`fg_host_all_reduce` (after the buffers), which loading points at runtime/hostcalls.py's
trampoline; a failed host call stops the program and raises hostcalls.HostCallError after
the native call.

While a profiler records (runtime/profiling.py), a call hands the runner a buffer for
per-kernel timestamps (its `fg_profile` global, null otherwise) and reports them afterwards.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, NoReturn

import llvmlite
import llvmlite.binding as llvm
import numpy as np

from . import hostcalls, profiling
from .buffers import address, aligned_empty, new_buffer, storage_dtype
from .cache import OBJECTS, VERSION
from .config import ENV_THREADS
from .objects import DEFAULT_PIPELINE, host_cpu, object_codes, optimized_module, pipeline_text
from .objects import new_machine as _new_machine
from .profiling import ACTIVE as _PROFILERS
from .threads import ThreadChoice

if TYPE_CHECKING:
    from ..compiler.program import KernelModule, Program

_STATE: dict = {}
PROFILE_GLOBAL = "fg_profile"            # codegen/cpu_runner.py's PROFILE_GLOBAL and CLOCK_GLOBAL
CLOCK_GLOBAL = "fg_clock_gettime"
HOST_ALL_REDUCE_GLOBAL = "fg_host_all_reduce"    # codegen/cpu.py's HOST_ALL_REDUCE_GLOBAL
HOST_CALLS = (HOST_ALL_REDUCE_GLOBAL,)           # compiler/program.py's HOST_CALLS
# the plan's layout, as codegen/cpu_runner.py reads it
RUN_TABLE, RUN_PHASES, RUN_COUNT, RUN_SLOTS, RUN_ARGS, RUN_REPEAT, RUN_ADVANCES, RUN_NADVANCES, RUN_STEP = range(9)
RUN_WORDS = 9
W_FUNCTION, W_FLAGS, W_NARGS, W_SLOTS, W_MAX_THREADS, W_FIRST_CHECK, W_PROFILE = range(7)
PHASE_WORDS = 8
F_PARALLEL, F_FIRST, F_LAST = 1, 2, 4


def _gomp() -> tuple[int, int, int] | None:
    """Addresses of GOMP_parallel, omp_get_thread_num, omp_get_num_threads, or None."""
    if "gomp" not in _STATE:
        path = ctypes.util.find_library("gomp") or "libgomp.so.1"
        try:
            lib = ctypes.CDLL(path)
            _STATE["gomp"] = tuple(ctypes.cast(getattr(lib, f), ctypes.c_void_p).value
                                   for f in ("GOMP_parallel", "omp_get_thread_num", "omp_get_num_threads"))
            _STATE["gomp_lib"] = lib
        except (OSError, AttributeError):
            _STATE["gomp"] = None
    return _STATE["gomp"]


def _clock_gettime() -> int | None:
    """The address of libc's clock_gettime (the profiled entry point's clock), or None."""
    if "clock" not in _STATE:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
            _STATE["clock"] = ctypes.cast(libc.clock_gettime, ctypes.c_void_p).value
            _STATE["libc"] = libc
            _STATE["clock_id"] = time.CLOCK_MONOTONIC       # perf_counter_ns's clock on Linux
        except (OSError, AttributeError, TypeError):
            _STATE["clock"] = None
    return _STATE["clock"]


def num_threads() -> int:
    """Worker threads per kernel at most: set_num_threads(n), else FUSEGRAD_NUM_THREADS as the
    process started, else the CPUs this process may run on (1 without libgomp)."""
    n = _STATE.get("threads")
    if n is None:
        n = ENV_THREADS
        _STATE["fixed"] = n is not None
        if n is None:
            try:
                n = len(os.sched_getaffinity(0))
            except AttributeError:
                n = os.cpu_count() or 1
        n = _STATE["threads"] = n if _gomp() is not None else 1
    return n


def num_threads_fixed() -> bool:
    """Whether every call runs on num_threads() threads (set_num_threads(n), FUSEGRAD_NUM_THREADS),
    rather than on all or one as each program measures (runtime/threads.py)."""
    num_threads()
    return bool(_STATE["fixed"])


def set_num_threads(n: int | None) -> None:
    """Run parallel kernels on `n` threads, always; None: back to the default (every CPU, or one
    thread for a program that measured itself faster so: runtime/threads.py)."""
    if n is None:
        _STATE.pop("threads", None)
        _STATE["fixed"] = False
        return
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive whole number of threads, got {n!r}")
    _STATE["threads"] = int(n) if _gomp() is not None else 1
    _STATE["fixed"] = True


def object_key(key: str) -> str:
    """The cache key of the machine code of a module with key `key` (a kernel module's
    structural key and LLVM pipeline, a hash of the runner's text), for this host, llvmlite
    and fusegrad."""
    cpu, features = host_cpu()
    text = "\n".join([key, cpu, features, llvmlite.__version__, VERSION])
    return hashlib.sha256(text.encode()).hexdigest()


def module_key(module: KernelModule) -> str:
    """The cache key of a kernel module's machine code: its structural key and pipeline."""
    return object_key(f"{module.key}\n{pipeline_text(module.pipeline)}")


def cache_key(program: Program) -> str:
    """The cache key of the program's runner object."""
    return object_key(hashlib.sha256(program.source.encode()).hexdigest())


def jit_engine(ir_text: str) -> llvm.ExecutionEngine:
    """An MCJIT engine holding `ir_text` optimised as programs are (-O3 for the host): for
    kernel-level tests and benchmarks that build LLVM modules themselves."""
    engine = llvm.create_mcjit_compiler(optimized_module(ir_text), _new_machine())
    engine.finalize_object()
    return engine


def machine_code(program: Program) -> list[bytes]:
    """The program's objects, its kernel modules' then the runner's: from the cache, or
    compiled now (those missing, concurrently)."""
    jobs = [(module_key(m), (m.source, True, m.pipeline)) for m in program.modules]
    jobs.append((cache_key(program), (program.source, False, DEFAULT_PIPELINE)))
    objects = {key: OBJECTS.get(key) for key, _ in jobs}
    missing = {key: job for key, job in jobs if objects[key] is None}
    OBJECTS.stats["compiles"] += len(missing)
    for key, obj in zip(missing, object_codes(list(missing.values()))):
        OBJECTS.put(key, obj)
        objects[key] = obj
    return list(objects.values())


class Plan:
    """A program's calls laid out for the runner (RUN_*, W_* and F_* above): the run record,
    the phase records with the addresses of the phase functions in `engine`, the argument
    slots, and scratch for the arguments of one kernel."""

    def __init__(self, program: Program, engine: llvm.ExecutionEngine, table_address: int) -> None:
        calls = program.calls
        phases = np.zeros((sum(len(c.phases) for c in calls), PHASE_WORDS), dtype=np.int64)
        self.slots = np.array([s for c in calls for s in c.args] or [0], dtype=np.int64)
        self.args = np.zeros(max([len(c.args) for c in calls], default=1), dtype=np.int64)
        row = start = 0
        for c in calls:
            for i, (symbol, parallel) in enumerate(zip(c.phases, c.parallel)):
                flags = F_PARALLEL * parallel | F_FIRST * (i == 0) | F_LAST * (i == len(c.phases) - 1)
                phases[row, :W_PROFILE + 1] = (_function_address(engine, symbol), flags, len(c.args), start,
                                               c.max_threads, c.first_check, 1 + 2 * c.kernel)
                row += 1
            start += len(c.args)
        self.phases = phases
        self.run = np.array([table_address, address(phases), len(phases), address(self.slots), address(self.args),
                             1, 0, 0, 0], dtype=np.int64)
        self.address = address(self.run)


def _function_address(engine: llvm.ExecutionEngine, symbol: str) -> int:
    fn_address = engine.get_function_address(symbol)
    if not fn_address:
        raise RuntimeError(f"the program's kernel function {symbol} is not in its objects")
    return fn_address


class ProgramError(RuntimeError):
    pass


class CpuExecutable:
    def __init__(self, program: Program) -> None:
        self.program = program
        self._engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), _new_machine())
        for obj in machine_code(program):
            self._engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        self._engine.finalize_object()
        self._install_gomp()
        self._install_profiling()
        self._fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64)(
            self._engine.get_function_address(program.entry))
        self.table = (ctypes.c_void_p * (len(program.buffers) + len(HOST_CALLS)))()
        self.table_address = ctypes.addressof(self.table)
        self._install_host_calls()
        self.plan = Plan(program, self._engine, self.table_address)
        self.error = np.zeros(2, dtype=np.int64)
        self.table[0] = address(self.error)
        self.arena = aligned_empty((max(program.arena_bytes, 1),), np.uint8)
        for b in program.buffers:
            if b.role == "temp":
                self.table[b.slot] = address(self.arena) + b.offset
        # (name, slot, shape, dtype, nbytes) per output
        self.out_specs: list[tuple[str, int, tuple[int, ...], np.dtype, int]] = []
        for name, slot in program.outputs.items():
            dtype = storage_dtype(program.buffers[slot].dtype)
            shape = program.buffers[slot].shape
            self.out_specs.append((name, slot, shape, dtype, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize))
        # The table, arena and error word are this executable's: whoever binds buffers holds
        # `lock` until the call has returned (a thread binding between would swap them).
        self.lock = threading.RLock()
        # all threads or one, by measured time, unless the user fixed the count
        self.thread_choice = ThreadChoice() if any(k.parallel for k in program.kernels) else None

    def _install_gomp(self) -> None:
        gomp = _gomp()
        if gomp is None:
            return
        for name, fn_address in zip(("fg_gomp_parallel", "fg_omp_thread_num", "fg_omp_num_threads"), gomp):
            slot = self._engine.get_global_value_address(name)
            ctypes.c_void_p.from_address(slot).value = fn_address

    def _install_profiling(self) -> None:
        """Fill the runner's clock pointer; keep its profile pointer (null: not profiling) at
        hand. A program without them (or a libc without clock_gettime) is timed whole."""
        self._profile_ptr: ctypes.c_void_p | None = None
        self._profile: np.ndarray | None = None     # made at the first profiled call
        self._profile_address = 0
        clock = _clock_gettime()
        if clock is None or f'@"{PROFILE_GLOBAL}"' not in self.program.source:
            return
        slot = self._engine.get_global_value_address(CLOCK_GLOBAL)
        ctypes.c_void_p.from_address(slot).value = clock
        self._profile_ptr = ctypes.c_void_p.from_address(self._engine.get_global_value_address(PROFILE_GLOBAL))

    def _install_host_calls(self) -> None:
        """Point the table slot of the all_reduce host call (after the buffers; used only by
        programs with a collective) at the trampoline of runtime/hostcalls.py, which calls
        the registered function."""
        slot = len(self.program.buffers) + HOST_CALLS.index(HOST_ALL_REDUCE_GLOBAL)
        if any(slot in c.args for c in self.program.calls):
            self.table[slot] = hostcalls.all_reduce_address()

    def __call__(self, inputs: Iterable[np.ndarray], params: Iterable[np.ndarray],
                 outputs: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Run with numpy buffers for the inputs and params (C-contiguous, the program's
        dtypes); returns the outputs by name, written into `outputs` where given."""
        with self.lock:          # binding and the call are one step: another thread binds after
            table = self.table
            for slot, a in zip(self.program.inputs, inputs):
                table[slot] = address(a)
            for slot, a in zip(self.program.params, params):
                table[slot] = address(a)
            result = self.bind_outputs(outputs)
            self.call()
        return result

    def bind(self, slot: int, a: np.ndarray) -> None:
        self.table[slot] = address(a)

    def bind_outputs(self, outputs: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Bind `outputs` (name -> array) where given and fresh buffers elsewhere. Names of one
        value (the compiler gave them one slot) share its fresh buffer; the program writes the
        buffer bound last for a slot."""
        table = self.table
        result: dict[str, np.ndarray] = {}
        of_slot: dict[int, np.ndarray] = {}
        for name, slot, shape, dtype, nbytes in self.out_specs:
            a = outputs.get(name) if outputs else None
            if a is None:
                a = of_slot.get(slot)
            if a is None:
                a, table[slot] = new_buffer(shape, dtype, nbytes)
            else:
                table[slot] = address(a)
            result[name] = of_slot[slot] = a
        return result

    def call(self) -> None:
        """One native call with the buffers bound now; raises the check that failed, if any."""
        with self.lock:
            threads = _STATE.get("threads") or num_threads()
            choice = self.thread_choice
            if choice is None or threads == 1 or _STATE["fixed"]:
                code = self._profiled(threads) if _PROFILERS else self._fn(self.plan.address, threads)
            else:
                threads = choice.threads(threads)
                start = time.perf_counter()
                code = self._profiled(threads) if _PROFILERS else self._fn(self.plan.address, threads)
                choice.record(threads == 1, time.perf_counter() - start)
            if code:
                self._raise_failed_check()

    def call_repeated(self, steps: int, advances: list[tuple[int, int]], first_step: int = 0) -> None:
        """`steps` runs of the whole program in one native call, the first on the buffers bound
        now; after each, the table slot of every (slot, bytes) in `advances` moves on by that
        many bytes (codegen/cpu_runner.py). Raises the check that failed, naming its step
        (counted from `first_step`)."""
        with self.lock:
            run = self.plan.run
            pairs = np.array(advances or [(0, 0)], dtype=np.int64)
            run[RUN_REPEAT], run[RUN_ADVANCES], run[RUN_NADVANCES] = steps, address(pairs), len(advances)
            try:
                threads = _STATE.get("threads") or num_threads()
                if self.thread_choice is not None and not _STATE["fixed"] and self.thread_choice.one:
                    threads = 1              # the choice its single calls settled on (runtime/threads.py)
                code = self._fn(self.plan.address, threads)
                if code:
                    self._raise_failed_check(f", in step {first_step + int(run[RUN_STEP])}")
            finally:
                run[RUN_REPEAT], run[RUN_ADVANCES], run[RUN_NADVANCES] = 1, 0, 0

    def _raise_failed_check(self, step: str = "") -> NoReturn:
        check = int(self.error[1])
        self.error[:] = 0
        raise_check(self.program, check, step)

    def _profiled(self, threads: int) -> int:
        """The native call with per-kernel timestamps, reported to the active recorders."""
        pointer, stamps = self._profile_ptr, self._profile
        if pointer is not None:
            if stamps is None:
                stamps = self._profile = np.zeros(1 + 2 * len(self.program.kernels), np.int64)
                self._profile_address = address(stamps)
            stamps.fill(0)
            stamps[0] = _STATE["clock_id"]
            pointer.value = self._profile_address
        start = time.perf_counter_ns()
        try:
            code = self._fn(self.plan.address, threads)
        finally:
            end = time.perf_counter_ns()
            if pointer is not None:
                pointer.value = None
        kernel_ns = stamps[1:].copy() if stamps is not None else None
        profiling.report(profiling.NativeCall(self.program, "cpu", threads, start, end, kernel_ns,
                                              threading.get_native_id()))
        return code


def raise_check(program: Program, check: int, step: str = "") -> NoReturn:
    """Raise the program's check `check` as the exception its kind names; `step` is added to
    where it failed (a repeated call's step)."""
    code, message, loc = program.checks[check]
    where = f" (at {loc}{step})" if loc else f" ({step.lstrip(', ')})" if step else ""
    if code == 1:
        raise IndexError(f"{message}{where}")
    if code == hostcalls.ERR_HOST:
        hostcalls.raise_failure(message, where)
    raise RuntimeError(f"{message}{where}")
