"""`fusegrad.profiler`: where the time of native calls goes, kernel by kernel, in PyTorch's shape.

Where it sits: after the pipeline, at the runtime. While a `profile()` is active, the runtime
(runtime/profiling.py) times every kernel of every native call, compiled replays and eager
realizations alike, and hands the times here; the table adds what the compiler knows of each
kernel (bytes moved, FLOPs: compiler/program.py's KernelInfo) and this machine's measured
roofline (fusegrad.roofline):

    import fusegrad
    import fusegrad.profiler

    with fusegrad.profiler.profile() as prof:
        for _ in range(100):
            train_step(x, y)
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=10))
    prof.export_chrome_trace("trace.json")       # Perfetto, chrome://tracing

Outside a profile nothing is timed: the cost is one test per native call, and one branch
per kernel in the native code.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from types import TracebackType

from .compiler.program import Program
from .roofline import Roofline, roofline
from .runtime import profiling
from .runtime.profiling import KernelEvent, NativeCall

__all__ = ["ProfilerActivity", "profile", "KernelAverage", "KernelAverages", "SORT_KEYS"]


class ProfilerActivity(Enum):
    """What to profile, as PyTorch names it: fusegrad profiles the kernels of both devices."""
    CPU = "cpu"
    CUDA = "cuda"


# sort_by keys: PyTorch's (time keys sort by kernel time, on whichever device ran the kernel) and ours
SORT_KEYS = {
    "cpu_time_total": "total", "self_cpu_time_total": "total", "device_time_total": "total",
    "cuda_time_total": "total", "self_cuda_time_total": "total", "self_device_time_total": "total",
    "cpu_time": "mean", "self_cpu_time": "mean", "device_time": "mean", "cuda_time": "mean",
    "count": "count", "calls": "count",
    "total": "total", "mean": "mean", "bytes": "bytes", "flops": "flops", "roofline": "roofline",
    "gbps": "gbps", "gflops": "gflops",
}

LEGEND = (
    "Bytes: the buffers a kernel reads and writes, each counted once per call. FLOPs: 2*M*N*K per matmul, one "
    "per output element of each unary, binary and comparison op (transcendentals such as exp, log, tanh and erf "
    "count as one), one per reduced element; where, casts and data movement count none. Roofline: the least "
    "time the kernel's bytes and FLOPs need on this machine, max(bytes / copy bandwidth, FLOPs / float32 peak) "
    "at the threads it ran on, over the time it took; the bandwidth is memory's, so a kernel whose data stays "
    "in cache can pass 100 %. GPU kernels have no roofline here.")


# ---------------------------------------------------------------- per-kernel statistics

@dataclass
class KernelAverage:
    """The runs of one kernel of one program during a profile (PyTorch's FunctionEventAvg)."""
    key: str                          # e.g. "train_step.k3": the program's name, then the kernel's
    program: Program
    index: int                        # in program.kernels
    count: int = 0
    total_ns: int = 0
    min_ns: int = 0
    max_ns: int = 0
    limit_ns: float | None = None     # the roofline's least time for all these runs (None: not known)
    threads: set = field(default_factory=set)
    events: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.program.kernels[self.index].name

    @property
    def kind(self) -> str:
        return self.program.kernels[self.index].kind

    @property
    def device(self) -> str:
        return self.events[0].device if self.events else self.program.target

    @property
    def ops(self) -> str:
        """The ops the kernel fuses, without sources and data movement ('matmul add', 'le where')."""
        quiet = {"const", "iota", "input", "param", "reshape", "permute", "expand", "slice", "pad", "window"}
        names = [f.split(" ", 1)[1] for f in self.program.kernels[self.index].fused if " " in f]
        return " ".join(n for n in names if n not in quiet) or "copy"

    @property
    def bytes_moved(self) -> int:
        """Bytes one run moves."""
        return self.program.kernels[self.index].bytes_moved

    @property
    def flops(self) -> int:
        """FLOPs one run does."""
        return self.program.kernels[self.index].flops

    @property
    def mean_ns(self) -> float:
        return self.total_ns / self.count if self.count else 0.0

    @property
    def gbps(self) -> float:
        """Achieved bandwidth: bytes moved over the time taken, GB/s."""
        return self.bytes_moved * self.count / self.total_ns if self.total_ns else 0.0

    @property
    def gflops(self) -> float:
        """Achieved arithmetic rate, GFLOP/s."""
        return self.flops * self.count / self.total_ns if self.total_ns else 0.0

    @property
    def roofline(self) -> float | None:
        """The fraction of this machine's roofline the kernel reached (None where not known)."""
        if self.limit_ns is None or not self.total_ns:
            return None
        return self.limit_ns / self.total_ns

    # PyTorch's names, in microseconds
    @property
    def cpu_time_total(self) -> float:
        return self.total_ns / 1e3

    self_cpu_time_total = device_time_total = cpu_time_total

    @property
    def cpu_time(self) -> float:
        return self.mean_ns / 1e3

    device_time = cpu_time

    def sort_value(self, key: str) -> float:
        what = SORT_KEYS[key]
        value = {"total": self.total_ns, "mean": self.mean_ns, "count": self.count, "bytes": self.bytes_moved,
                 "flops": self.flops, "gbps": self.gbps, "gflops": self.gflops}.get(what)
        if what == "roofline":
            value = self.roofline if self.roofline is not None else -1.0
        return float(value if value is not None else 0)


class KernelAverages(list):
    """The profile's KernelAverage rows (PyTorch's EventList of key_averages()), with the
    totals of the profile for the table's footer."""

    def __init__(self, rows: Iterable[KernelAverage], calls: int = 0, call_ns: int = 0, wall_ns: int = 0,
                 machine: Roofline | None = None) -> None:
        super().__init__(rows)
        self.calls, self.call_ns, self.wall_ns, self.machine = calls, call_ns, wall_ns, machine

    def table(self, sort_by: str | None = "total", row_limit: int | None = None, max_name_column_width: int = 24,
              **_pytorch_options: object) -> str:
        """The rows as a text table, largest `sort_by` first (PyTorch's keys: cpu_time_total,
        self_cpu_time_total, cpu_time, count, ...; ours: total, mean, bytes, flops, gbps,
        gflops, roofline; None: in the order the kernels first ran), at most `row_limit` rows
        (None or a negative number: all). Other PyTorch options (header, top_level_events_only,
        ...) are accepted and change nothing."""
        rows = list(self)
        if sort_by is not None:
            if sort_by not in SORT_KEYS:
                raise ValueError(f"sort_by={sort_by!r}: expected one of {', '.join(SORT_KEYS)}")
            rows.sort(key=lambda r: r.sort_value(sort_by), reverse=True)
        if row_limit is not None and row_limit >= 0:
            rows = rows[:row_limit]
        width = max([len("Kernel")] + [min(len(r.key), max_name_column_width) for r in rows])
        head = (f"{'Kernel':<{width}}  {'Ops':<24}  {'Calls':>6}  {'Total':>9}  {'Mean':>9}  {'Bytes':>8}  "
                f"{'FLOPs':>8}  {'GB/s':>7}  {'GFLOP/s':>8}  {'Roofline':>8}")
        rule = "-" * len(head)
        lines = [rule, head, rule]
        for r in rows:
            fraction = f"{100 * r.roofline:.1f} %" if r.roofline is not None else "-"
            lines.append(f"{_clip(r.key, width):<{width}}  {_clip(r.ops, 24):<24}  {r.count:>6}  "
                         f"{_time(r.total_ns):>9}  {_time(r.mean_ns):>9}  {_count(r.bytes_moved, 'B'):>8}  "
                         f"{_count(r.flops, ''):>8}  {r.gbps:>7.2f}  {r.gflops:>8.2f}  {fraction:>8}")
        lines.append(rule)
        kernel_ns = sum(r.total_ns for r in self)
        lines.append(f"Kernel time total: {_time(kernel_ns)} in {self.calls} native calls "
                     f"(the calls took {_time(self.call_ns)}; the profile lasted {_time(self.wall_ns)})")
        if self.machine is not None:
            m = self.machine
            lines.append(f"Roofline ({m.quality} measurement, python -m fusegrad.roofline): " + "; ".join(
                f"{n} thread{'s' * (n > 1)} {m.bandwidth[n] / 1e9:.1f} GB/s, {m.flops[n] / 1e9:.1f} GFLOP/s"
                for n in sorted(m.bandwidth)))
        lines += _wrap(LEGEND, len(head))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "~"


def _time(ns: float) -> str:
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e3:.1f} us"


