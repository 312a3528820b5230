"""The runtime's profiling hooks (runtime/profiling.py): per-kernel timestamps from the native
entry point, what a call reports, and what profiling costs when it is off.

Times are checked against independent measurements taken here with time.perf_counter_ns
around the same calls; the FLOPs each kernel reports are checked against counts worked out by
hand for small graphs.
"""
from __future__ import annotations

import ctypes
import json
import time
from types import SimpleNamespace

import numpy as np
import pytest

import fusegrad
from fusegrad.compiler.codegen import cpu as codegen_cpu
from fusegrad.compiler.codegen import cpu_runner
from fusegrad.compiler.program import HOST_CALLS, Program, ProgramFormatError
from fusegrad.realize import _PROGRAMS
from fusegrad.runtime import cpu as runtime_cpu
from fusegrad.runtime import objects, profiling
from fusegrad.runtime.cuda import CudaExecutable


def executable_of(t) -> runtime_cpu.CpuExecutable:
    """The executable that realized `t` (realization keeps the most recent last)."""
    t.numpy()
    program = fusegrad.program_of(t)
    return next(exe for exe, p in reversed(_PROGRAMS.values()) if p is program)


def profile_pointer(exe: runtime_cpu.CpuExecutable) -> int | None:
    address = exe._engine.get_global_value_address(runtime_cpu.PROFILE_GLOBAL)
    return ctypes.c_void_p.from_address(address).value


def test_the_runtime_and_codegen_name_the_same_globals():
    assert runtime_cpu.PROFILE_GLOBAL == cpu_runner.PROFILE_GLOBAL
    assert runtime_cpu.CLOCK_GLOBAL == cpu_runner.CLOCK_GLOBAL
    assert runtime_cpu.HOST_ALL_REDUCE_GLOBAL == codegen_cpu.HOST_ALL_REDUCE_GLOBAL
    assert runtime_cpu.HOST_CALLS == HOST_CALLS
    assert objects.KERNEL_PREFIX == codegen_cpu.SYMBOL_PREFIX


def test_the_runtime_lays_the_plan_out_as_the_runner_reads_it():
    names = [n for n in vars(cpu_runner) if n.startswith(("RUN_", "W_", "F_")) or n == "PHASE_WORDS"]
    assert names and all(getattr(runtime_cpu, n) == getattr(cpu_runner, n) for n in names)


def test_without_a_recorder_nothing_is_timed_and_the_profile_pointer_stays_null():
    x = fusegrad.rand(1000)
    exe = executable_of((x * 3).exp())
    assert not profiling.ACTIVE
    exe.call()
    assert exe._profile is None and profile_pointer(exe) is None
    calls = []
    with profiling.recording(calls.append):
        exe.call()
    assert len(calls) == 1 and calls[0].kernel_ns is not None
    assert profile_pointer(exe) is None           # set for the profiled call only
    assert not profiling.ACTIVE
    exe.call()
    assert len(calls) == 1


def test_kernel_times_lie_inside_the_call_in_launch_order():
    x, w = fusegrad.rand(64, 128), fusegrad.rand(128, 32)
    h = (x @ w).relu()
    out = h.sum(dim=0) + h.T.sum(dim=1)
    exe = executable_of(out)
    calls = []
    with profiling.recording(calls.append):
        before = time.perf_counter_ns()
        exe.call()
        after = time.perf_counter_ns()
    (call,) = calls
    assert before <= call.start_ns <= call.end_ns <= after
    kernels = call.kernels()
    assert [k.index for k in kernels] == list(range(len(exe.program.kernels)))   # every kernel writes something
    assert len(kernels) >= 2
    previous_end = call.start_ns
    for k in kernels:
        assert previous_end <= k.start_ns < k.end_ns <= call.end_ns
        previous_end = k.end_ns
        assert k.threads == (call.threads if k.info.parallel else 1)


def test_a_kernel_time_agrees_with_the_call_timed_from_python():
    x = fusegrad.rand(1 << 20)
    exe = executable_of(((x * 2).exp() + 1).sin())
    assert len(exe.program.kernels) == 1
    calls, outer = [], []
    with profiling.recording(calls.append):
        for _ in range(5):
            start = time.perf_counter_ns()
            exe.call()
            outer.append(time.perf_counter_ns() - start)
    inner = [c.kernels()[0].duration_ns for c in calls]
    assert all(kernel_ns <= call_ns for kernel_ns, call_ns in zip(inner, outer))
    ratios = sorted(kernel_ns / call_ns for kernel_ns, call_ns in zip(inner, outer))
    assert ratios[2] >= 0.8, (inner, outer)        # the median: a call preempted outside the kernel may differ


