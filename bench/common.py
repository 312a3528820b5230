"""Shared benchmark machinery: timing, peers, machine limits, tables.

Every benchmark is measured in the same process run as its peers: warm up, then the median
of repeated timings (machines are noisy; medians and ratios are what we quote). Peers are
numpy always, and PyTorch eager, `torch.compile`, JAX `jit` and tinygrad when installed
(`pip install -e ".[bench]"`).
"""
from __future__ import annotations

import ctypes
import importlib
import os
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

PEERS = ("numpy", "torch", "torch.compile", "jax", "tinygrad")


def median_time(fn, repeat: int = 15, warmup: int = 3, min_time: float = 0.0) -> float:
    """Median seconds per call of `fn` (after `warmup` calls); repeats more for fast functions."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if len(times) > 100_000:
            break
    return statistics.median(times)


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
                notes.append(f"{name}: {type(e).__name__}")
    return peers


def threads() -> int:
    from fusegrad.runtime import get_num_threads
    return get_num_threads()


# ---------------------------------------------------------------- machine limits

_LIMITS: dict = {}


def copy_bandwidth() -> float:
    """Bytes per second of a numpy copy of 10M float32 (40 MB read + 40 MB written)."""
    if "bw" not in _LIMITS:
        src = np.random.rand(10_000_000).astype(np.float32)
        dst = np.empty_like(src)
        t = median_time(lambda: np.copyto(dst, src), repeat=11)
        _LIMITS["bw"] = 2 * src.nbytes / t
    return _LIMITS["bw"]


def peak_flops(nthreads: int | None = None) -> float:
    """FLOP/s of independent 8-wide FMA chains, measured with a JIT-compiled loop: the
    machine's arithmetic limit for float32 (2 flops per lane per FMA)."""
    nthreads = nthreads or threads()
    key = ("flops", nthreads)
    if key not in _LIMITS:
        _LIMITS[key] = _measure_fma(nthreads)
    return _LIMITS[key]


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
  store <8 x float> %s%LAST%, ptr %out
  ret void
}
declare <8 x float> @llvm.fma.v8f32(<8 x float>, <8 x float>, <8 x float>)
"""


def _measure_fma(nthreads: int) -> float:
    import threading

    import llvmlite.binding as llvm
    from fusegrad.runtime.cpu import _new_machine, optimized_module
    chains = 12
    phis = "\n".join(f"  %a{j} = phi <8 x float> [<float 1.0, float 1.0, float 1.0, float 1.0, float 1.0, "
                     f"float 1.0, float 1.0, float 1.0>, %entry], [%b{j}, %loop]" for j in range(chains))
    mul = "<float 0.999, float 0.999, float 0.999, float 0.999, float 0.999, float 0.999, float 0.999, float 0.999>"
    add = "<float 0.001, float 0.001, float 0.001, float 0.001, float 0.001, float 0.001, float 0.001, float 0.001>"
    body = "\n".join(f"  %b{j} = call <8 x float> @llvm.fma.v8f32(<8 x float> %a{j}, <8 x float> {mul}, "
                     f"<8 x float> {add})" for j in range(chains))
    total = "\n".join(f"  %s{j} = fadd <8 x float> {'%s' + str(j - 1) if j else '%b0'}, %b{j + 1 if j else 0}"
                      for j in range(chains - 1))
    text = _FMA_IR.replace("%PHIS%", phis).replace("%BODY%", body).replace("%SUM%", total) \
        .replace("%LAST%", str(chains - 2))
    engine = llvm.create_mcjit_compiler(optimized_module(text), _new_machine())
    engine.finalize_object()
    fn = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p)(engine.get_function_address("fma_loop"))
    out = np.zeros(8 * nthreads, np.float32)
    n = 20_000_000

    def run():
        workers = [threading.Thread(target=fn, args=(n, out.ctypes.data + 32 * t)) for t in range(nthreads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    t = median_time(run, repeat=5, warmup=1)
    _LIMITS["engine"] = engine
    return nthreads * n * chains * 8 * 2 / t


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
        lines.append("| " + " | ".join(cells) + " |")
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
