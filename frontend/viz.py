"""`fusegrad.viz`: pictures of compiled programs.

- `render(lowered, "graph.svg", profile=None)` draws the kernel graph (the `dot` text of
  `lower(...).to_dot()`: kernels as clusters of the nodes they fuse, edges that read a buffer
  labelled with its size) with Graphviz's `dot` program; after profiling, each kernel is
  filled by the fraction of the machine's roofline it reached (red 0 %, yellow 50 %, green
  100 %). Graphviz is a system program, not a Python package: without it, `render` says how
  to install it (a path ending in `.dot` is written without it).
- `roofline_plot(profile_or_lowered, "roofline.png")` plots one point per kernel on this
  machine's roofline (matplotlib, an optional dependency).

What is drawn comes from the compiled `Program` alone, so anything holding one will do:
`CompiledFunction.lower(...)`, `fusegrad.ir.load(...)`, `fusegrad.program_of(tensor)`.

A profile is a `fusegrad.profiler.profile` (its `key_averages()` rows are read), or rows of
one's own, each with `name` (the kernel's, e.g. 'k3'), `bytes_moved` (or `bytes`), `flops`,
and its time as `total_ns` and `count` (or `seconds`, for one run); optionally `program`
(the Program it belongs to: rows of other programs are skipped) and `roofline` (the fraction
reached, else computed from the limits). Limits are a `fusegrad.roofline.Roofline`, the
profile's own (`key_averages().machine`), or `bandwidth` (bytes/s) and `peak_flops` (FLOP/s).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from .compiler.program import Program
from .roofline import Roofline, roofline

__all__ = ["GraphvizNotFoundError", "KernelPoint", "dot_source", "kernel_points", "render", "roofline_plot"]

INSTALL_GRAPHVIZ = ("Graphviz's `dot` program is not installed (it is a system package, not a Python one): "
                    "install it with `apt-get install graphviz` (Debian, Ubuntu), `brew install graphviz` "
                    "(macOS) or `conda install graphviz`, or write the text of `lowered.to_dot()` to a file "
                    "and render it elsewhere (a path ending in .dot writes that text).")


class GraphvizNotFoundError(RuntimeError):
    """`render` needs Graphviz's `dot` program, which is not on the PATH."""


@dataclass(frozen=True)
class KernelPoint:
    """One kernel as drawn: its name, bytes and FLOPs per run, seconds per run (None without
    a profile) and the fraction of the roofline it reached (None where not known)."""
    name: str
    kind: str
    bytes: int
    flops: int
    seconds: float | None = None
    fraction: float | None = None


def program_of(obj: Any) -> Program:
    """The Program behind `obj`: a Program, or anything with a `.program` (Lowered, Loaded)."""
    program = obj if isinstance(obj, Program) else getattr(obj, "program", None)
    if not isinstance(program, Program):
        raise TypeError(f"expected a compiled program (lower(...), fusegrad.ir.load(...), fusegrad.program_of(t)), "
                        f"got {type(obj).__name__}")
    return program


def _limits(profile: Any, machine: Roofline | None, bandwidth: float | None,
            peak_flops: float | None) -> tuple[float, float] | None:
    """(bytes/s, FLOP/s) for one thread count: the arguments, else the machine's or the
    profile's roofline at its largest thread count; None when none is known."""
    machine = machine or getattr(profile, "machine", None)
    if machine is not None and machine.bandwidth:
        n = max(machine.bandwidth)
        bandwidth = bandwidth or machine.bandwidth[n]
        peak_flops = peak_flops or machine.flops[n]
    return (bandwidth, peak_flops) if bandwidth and peak_flops else None


def kernel_points(obj: Any, profile: Any = None, *, machine: Roofline | None = None,
                  bandwidth: float | None = None, peak_flops: float | None = None) -> list[KernelPoint]:
    """One KernelPoint per kernel of the program behind `obj`, with the times and roofline
    fractions of `profile`'s rows for it (see the module's docstring)."""
    program = program_of(obj)
    rows: dict[str, Any] = {}
    if profile is not None:
        profile_rows = profile.key_averages() if hasattr(profile, "key_averages") else profile
        for r in profile_rows:
            p = getattr(r, "program", None)
            if p is None or p is program or (isinstance(p, Program) and p.key == program.key):
                rows.setdefault(r.name, r)
        profile = profile_rows
    limits = _limits(profile, machine, bandwidth, peak_flops)
    points = []
    for k in program.kernels:
        r = rows.get(k.name)
        seconds = fraction = None
        if r is not None:
            seconds = _seconds(r)
            fraction = getattr(r, "roofline", None)
            if fraction is None and limits is not None and seconds:
                fraction = max(k.bytes_moved / limits[0], getattr(k, "flops", 0) / limits[1]) / seconds
        points.append(KernelPoint(k.name, k.kind, k.bytes_moved, getattr(k, "flops", 0), seconds, fraction))
    return points


def _seconds(row: Any) -> float | None:
    if getattr(row, "seconds", None) is not None:
        return float(row.seconds)
    total, count = getattr(row, "total_ns", None), getattr(row, "count", None)
    return total / count / 1e9 if total is not None and count else None


def fraction_color(fraction: float) -> str:
    """A Graphviz HSV fill for a roofline fraction: red at 0, yellow at 0.5, green at 1 (and above)."""
    f = min(max(fraction, 0.0), 1.0)
    return f"{f / 3:.3f} 0.450 1.000"


