"""Shared benchmark machinery: timing, peers, machine limits (from fusegrad.roofline), tables.

Every benchmark is measured in the same process run as its peers: warm up, then the median
of repeated timings (machines are noisy; medians and ratios are what we quote). Peers are
numpy always, and PyTorch eager, `torch.compile`, JAX `jit` and tinygrad when installed
(`pip install -e ".[bench]"`).
"""
from __future__ import annotations

import gc
import importlib
import statistics
import time
from dataclasses import dataclass, field

# The machine's limits are measured by fusegrad.roofline (the profiler uses them too); the
# benchmarks import its measuring functions from here.
from fusegrad.roofline import (  # noqa: F401
    _LIMITS,
    BANDWIDTH_ELEMENTS,
    best_time,
    copy_bandwidth,
    describe,
    flops_limit,
    peak_flops,
    stream_bandwidth,
    threads,
    vector_widths,
)

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
    return describe()