def test_a_failed_check_reports_the_kernels_that_ran():
    x, w = fusegrad.rand(10, 8), fusegrad.rand(8, 4)
    out = fusegrad.index_select(x, 0, fusegrad.tensor([1, 50, 2])) @ w
    calls = []
    with profiling.recording(calls.append), pytest.raises(IndexError, match="out of range"):
        out.numpy()
    (call,) = calls
    kinds = [k.kind for k in call.program.kernels]
    assert kinds == ["elementwise", "matmul"]      # the gather, then the matmul it never reached
    assert [k.info.kind for k in call.kernels()] == ["elementwise"]
    assert call.kernel_ns[2:].tolist() == [0, 0]


def test_flops_and_bytes_each_kernel_reports():
    a, b = fusegrad.rand(8, 16), fusegrad.rand(16, 4)
    c = a @ b
    c.numpy()
    (mm,) = fusegrad.program_of(c).kernels
    assert (mm.kind, mm.flops) == ("matmul", 2 * 8 * 4 * 16)
    assert mm.bytes_moved == 4 * (8 * 16 + 16 * 4 + 8 * 4)
    x = fusegrad.rand(100)
    y = (x * 2 + 1).exp()                           # mul, add, exp: 3 per element
    y.numpy()
    assert [k.flops for k in fusegrad.program_of(y).kernels] == [300]
    m = fusegrad.rand(8, 16)
    s = m.sum(dim=1)                                # one add per reduced element
    s.numpy()
    assert [k.flops for k in fusegrad.program_of(s).kernels] == [128]


def test_program_json_keeps_flops_and_requires_them():
    x = fusegrad.rand(32, 32)
    y = (x @ x).exp()
    y.numpy()
    program = fusegrad.program_of(y)
    again = Program.from_json(program.to_json())
    assert [k.flops for k in again.kernels] == [k.flops for k in program.kernels]
    assert again.kernels[0].flops == 2 * 32 * 32 * 32 + 32 * 32
    data = json.loads(program.to_json())
    del data["kernels"][0]["flops"]
    with pytest.raises(ProgramFormatError):
        Program.from_json(json.dumps(data))
    data["kernels"][0]["flops"] = -1
    with pytest.raises(ProgramFormatError):
        Program.from_json(json.dumps(data))


class FakeEvent:
    """A CUDA event recorded at `at` milliseconds (time_till: milliseconds until another)."""

    def __init__(self, at: float) -> None:
        self.at = at

    def time_till(self, other: FakeEvent) -> float:
        return other.at - self.at

    def synchronize(self) -> None:
        pass


def test_cuda_kernel_times_span_their_launches():
    kernels = [SimpleNamespace(name=n, parallel=False) for n in ("k0", "k1", "k2")]
    launches = [SimpleNamespace(kernel="k0"), SimpleNamespace(kernel="k1"), SimpleNamespace(kernel="k1")]
    fake = SimpleNamespace(program=SimpleNamespace(kernels=kernels, launches=launches))
    events = [(FakeEvent(0.0), FakeEvent(1.0)), (FakeEvent(1.0), FakeEvent(2.0)), (FakeEvent(2.5), FakeEvent(4.0))]
    calls = []
    with profiling.recording(calls.append):
        CudaExecutable._report(fake, events, time.perf_counter_ns())
    (call,) = calls
    end = call.end_ns                              # the last launch ended when the wait returned
    assert call.kernel_ns.tolist() == [end - 4_000_000, end - 3_000_000, end - 3_000_000, end, 0, 0]
    assert [(k.name, k.duration_ns, k.device) for k in call.kernels()] == [("k0", 1_000_000, "cuda"),
                                                                           ("k1", 3_000_000, "cuda")]


def test_recorders_come_and_go():
    seen_a, seen_b = [], []
    x = fusegrad.rand(100)
    exe = executable_of(x + 1)
    with profiling.recording(seen_a.append):
        exe.call()
        with profiling.recording(seen_b.append):
            exe.call()
        exe.call()
    exe.call()
    assert (len(seen_a), len(seen_b)) == (3, 1)
    assert seen_b[0] in seen_a
    assert not profiling.ACTIVE
    stamps = np.array(seen_a[0].kernel_ns)
    assert stamps.dtype == np.int64 and stamps.shape == (2,)
