"""The machine's roofline: memory bandwidth and float32 FMA peak, measured per thread count.

Where it sits: beside the pipeline, not in it. `fusegrad.profiler` divides each kernel's time
by the least time its bytes and FLOPs need on this machine (`Roofline.limit_seconds`), and
the benchmarks (bench/common.py imports the measuring functions from here) quote their
results against the same limits.

Both limits are measured with loops JIT-compiled through the runtime's LLVM setup, run on
n Python threads at once (ctypes releases the GIL), best of several runs (other work on the
machine can only make a measurement lower):
- bandwidth: a STREAM-style copy `a[i] = b[i]` over 10M float32 per array (40 MB, past the
  last-level cache of most CPUs), counting bytes read and written (no write-allocate traffic);
- FLOP/s: 12 independent chains of float32 FMAs on the widest vectors the CPU has (8 lanes for
  AVX2, 16 for AVX-512), 2 FLOPs per lane per FMA; the n-thread limit is the better of the
  n-thread measurement and n times the one-thread one (the cores are alike).

The n-thread limits are at least the one-thread ones (n times its FLOP/s, its bandwidth): a
measurement on a busy machine comes out low, never high, and a kernel whose fraction passes
100 % says so (`python -m fusegrad.roofline --remeasure` on a quiet machine replaces it).

`roofline()` returns the limits for the thread counts asked for, measuring the missing ones
quickly (about a second in all) the first time; the result is cached in the compile cache
folder (FUSEGRAD_CACHE_DIR, signed like every entry there) under a key made from the CPU's
identity: model, LLVM's name and features for it, and its CPU count. `python -m
fusegrad.roofline` prints them, measuring them the benchmarks' way (more repeats) if the cache
has no such measurement yet (`--remeasure` measures again).
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import platform
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import llvmlite.binding as llvm
import numpy as np

from .runtime import get_num_threads
from .runtime.cache import ObjectCache
from .runtime.cpu import _new_machine, optimized_module

BANDWIDTH_ELEMENTS = 10_000_000      # float32 per array: 40 MB, past the last-level cache
FMA_ITERATIONS = 10_000_000          # iterations of the FMA loop per thread (12 chains each)
# the profiler's measurement: many short runs, so that the best of them finds a quiet moment on a busy machine
QUICK = {"stream_repeat": 9, "fma_iterations": 500_000, "fma_repeat": 15}
FULL = {"stream_repeat": 21, "fma_iterations": FMA_ITERATIONS, "fma_repeat": 7}   # the benchmarks'

_LIMITS: dict = {}                   # the benchmarks' measurements in this process, by what was measured
_CODE: dict = {}                     # JIT-compiled loops by (IR text, name), with their engines


def threads() -> int:
    """The worker threads fusegrad runs parallel kernels on."""
    return get_num_threads()


def best_time(fn: Callable[[], object], repeat: int = 7, warmup: int = 1) -> float:
    """Fastest of `repeat` timed calls: for the machine's limits, which other work on the
    machine can only make look lower, never higher."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


# ---------------------------------------------------------------- measuring

def copy_bandwidth() -> float:
    """Bytes per second of copying 10M float32 (40 MB read + 40 MB written): the better of
    numpy's copy (memcpy, one thread) and a JIT-compiled copy loop on all fusegrad threads."""
    if "bw" not in _LIMITS:
        src = np.random.rand(BANDWIDTH_ELEMENTS).astype(np.float32)
        dst = np.empty_like(src)
        t = best_time(lambda: np.copyto(dst, src), repeat=21)
        _LIMITS["numpy copy"] = 2 * src.nbytes / t
        _LIMITS["bw"] = max(_LIMITS["numpy copy"], stream_bandwidth("copy"))
    return _LIMITS["bw"]


def stream_bandwidth(kernel: str = "triad", nthreads: int | None = None) -> float:
    """Bytes per second of a STREAM-style loop JIT-compiled with llvmlite on `nthreads` threads
    (each its own contiguous part): "copy" a[i] = b[i] (8 bytes per element) or "triad"
    a[i] = b[i] + s * c[i] (12 bytes per element; write-allocate traffic not counted, as STREAM)."""
    nthreads = nthreads or threads()
    key = (kernel, nthreads)
    if key not in _LIMITS:
        _LIMITS[key] = _measure_stream(kernel, nthreads)
    return _LIMITS[key]


