"""Shared benchmark machinery: timing, peers, machine limits, tables.

Every benchmark is measured in the same process run as its peers: warm up, then the median
of repeated timings (machines are noisy; medians and ratios are what we quote). Peers are
numpy always, and PyTorch eager, `torch.compile`, JAX `jit` and tinygrad when installed
(`pip install -e ".[bench]"`).
"""
from __future__ import annotations

import ctypes
import gc
import importlib
import os
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

PEERS = ("numpy", "torch", "torch.compile", "jax", "tinygrad")


def median_time(fn, repeat: int = 15, warmup: int = 3, min_time: float = 0.0) -> float:
    """Median seconds per call of `fn` (after `warmup` calls); repeats more for fast functions.

    Like `timeit`, the cyclic garbage collector is off while timing (after one collection):
    otherwise a peer that leaves a large heap behind (tinygrad does) makes every later
    measurement pay for full collections that have nothing to do with the code timed."""
    for _ in range(warmup):
        fn()
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        times = []
        start = time.perf_counter()
        while len(times) < repeat or time.perf_counter() - start < min_time:
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
            if len(times) > 100_000:
                break
    finally:
        if was_enabled:
            gc.enable()
    return statistics.median(times)


def best_time(fn, repeat: int = 7, warmup: int = 1) -> float:
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


def installed(name: str):
    """The peer's module, or None when it is not installed."""
    module = {"torch": "torch", "torch.compile": "torch", "jax": "jax", "tinygrad": "tinygrad"}.get(name, name)
    try:
        return importlib.import_module(module)
    except Exception:
        return None


def time_peers(peers: dict, makers: dict, repeat: int = 9, notes: list | None = None) -> dict:
    """Time each installed peer: `makers[name](module)` returns the call to time. A peer that
    fails to set up or run is left out, with the reason in `notes`."""
    for name, make in makers.items():
        module = installed(name)
        if module is None:
            continue
        try:
            peers[name] = median_time(make(module), repeat=repeat)
        except Exception as e:   # a peer's own environment problem must not stop the run
            if notes is not None:
                message = " ".join(str(e).split())
                notes.append(f"{name} failed: {type(e).__name__}" + (f" ({message[:80]})" if message else ""))
    return peers


def threads() -> int:
    from fusegrad.runtime import get_num_threads
    return get_num_threads()


# ---------------------------------------------------------------- machine limits

_LIMITS: dict = {}
BANDWIDTH_ELEMENTS = 10_000_000      # float32 per array: 40 MB, past the last-level cache


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


def _jit(text: str, name: str, argtypes: list):
    import llvmlite.binding as llvm

    from fusegrad.runtime.cpu import _new_machine, optimized_module
    engine = llvm.create_mcjit_compiler(optimized_module(text), _new_machine())
    engine.finalize_object()
    _LIMITS.setdefault("engines", []).append(engine)     # the code lives as long as its engine
    return ctypes.CFUNCTYPE(None, *argtypes)(engine.get_function_address(name))


def _on_threads(fn, args_of, nthreads: int):
    """A call running fn(*args_of(t)) on `nthreads` threads at once (ctypes drops the GIL)."""
    import threading

    def run():
        workers = [threading.Thread(target=fn, args=args_of(t)) for t in range(nthreads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    return run


def _measure_stream(kernel: str, nthreads: int) -> float:
    value = "  %r = bitcast float %vb to float" if kernel == "copy" else \
        "  %m = fmul float %vc, 3.0\n  %r = fadd float %vb, %m"      # c's load is dead in a copy
    fn = _jit(_STREAM_IR.replace("%VALUE%", value), "stream", [ctypes.c_void_p] * 3 + [ctypes.c_int64])
    n = BANDWIDTH_ELEMENTS
    a, b, c = (np.full(n, 1.0, np.float32) for _ in range(3))
    chunk = -(-n // nthreads)

    def args_of(t):
        lo, hi = t * chunk, min(n, (t + 1) * chunk)
        return (a.ctypes.data + 4 * lo, b.ctypes.data + 4 * lo, c.ctypes.data + 4 * lo, hi - lo)
    t = best_time(_on_threads(fn, args_of, nthreads), repeat=21)
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
    import llvmlite.binding as llvm
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


def _measure_fma(nthreads: int, width: int = 8) -> float:
    chains = 12
    vec = f"<{width} x float>"

    def splat(x):             # exactly representable constants (LLVM rejects inexact decimals)
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
    n = 10_000_000
    t = best_time(_on_threads(fn, lambda i: (n, out.ctypes.data + 4 * width * i), nthreads), repeat=7)
    return nthreads * n * chains * width * 2 / t


# ---------------------------------------------------------------- results

@dataclass
class Row:
    name: str
    fusegrad: float                          # median seconds
    peers: dict = field(default_factory=dict)   # peer -> median seconds
    limit: float | None = None               # fraction of the machine limit reached
    unit: str = ""                           # what `limit` is measured against
    note: str = ""


def fmt_time(t: float) -> str:
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.2f} ms"
    return f"{t * 1e6:.1f} µs"


def table(rows: list) -> str:
    """A Markdown table: fusegrad's median, its speed-up over each peer (>1: fusegrad faster)."""
    peers = [p for p in PEERS if any(p in r.peers for r in rows)]
    head = ["benchmark", "fusegrad"] + [f"vs {p}" for p in peers] + ["of machine limit", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.name, fmt_time(r.fusegrad)]
        for p in peers:
            t = r.peers.get(p)
            cells.append(f"{t / r.fusegrad:.2f}×" if t else "–")
        cells.append(f"{100 * r.limit:.0f} % {r.unit}" if r.limit is not None else "–")
        cells.append(r.note)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    import platform
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import llvmlite.binding as llvm
    return (f"{cpu} ({llvm.get_host_cpu_name()}), {os.cpu_count()} CPUs, {threads()} fusegrad threads, "
            f"Python {platform.python_version()}, numpy {np.__version__}")