def dot_source(obj: Any, profile: Any = None, **limits: Any) -> str:
    """The `dot` text `render` draws: `obj`'s kernel graph, each kernel that `profile` timed
    filled by the fraction of the roofline it reached (`limits`: see kernel_points)."""
    program = program_of(obj)
    text = obj.to_dot() if hasattr(obj, "to_dot") else program.stages.get("dot")
    if not text:
        raise ValueError(f"program {program.name} has no dot stage")
    if profile is None:
        return text
    points = {p.name: p for p in kernel_points(obj, profile, **limits)}
    lines: list[str] = []
    cluster = None                    # the kernel whose cluster the previous line opened
    for line in text.splitlines():
        lines.append(line)
        p = points.get(cluster) if cluster is not None else None
        if p is not None and p.fraction is not None:      # after the cluster's own attributes
            label = f"{p.name}: {p.kind}\\n{100 * p.fraction:.0f} % of roofline, {_time(p.seconds)}"
            lines.append(f'    style="rounded,filled"; fillcolor="{fraction_color(p.fraction)}"; label="{label}";')
        m = re.fullmatch(r"  subgraph cluster_(\S+) \{", line)
        cluster = m.group(1) if m else None
    return "\n".join(lines)


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us" if seconds >= 1e-6 else f"{seconds * 1e9:.0f} ns"


def render(obj: Any, path: str | os.PathLike, profile: Any = None, *, format: str | None = None,
           **limits: Any) -> str:
    """Draw the kernel graph of `obj` (see the module's docstring) to `path`, in `format`
    (default: the path's suffix: svg, png, pdf, ...; 'dot' writes the text itself) with
    Graphviz's `dot` program. Returns the path. GraphvizNotFoundError, saying how to install
    it, when `dot` is not on the PATH."""
    path = os.fspath(path)
    fmt = format or os.path.splitext(path)[1].lstrip(".").lower() or "svg"
    text = dot_source(obj, profile, **limits)
    if fmt in ("dot", "gv"):
        with open(path, "w") as f:
            f.write(text + "\n")
        return path
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizNotFoundError(INSTALL_GRAPHVIZ)
    done = subprocess.run([exe, f"-T{fmt}", "-o", path], input=text, text=True, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"dot -T{fmt} failed ({done.returncode}): {done.stderr.strip()}")
    return path


def roofline_plot(obj: Any, path: str | os.PathLike, profile: Any = None, *, machine: Roofline | None = None,
                  bandwidth: float | None = None, peak_flops: float | None = None) -> str:
    """Plot one point per kernel on the roofline and save it to `path` (matplotlib).

    `obj` is a profile (every program it timed: achieved FLOP/s against FLOPs per byte) or
    anything holding a program (then `profile`, if given, times its kernels; without one
    each kernel sits on the roof, at the best it could do). The roof is `machine`, or
    `bandwidth` and `peak_flops`, else the profile's, else this machine's
    (fusegrad.roofline.roofline(), measured once and cached). Kernels without FLOPs (copies,
    data movement) have no place on a log scale: they are named in the legend instead."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("roofline_plot needs matplotlib: pip install matplotlib") from None
    has_program = isinstance(obj, Program) or isinstance(getattr(obj, "program", None), Program)
    timings = obj if not has_program else profile
    if timings is not None and hasattr(timings, "key_averages"):
        timings = timings.key_averages()          # a KernelAverages list, with the profile's .machine
    limits = _limits(timings, machine, bandwidth, peak_flops) or _limits(None, roofline(), None, None)
    assert limits is not None
    if has_program:
        program = program_of(obj)
        points = kernel_points(program, timings, bandwidth=limits[0], peak_flops=limits[1])
        title = f"{program.name}: {program.num_kernels} kernels" + \
            (" (profiled)" if timings is not None else " (no timings: each kernel at its roof)")
    else:
        points = [KernelPoint(getattr(r, "key", r.name), getattr(r, "kind", ""), _bytes(r), getattr(r, "flops", 0),
                              _seconds(r), getattr(r, "roofline", None)) for r in timings]
        title = f"{len(points)} kernels profiled"
    bw, peak = limits
    drawn = [p for p in points if p.flops > 0 and p.bytes > 0]
    flat = [p.name for p in points if p not in drawn]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    intensities = [p.flops / p.bytes for p in drawn] or [1.0]
    lo, hi = min(intensities + [peak / bw]) / 10, max(intensities + [peak / bw]) * 10
    xs = [lo, peak / bw, hi]
    ax.plot(xs, [bw * x if x < peak / bw else peak for x in xs], color="black", linewidth=1.5,
            label=f"roof: {bw / 1e9:.1f} GB/s, {peak / 1e9:.1f} GFLOP/s")
    for p in drawn:
        x = p.flops / p.bytes
        timed = p.seconds is not None and p.seconds > 0
        y = p.flops / p.seconds if timed and p.seconds else min(peak, bw * x)
        ax.scatter([x], [y], s=30, color="tab:blue" if timed else "none", edgecolors="tab:blue", zorder=3)
        ax.annotate(p.name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if flat:
        ax.plot([], [], " ", label="no FLOPs, not drawn: " + ", ".join(flat[:12]) + (" ..." if len(flat) > 12 else ""))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FLOPs per byte moved")
    ax.set_ylabel("FLOP/s")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
    plt.close(fig)
    return os.fspath(path)


def _bytes(row: Any) -> int:
    value = getattr(row, "bytes_moved", None)
    return int(value if value is not None else getattr(row, "bytes", 0))