_STREAM_IR = """
define void @stream(ptr noalias %a, ptr noalias %b, ptr noalias %c, i64 %n) {
entry:
  %empty = icmp sle i64 %n, 0
  br i1 %empty, label %done, label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %loop]
  %pb = getelementptr inbounds float, ptr %b, i64 %i
  %vb = load float, ptr %pb
  %pc = getelementptr inbounds float, ptr %c, i64 %i
  %vc = load float, ptr %pc
%VALUE%
  %pa = getelementptr inbounds float, ptr %a, i64 %i
  store float %r, ptr %pa
  %i1 = add nuw nsw i64 %i, 1
  %more = icmp slt i64 %i1, %n
  br i1 %more, label %loop, label %done
done:
  ret void
}
"""


def _jit(text: str, name: str, argtypes: list) -> Callable:
    """The function `name` of LLVM IR `text`, optimised as programs are, callable with ctypes
    (compiled once per process; the code lives as long as its engine, kept here)."""
    key = (text, name)
    if key not in _CODE:
        engine = llvm.create_mcjit_compiler(optimized_module(text), _new_machine())
        engine.finalize_object()
        _CODE[key] = (engine, ctypes.CFUNCTYPE(None, *argtypes)(engine.get_function_address(name)))
    return _CODE[key][1]


