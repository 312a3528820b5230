"""CUDA runtime: running a compiled program's PTX on an NVIDIA GPU with pycuda.

pycuda is imported on first use (`driver()`), never when this module is imported, so
`import fusegrad` works without it; `available()` answers False, never raising, where pycuda
or a GPU is missing. All work happens in the primary context of device 0, made current on
any thread that asks for CUDA work.

- `DeviceBuffer`: the device memory of one array (shape, dtype), from a memory pool, with
  host <-> device copies (`from_numpy`, `to_numpy`) and device copies (`copy`, `copy_from`).
- `CudaExecutable(program)`: the program's PTX module (loaded once per process and program
  key; the driver's own JIT cache keeps the machine code on disk across processes), its
  arena of intermediates and the scratch memory its launches ask for (allocated once per
  executable; scratch zeroed once), its error word and its stream. A call binds the device
  buffers of inputs, params and outputs and issues every launch in order; the grid of each
  is the launch's own, capped at what the device keeps resident a few times over (kernels
  stride over blocks). Programs run in the order they were issued: each one's stream waits
  for the previous program's last launch (an event), and the host copies of DeviceBuffer
  use the legacy default stream, which waits for them too. A program that can fail reads
  the error word back when it ends and raises the failed check, as the CPU runtime does.
  While a profiler records (runtime/profiling.py), CUDA events bracket every launch and the
  call waits for the program to finish, then reports each kernel's time (runtime/profiling.py
  says how its start is placed on the host's clock).
"""
from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Callable, Generic, TypeVar

import numpy as np
from numpy.typing import DTypeLike

from . import profiling
from .buffers import storage_dtype
from .cpu import raise_check
from .profiling import ACTIVE as _PROFILERS

if TYPE_CHECKING:
    from pycuda.driver import Module
    from pycuda.tools import DeviceMemoryPool

    from ..compiler.program import Program

BufferT = TypeVar("BufferT")   # a device buffer type (DeviceBuffer here; tests emulate one)

WAVES = 4                    # resident blocks x this = the most blocks a launch gets
_STATE: dict = {}
_LOCK = threading.Lock()


# ---------------------------------------------------------------- driver and device

def driver() -> ModuleType:
    """pycuda.driver, initialised, with device 0's primary context current on this thread."""
    drv = _STATE.get("driver")
    if drv is None:
        with _LOCK:
            if "driver" not in _STATE:
                import pycuda.driver
                pycuda.driver.init()
                if pycuda.driver.Device.count() == 0:
                    raise RuntimeError("No CUDA GPUs are available")
                _STATE["context"] = pycuda.driver.Device(0).retain_primary_context()
                _STATE["driver"] = pycuda.driver
                atexit.register(_release)
            drv = _STATE["driver"]
    if drv.Context.get_current() is None:
        _STATE["context"].push()
    return drv


def _release() -> None:
    drv = _STATE.pop("driver", None)
    if drv is not None:
        _STATE.pop("pool", None)
        _MODULES.clear()
        while drv.Context.get_current() is not None:
            drv.Context.pop()


def available() -> bool:
    """Whether pycuda imports and sees at least one CUDA device (never raises; asked once)."""
    if "available" not in _STATE:
        try:
            _STATE["available"] = device_count() > 0
        except Exception:    # noqa: BLE001 - no pycuda, no driver, no device: all mean "no"
            _STATE["available"] = False
    return _STATE["available"]


def device_count() -> int:
    import pycuda.driver as drv
    drv.init()
    return drv.Device.count()


def device_name(index: int = 0) -> str:
    driver()
    return _STATE["driver"].Device(index).name()


def compute_capability(index: int = 0) -> tuple:
    driver()
    return _STATE["driver"].Device(index).compute_capability()


def arch() -> str:
    """The PTX target for device 0: its own architecture, or sm_90 for newer ones (PTX for
    sm_90 runs on them through the driver's JIT)."""
    major, minor = min(compute_capability(), (9, 0))
    return f"sm_{major}{minor}"


def synchronize() -> None:
    driver().Context.synchronize()


def _pool() -> DeviceMemoryPool:
    if "pool" not in _STATE:
        driver()
        from pycuda.tools import DeviceMemoryPool
        _STATE["pool"] = DeviceMemoryPool()
    return _STATE["pool"]


def _attribute(name: str) -> int:
    drv = driver()
    return drv.Device(0).get_attribute(getattr(drv.device_attribute, name))


# ---------------------------------------------------------------- buffers