def _count(n: float, unit: str) -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.1f} {prefix}{unit}"
    return f"{n:.0f} {unit}".strip()


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + ([line] if line else [])


# ---------------------------------------------------------------- the profile

class profile:
    """Profile the native calls made inside the block (or between start() and stop()).

    PyTorch's arguments are accepted: `activities` (ProfilerActivity.CPU / CUDA: fusegrad
    times the kernels of both devices whichever are named), `enabled=False` (record nothing),
    and record_shapes, profile_memory, with_stack, with_flops, with_modules, which change
    nothing (FLOPs and bytes are always counted). `roofline`: a Roofline to compare kernels
    with, instead of this machine's (measured once and cached: fusegrad.roofline)."""

    def __init__(self, activities: Iterable[ProfilerActivity] | None = None, *, enabled: bool = True,
                 record_shapes: bool = False, profile_memory: bool = False, with_stack: bool = False,
                 with_flops: bool = False, with_modules: bool = False, use_cuda: bool = False,
                 roofline: Roofline | None = None) -> None:
        if activities is not None:
            unknown = [a for a in activities if not isinstance(a, ProfilerActivity)]
            if unknown:
                raise TypeError(f"profile(activities=...): expected ProfilerActivity values, got {unknown!r}")
        self.enabled = enabled
        self.calls: list[NativeCall] = []     # every native call recorded, in order
        self._roofline = roofline
        self._lock = threading.Lock()
        self._start_ns = self._stop_ns = 0
        self._recording = False

    # ------------------------------------------------------------ recording

    def start(self) -> None:
        """Start recording (as entering the `with` block does)."""
        if self.enabled and not self._recording:
            self._start_ns, self._stop_ns = time.perf_counter_ns(), 0
            profiling.add_recorder(self._record)
            self._recording = True

    def stop(self) -> None:
        """Stop recording (as leaving the `with` block does); what was recorded stays."""
        if self._recording:
            profiling.remove_recorder(self._record)
            self._stop_ns = time.perf_counter_ns()
            self._recording = False

    def __enter__(self) -> profile:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _record(self, call: NativeCall) -> None:
        self.calls.append(call)            # list.append holds the GIL: calls from threads are safe

    # ------------------------------------------------------------ what was recorded

    def events(self) -> list[KernelEvent]:
        """Every kernel run recorded, in the order of the native calls."""
        return [e for call in self.calls for e in call.kernels()]

    @property
    def wall_ns(self) -> int:
        """Nanoseconds the profile has been recording (so far, while it still is)."""
        if not self._start_ns:
            return 0
        return (self._stop_ns or time.perf_counter_ns()) - self._start_ns

    @property
    def kernel_time_ns(self) -> int:
        """The sum of every recorded kernel run's time."""
        return sum(e.duration_ns for e in self.events())

    def key_averages(self, group_by_input_shape: bool = False, **_pytorch_options: object) -> KernelAverages:
        """One row per kernel of each program that ran, in the order they first ran, with the
        fraction of the roofline measured for this machine (measured about a second the
        first time on a machine, then read from the cache). group_by_input_shape changes
        nothing: a kernel has one shape."""
        rows: dict[tuple[str, int], KernelAverage] = {}
        labels = self._labels()
        for call in self.calls:
            for e in call.kernels():
                row = rows.get((e.program.key, e.index))
                if row is None:
                    row = rows[e.program.key, e.index] = KernelAverage(
                        f"{labels[e.program.key]}.{e.name}", e.program, e.index, min_ns=e.duration_ns)
                row.count += 1
                row.total_ns += e.duration_ns
                row.min_ns = min(row.min_ns, e.duration_ns)
                row.max_ns = max(row.max_ns, e.duration_ns)
                row.threads.add(e.threads)
                row.events.append(e)
        machine = self._machine(e.threads for r in rows.values() for e in r.events if e.device == "cpu")
        if machine is not None:
            for r in rows.values():
                if r.device == "cpu":
                    r.limit_ns = 1e9 * sum(machine.limit_seconds(r.bytes_moved, r.flops, e.threads) for e in r.events)
        return KernelAverages(rows.values(), calls=len(self.calls),
                              call_ns=sum(c.end_ns - c.start_ns for c in self.calls), wall_ns=self.wall_ns,
                              machine=machine)

    def _labels(self) -> dict[str, str]:
        """Program key -> its name in the table and trace: the program's name, then #2, #3, ...
        for other programs of the same name, in the order they first ran."""
        labels: dict[str, str] = {}
        counts: dict[str, int] = {}
        for call in self.calls:
            p = call.program
            if p.key not in labels:
                n = counts[p.name] = counts.get(p.name, 0) + 1
                labels[p.key] = p.name + (f"#{n}" if n > 1 else "")
        return labels

    def _machine(self, thread_counts: Iterable[int]) -> Roofline | None:
        counts = set(thread_counts)
        if not counts:
            return self._roofline
        if self._roofline is None or not counts <= set(self._roofline.bandwidth):
            self._roofline = roofline(counts | (set(self._roofline.bandwidth) if self._roofline else set()))
        return self._roofline

    def table(self, sort_by: str | None = "total", row_limit: int | None = None, max_name_column_width: int = 24,
              **_pytorch_options: object) -> str:
        """key_averages().table(...): the per-kernel table."""
        return self.key_averages().table(sort_by=sort_by, row_limit=row_limit,
                                         max_name_column_width=max_name_column_width)

    def export_chrome_trace(self, path: str | os.PathLike) -> None:
        """Write the recorded kernel runs as a Chrome trace (JSON, "X" events in microseconds
        from the profile's start; one event per kernel run, on the thread that made the call,
        GPU kernels on a 'CUDA' track), which Perfetto (ui.perfetto.dev) and chrome://tracing open."""
        with open(path, "w") as f:
            json.dump(self.chrome_trace(), f)

    def chrome_trace(self) -> dict:
        """The Chrome trace export_chrome_trace writes, as a dict."""
        pid = os.getpid()
        origin = self._start_ns or min((c.start_ns for c in self.calls), default=0)
        trace: list[dict] = [{"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                              "args": {"name": "fusegrad kernels"}}]
        tracks = set()
        labels = self._labels()
        for call in self.calls:
            tid = call.thread_id if call.device == "cpu" else 0       # GPU kernels: one track of their own
            if tid not in tracks:
                tracks.add(tid)
                trace.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                              "args": {"name": f"thread {tid}" if call.device == "cpu" else "CUDA"}})
            for e in call.kernels():
                info = e.info
                trace.append({"name": f"{labels[e.program.key]}.{e.name}", "cat": "kernel", "ph": "X", "pid": pid,
                              "tid": tid, "ts": (e.start_ns - origin) / 1e3, "dur": e.duration_ns / 1e3,
                              "args": {"program": e.program.name, "kind": info.kind, "fuses": " ".join(info.fused),
                                       "threads": e.threads, "bytes": info.bytes_moved, "flops": info.flops}})
        return {"traceEvents": trace, "displayTimeUnit": "ms"}