def _on_threads(fn: Callable, args_of: Callable[[int], tuple], nthreads: int) -> Callable[[], None]:
    """A call running fn(*args_of(t)) on `nthreads` threads at once (ctypes drops the GIL)."""
    def run() -> None:
        workers = [threading.Thread(target=fn, args=args_of(t)) for t in range(nthreads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    return run


def _measure_stream(kernel: str, nthreads: int, repeat: int = FULL["stream_repeat"]) -> float:
    value = "  %r = bitcast float %vb to float" if kernel == "copy" else \
        "  %m = fmul float %vc, 3.0\n  %r = fadd float %vb, %m"      # c's load is dead in a copy
    fn = _jit(_STREAM_IR.replace("%VALUE%", value), "stream", [ctypes.c_void_p] * 3 + [ctypes.c_int64])
    n = BANDWIDTH_ELEMENTS
    a, b, c = (np.full(n, 1.0, np.float32) for _ in range(3))
    chunk = -(-n // nthreads)

    def args_of(t: int) -> tuple:
        lo, hi = t * chunk, min(n, (t + 1) * chunk)
        return (a.ctypes.data + 4 * lo, b.ctypes.data + 4 * lo, c.ctypes.data + 4 * lo, hi - lo)
    t = best_time(_on_threads(fn, args_of, nthreads), repeat=repeat)
    return (8 if kernel == "copy" else 12) * n / t


def peak_flops(nthreads: int | None = None, width: int | None = None) -> float:
    """FLOP/s of 12 independent chains of `width`-lane float32 FMAs on `nthreads` threads,
    measured with a JIT-compiled loop (2 flops per lane per FMA). Without `width`: the best of
    8 lanes (AVX2 ymm) and 16 lanes (AVX-512 zmm, where the CPU has it), the machine's
    float32 arithmetic limit."""
    nthreads = nthreads or threads()
    if width is None:
        return max(peak_flops(nthreads, w) for w in vector_widths())
    key = ("flops", nthreads, width)
    if key not in _LIMITS:
        _LIMITS[key] = _measure_fma(nthreads, width)
    return _LIMITS[key]


def flops_limit(nthreads: int | None = None) -> float:
    """The float32 FLOP/s limit for `nthreads` threads: the better of the measured peak on that
    many threads and that many times the one-thread peak (other work on the machine can only
    lower a measurement; the cores are alike)."""
    nthreads = nthreads or threads()
    return max(peak_flops(nthreads), nthreads * peak_flops(1))


def vector_widths() -> tuple:
    """float32 lanes of the host's FMA vectors: 8 (AVX2), and 16 with AVX-512F."""
    llvm.initialize_native_target()
    features = llvm.get_host_cpu_features()
    return (8, 16) if features.get("avx512f") else (8,)


_FMA_IR = """
define void @fma_loop(i64 %n, ptr %out) {
entry:
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %loop]
%PHIS%
%BODY%
  %i1 = add i64 %i, 1
  %c = icmp slt i64 %i1, %n
  br i1 %c, label %loop, label %done
done:
%SUM%
  store %V% %s%LAST%, ptr %out, align 4
  ret void
}
declare %V% @llvm.fma.v%W%f32(%V%, %V%, %V%)
"""


def _measure_fma(nthreads: int, width: int = 8, iterations: int = FMA_ITERATIONS,
                 repeat: int = FULL["fma_repeat"]) -> float:
    chains = 12
    vec = f"<{width} x float>"

    def splat(x: str) -> str:   # exactly representable constants (LLVM rejects inexact decimals)
        return "<" + ", ".join([f"float {x}"] * width) + ">"
    # a <- a * 0.5 + 0.25 converges to 0.5: no overflow, no denormals
    phis = "\n".join(f"  %a{j} = phi {vec} [{splat('1.0')}, %entry], [%b{j}, %loop]" for j in range(chains))
    body = "\n".join(f"  %b{j} = call {vec} @llvm.fma.v{width}f32({vec} %a{j}, {vec} {splat('0.5')}, "
                     f"{vec} {splat('0.25')})" for j in range(chains))
    total = "\n".join(f"  %s{j} = fadd {vec} {'%s' + str(j - 1) if j else '%b0'}, %b{j + 1 if j else 0}"
                      for j in range(chains - 1))
    text = _FMA_IR.replace("%PHIS%", phis).replace("%BODY%", body).replace("%SUM%", total) \
        .replace("%LAST%", str(chains - 2)).replace("%V%", vec).replace("%W%", str(width))
    fn = _jit(text, "fma_loop", [ctypes.c_int64, ctypes.c_void_p])
    out = np.zeros(16 * nthreads, np.float32)
    t = best_time(_on_threads(fn, lambda i: (iterations, out.ctypes.data + 4 * width * i), nthreads), repeat=repeat)
    return nthreads * iterations * chains * width * 2 / t


# ---------------------------------------------------------------- the machine

def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform module says."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def identity() -> dict:
    """What the roofline is cached under: the CPU model, LLVM's name and features for the host
    CPU, and the number of CPUs."""
    llvm.initialize_native_target()
    return {"cpu": cpu_model(), "llvm_cpu": llvm.get_host_cpu_name(),
            "features": llvm.get_host_cpu_features().flatten(), "cpus": os.cpu_count() or 1}


def describe() -> str:
    """The machine in one line: CPU, CPU count, fusegrad's threads, Python and numpy versions."""
    llvm.initialize_native_target()
    return (f"{cpu_model()} ({llvm.get_host_cpu_name()}), {os.cpu_count()} CPUs, {threads()} fusegrad threads, "
            f"Python {platform.python_version()}, numpy {np.__version__}")


# ---------------------------------------------------------------- the roofline, cached

@dataclass
class Roofline:
    """Measured limits of this machine per thread count: copy bandwidth (bytes/s) and float32
    FLOP/s; `quality` says how they were measured ('quick': the profiler's ~1 s measurement,
    'full': the benchmarks' repeats)."""
    identity: dict
    bandwidth: dict[int, float] = field(default_factory=dict)
    flops: dict[int, float] = field(default_factory=dict)
    quality: str = "quick"
    measured: float = 0.0                # time.time() of the last measurement

    def limit_seconds(self, nbytes: int, flops: int, nthreads: int) -> float:
        """The least time moving `nbytes` and doing `flops` can take on `nthreads` threads:
        max(bytes / bandwidth, FLOPs / peak FLOP/s)."""
        n = self._nearest(nthreads)
        return max(nbytes / self.bandwidth[n], flops / self.flops[n])

    def ridge(self, nthreads: int) -> float:
        """FLOPs per byte above which a kernel on `nthreads` threads is bound by arithmetic."""
        n = self._nearest(nthreads)
        return self.flops[n] / self.bandwidth[n]

    def _nearest(self, nthreads: int) -> int:
        if nthreads in self.bandwidth:
            return nthreads
        if not self.bandwidth:
            raise ValueError("the roofline has no measurement")
        return min(self.bandwidth, key=lambda n: (abs(n - nthreads), n))

    def to_json(self) -> str:
        return json.dumps({"format": "fusegrad-roofline/1", "identity": self.identity, "quality": self.quality,
                           "measured": self.measured, "bandwidth": {str(n): v for n, v in self.bandwidth.items()},
                           "flops": {str(n): v for n, v in self.flops.items()}}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Roofline:
        """The roofline `to_json` wrote; ValueError for anything else."""
        try:
            data = json.loads(text)
            if data.pop("format") != "fusegrad-roofline/1":
                raise ValueError("not a roofline record")
            limits = [{int(n): float(v) for n, v in data[k].items()} for k in ("bandwidth", "flops")]
            if set(limits[0]) != set(limits[1]) or any(v <= 0 or n < 1 for d in limits for n, v in d.items()):
                raise ValueError("inconsistent limits")
            if data["quality"] not in ("quick", "full") or not isinstance(data["identity"], dict):
                raise ValueError("bad quality or identity")
            return cls(data["identity"], limits[0], limits[1], data["quality"], float(data["measured"]))
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"not a roofline record: {e}") from None


CACHE = ObjectCache(".roofline", load=Roofline.from_json, save=lambda r: r.to_json().encode(), max_entries=16)


def cache_key(ident: dict) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


STATS = {"measurements": 0}           # thread counts measured in this process (by `measure`)
_MEASURING = threading.Lock()


def measure(nthreads: int, quick: bool = True) -> tuple[float, float]:
    """(copy bytes/s, float32 FLOP/s) on `nthreads` threads, measured now."""
    q = QUICK if quick else FULL
    bandwidth = _measure_stream("copy", nthreads, repeat=q["stream_repeat"])
    peak = max(_measure_fma(nthreads, w, q["fma_iterations"], q["fma_repeat"]) for w in vector_widths())
    STATS["measurements"] += 1
    return bandwidth, peak


def roofline(thread_counts: Iterable[int] | None = None, quick: bool = True, remeasure: bool = False) -> Roofline:
    """This machine's roofline for `thread_counts` (default: one thread and fusegrad's
    threads), from the cache, measuring the counts it lacks (one thread always: n threads
    get at least n times its FLOP/s) and caching the result. `quick`: the ~1 s measurement,
    else the benchmarks' (which also replaces a quick one); `remeasure`: measure all again."""
    counts = set(thread_counts) if thread_counts is not None else {1, threads()}
    if any(type(n) is not int or n < 1 for n in counts):
        raise ValueError(f"thread counts are positive whole numbers, not {sorted(counts)}")
    ident = identity()
    key = cache_key(ident)
    with _MEASURING:
        entry = None if remeasure else CACHE.get(key)
        if entry is not None and (entry.identity != ident or (not quick and entry.quality != "full")):
            entry = None
        if entry is None:
            entry = Roofline(ident, quality="quick" if quick else "full")
        missing = sorted((counts | {1}) - set(entry.bandwidth))
        if not missing:
            return entry
        for n in missing:
            entry.bandwidth[n], entry.flops[n] = measure(n, quick)
        for n in entry.flops:       # n threads do at least what one does (n times its arithmetic)
            entry.flops[n] = max(entry.flops[n], n * entry.flops[1])
            entry.bandwidth[n] = max(entry.bandwidth[n], entry.bandwidth[1])
        if quick:
            entry.quality = "quick"
        entry.measured = time.time()
        CACHE.put(key, entry)
        return entry


def table(r: Roofline) -> str:
    """The roofline as a small text table."""
    lines = [f"{'threads':>7}  {'copy GB/s':>10}  {'fp32 GFLOP/s':>13}  {'ridge FLOP/byte':>15}"]
    for n in sorted(r.bandwidth):
        lines.append(f"{n:>7}  {r.bandwidth[n] / 1e9:>10.1f}  {r.flops[n] / 1e9:>13.1f}  {r.ridge(n):>15.2f}")
    return "\n".join(lines)


def _thread_list(text: str) -> Sequence[int]:
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected thread counts such as 1,4, got {text!r}")
    return counts


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fusegrad.roofline",
                                     description="This machine's roofline: copy bandwidth and float32 FMA peak "
                                                 "per thread count, measured once and cached.")
    parser.add_argument("--threads", type=_thread_list, default=None,
                        help="comma-separated thread counts (default: 1 and fusegrad's threads)")
    parser.add_argument("--quick", action="store_true", help="the profiler's quick measurement, not the full one")
    parser.add_argument("--remeasure", action="store_true", help="measure again even if cached")
    args = parser.parse_args(argv)
    start, before = time.perf_counter(), STATS["measurements"]
    r = roofline(args.threads, quick=args.quick, remeasure=args.remeasure)
    fresh = STATS["measurements"] > before
    print(describe())
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.measured))
    print(f"{r.quality} measurement of {when}: "
          + (f"measured now ({time.perf_counter() - start:.1f} s)" if fresh else "from the cache"))
    print(table(r))
    print("copy: a[i] = b[i] over 10M float32, bytes read + written; FLOP/s: float32 FMA chains, the n-thread "
          "figure or n times the one-thread one, whichever is higher")


if __name__ == "__main__":
    main()