class DeviceBuffer:
    """Device memory holding one C-contiguous array of `shape` and numpy `dtype`."""

    __slots__ = ("shape", "dtype", "nbytes", "allocation", "__weakref__")

    def __init__(self, shape: Sequence[int], dtype: DTypeLike) -> None:
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.allocation = _pool().allocate(max(self.nbytes, 1))

    @property
    def ptr(self) -> int:
        return int(self.allocation)

    @classmethod
    def from_numpy(cls, a: np.ndarray) -> "DeviceBuffer":
        a = np.ascontiguousarray(a)
        buf = cls(a.shape, a.dtype)
        if buf.nbytes:
            driver().memcpy_htod(buf.ptr, a)
        return buf

    def to_numpy(self) -> np.ndarray:
        out = np.empty(self.shape, self.dtype)
        if self.nbytes:
            driver().memcpy_dtoh(out, self.ptr)
        return out

    def copy(self) -> "DeviceBuffer":
        out = DeviceBuffer(self.shape, self.dtype)
        out.copy_from(self)
        return out

    def copy_from(self, other: "DeviceBuffer") -> None:
        if (other.shape, other.dtype) != (self.shape, self.dtype):
            raise ValueError(f"cannot copy a {other.dtype}{list(other.shape)} buffer into a "
                             f"{self.dtype}{list(self.shape)} one")
        if self.nbytes:
            driver().memcpy_dtod(self.ptr, other.ptr, self.nbytes)

    def zero(self) -> None:
        if self.nbytes:
            driver().memset_d8(self.ptr, 0, self.nbytes)

    def __repr__(self) -> str:
        return f"DeviceBuffer({self.dtype}{list(self.shape)} at {self.ptr:#x})"


# ---------------------------------------------------------------- programs

_MODULES: dict = {}          # program key -> loaded pycuda module


def _module(program: Program) -> Module:
    module = _MODULES.get(program.key)
    if module is None:
        module = _MODULES[program.key] = driver().module_from_buffer(program.source.encode())
    return module


def _grid_cap(block: int) -> int:
    resident = _attribute("MULTIPROCESSOR_COUNT") * max(1, _attribute("MAX_THREADS_PER_MULTIPROCESSOR") // block)
    return min(resident * WAVES, _attribute("MAX_GRID_DIM_X"))


def output_specs(program: Program) -> list[tuple[str, int, tuple[int, ...], np.dtype]]:
    """(name, slot, shape, dtype) of each output of a program."""
    return [(name, slot, program.buffers[slot].shape, storage_dtype(program.buffers[slot].dtype))
            for name, slot in program.outputs.items()]


class DeviceCalls(Generic[BufferT]):
    """Calling a device program with buffers: `bind` each slot (the subclass says how), then
    `call`; or all at once. `out_specs` and `new_buffer` come from the subclass."""

    # supplied by the subclass
    program: Program
    lock: threading.RLock
    out_specs: list[tuple[str, int, tuple[int, ...], np.dtype]]      # (name, slot, shape, dtype)
    new_buffer: Callable[[tuple[int, ...], np.dtype], BufferT]
    bind: Callable[[int, BufferT], None]
    call: Callable[[], None]

    def __call__(self, inputs: Iterable[BufferT], params: Iterable[BufferT],
                 outputs: Mapping[str, BufferT] | None = None) -> dict[str, BufferT]:
        """Run with device buffers for the inputs and params (the program's shapes and
        dtypes); returns the output buffers by name, written into `outputs` where given."""
        with self.lock:          # binding and the call are one step: another thread binds after
            for slot, buf in zip(self.program.inputs, inputs):
                self.bind(slot, buf)
            for slot, buf in zip(self.program.params, params):
                self.bind(slot, buf)
            result = self.bind_outputs(outputs)
            self.call()
        return result

    def bind_outputs(self, outputs: Mapping[str, BufferT] | None = None) -> dict[str, BufferT]:
        """Bind `outputs` (name -> buffer) where given and fresh buffers elsewhere (one per
        slot: names of one value share it)."""
        result: dict[str, BufferT] = {}
        of_slot: dict[int, BufferT] = {}
        for name, slot, shape, dtype in self.out_specs:
            buf = outputs.get(name) if outputs else None
            if buf is None:
                buf = of_slot.get(slot) or self.new_buffer(shape, dtype)
            result[name] = of_slot[slot] = buf
            self.bind(slot, buf)
        return result


class CudaExecutable(DeviceCalls[DeviceBuffer]):
    new_buffer = staticmethod(lambda shape, dtype: DeviceBuffer(shape, dtype))

    def __init__(self, program: Program) -> None:
        if program.target != "cuda":
            raise ValueError(f"a {program.target!r} program cannot run on CUDA")
        drv = driver()
        self.program = program
        module = _module(program)
        self.launches = []
        for launch in program.launches:
            fn = module.get_function(launch.function)
            most = fn.get_attribute(drv.function_attribute.MAX_THREADS_PER_BLOCK)
            if launch.block > most:
                raise RuntimeError(f"kernel {launch.function} needs {launch.block} threads per block; "
                                   f"this device allows it {most}")
            scratch = None
            if launch.scratch_bytes:
                scratch = DeviceBuffer((launch.scratch_bytes,), np.uint8)
                scratch.zero()
            fn.prepare("P" * (len(launch.args) + (1 if scratch else 0)))
            grid = min(launch.grid, _grid_cap(launch.block))
            self.launches.append((fn, launch.args, scratch, (grid, 1), (launch.block, 1, 1)))
        self.stream = drv.Stream()
        self.error = DeviceBuffer((2,), np.int64)
        self.error.zero()
        self.error_host = drv.pagelocked_zeros(2, np.int64)
        self.arena = DeviceBuffer((max(program.arena_bytes, 1),), np.uint8)
        self.table = [0] * len(program.buffers)
        self.table[0] = self.error.ptr
        for b in program.buffers:
            if b.role == "temp":
                self.table[b.slot] = self.arena.ptr + b.offset
        self.bound: dict = {}            # slot -> DeviceBuffer kept alive while bound
        self.out_specs = output_specs(program)
        self.lock = threading.RLock()     # held by whoever binds and calls (see DeviceCalls)
        self._events: list | None = None   # (before, after) CUDA events per launch, made when first profiled

    def bind(self, slot: int, buf: DeviceBuffer) -> None:
        self.bound[slot] = buf
        self.table[slot] = buf.ptr

    def call(self) -> None:
        """Issue every launch with the buffers bound now; if the program can fail, wait for
        it and raise the check that failed, if any."""
        drv = driver()
        with self.lock:
            previous = _STATE.get("last_event")
            if previous is not None:
                self.stream.wait_for_event(previous)
            table = self.table
            events = self._launch_events(drv) if _PROFILERS else None
            start = time.perf_counter_ns()
            for i, (fn, args, scratch, grid, block) in enumerate(self.launches):
                pointers = [table[s] for s in args] + ([scratch.ptr] if scratch else [])
                if events is not None:
                    events[i][0].record(self.stream)
                fn.prepared_async_call(grid, block, self.stream, *pointers)
                if events is not None:
                    events[i][1].record(self.stream)
            done = drv.Event(drv.event_flags.DISABLE_TIMING)
            done.record(self.stream)
            _STATE["last_event"] = done
            if events is not None:
                self._report(events, start)
            if self.program.checks:
                drv.memcpy_dtoh_async(self.error_host, self.error.ptr, self.stream)
                self.stream.synchronize()
                if self.error_host[0]:
                    check = int(self.error_host[1])
                    self.error.zero()
                    raise_check(self.program, check)

    def _launch_events(self, drv: ModuleType) -> list:
        """A (before, after) pair of timing events per launch (made once, recorded again each call)."""
        if self._events is None:
            self._events = [(drv.Event(), drv.Event()) for _ in self.launches]
        return self._events

    def _report(self, events: list, start: int) -> None:
        """Wait for the launches, then report each kernel's time: from the first event before
        its launches to the last after them, placed on the host clock by the moment the wait
        ended (the last launch's end)."""
        stamps = np.zeros((len(self.program.kernels), 2), np.int64)      # (start, end) per kernel
        if events:
            last = events[-1][1]
            last.synchronize()
            end = time.perf_counter_ns()
            index = {k.name: i for i, k in enumerate(self.program.kernels)}
            for launch, (before, after) in zip(self.program.launches, events):
                i = index[launch.kernel]
                began = end - round(before.time_till(last) * 1e6)      # time_till: milliseconds to `last`
                ended = end - round(after.time_till(last) * 1e6)
                stamps[i, 0] = began if not stamps[i, 0] else min(stamps[i, 0], began)
                stamps[i, 1] = max(stamps[i, 1], ended)
        else:
            end = time.perf_counter_ns()
        profiling.report(profiling.NativeCall(self.program, "cuda", 1, start, end, stamps.reshape(-1),
                                              threading.get_native_id()))
