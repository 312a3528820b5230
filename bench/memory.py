"""Memory of the compiled MLP training step (784 -> 256 -> 10, ReLU, cross-entropy, batch 128,
Adam): what the compiled program holds against the sum of the tensors the step keeps alive.

The program's buffer table (compiler/program.py `Program.buffers`) lists every buffer a call
touches: the inputs (the batch), the params (weights, biases, Adam moments and step counts),
the outputs (the loss and the new `.grad` tensors) and the temps (intermediates), which live
at offsets in one arena that the runtime allocates once per executable (runtime/cpu.py).
Reported:

* the step's peak memory: every buffer bound to the table plus the arena (the most a call
  can have allocated at once, since the arena is kept between calls);
* the sum of its live tensors: inputs, params, outputs, plus the intermediates live at the
  busiest point of the kernel schedule (a temp is live from the kernel writing it first to
  the last kernel reading it; without in-place reuse no arena can be smaller); and, for
  scale, the intermediates' total, which an allocator without planning would hold;
* in a fresh process, the growth of the peak RSS through the first (compiling) calls and
  through steady-state steps, and the Python/numpy allocations made by one steady-state
  step (tracemalloc; numpy reports its buffers to it).

Run: python bench/memory.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

STEPS_TO_STABLE = 3      # a step creating state (Adam moments, then grads) is traced until stable


def _nbytes(b) -> int:
    return int(np.prod(b.shape, dtype=np.int64)) * np.dtype(b.dtype).itemsize


def compiled_mlp_step():
    """The compiled MLP step after it settled on one program, and its batch (fusegrad tensors)."""
    import fusegrad
    from compiled_step import _batch, _mlp_step
    x, y = _batch()
    fx, fy = fusegrad.from_numpy(x), fusegrad.tensor(y)
    step = _mlp_step(fusegrad, fusegrad.compile)
    for _ in range(STEPS_TO_STABLE + 1):
        step(fx, fy)
    return step, fx, fy


def program_of(step):
    """The program and executable of a compiled function's (single) variant."""
    variants = step.traced_variants()
    if len(variants) != 1:
        raise RuntimeError(f"expected one traced signature, found {len(variants)}")
    return variants[0].program, variants[0].exe


def live_temp_peak(program) -> tuple[int, str]:
    """The most temp bytes live at once over the kernel schedule, and the kernel where."""
    temps = {b.slot: b for b in program.buffers if b.role == "temp"}
    first, last = {}, {}
    for i, k in enumerate(program.kernels):
        for slot in tuple(k.reads) + tuple(k.writes):
            if slot in temps:
                first.setdefault(slot, i)
                last[slot] = i
    best, where = 0, ""
    for i, k in enumerate(program.kernels):
        live = sum(_nbytes(temps[s]) for s in temps if s in first and first[s] <= i <= last[s])
        if live > best:
            best, where = live, k.name
    return best, where


def report(program, exe=None) -> dict:
    """Bytes by role, the arena, the step's peak memory and the sum of its live tensors."""
    by_role: dict = {}
    for b in program.buffers:
        count, total = by_role.get(b.role, (0, 0))
        by_role[b.role] = (count + 1, total + _nbytes(b))
    bound = sum(total for role, (_, total) in by_role.items() if role != "temp")
    arena = int(program.arena_bytes)
    if exe is not None:
        arena = max(arena, int(exe.arena.nbytes))
    temp_peak, where = live_temp_peak(program)
    temps_total = by_role.get("temp", (0, 0))[1]
    return {
        "by_role": by_role,
        "arena_bytes": arena,
        "peak_bytes": bound + arena,
        "live_bytes": bound + temp_peak,
        "temp_live_peak": temp_peak,
        "temp_live_peak_at": where,
        "temps_total": temps_total,
        "unplanned_bytes": bound + temps_total,
        "kernels": program.num_kernels,
    }


def buffer_table(program) -> str:
    """The program's buffer table as Markdown: slot, role, name, shape, dtype, bytes, offset."""
    lines = ["| slot | role | name | shape | dtype | bytes | arena offset |", "|---|---|---|---|---|---|---|"]
    for b in program.buffers:
        offset = str(b.offset) if b.role == "temp" else "–"
        lines.append(f"| {b.slot} | {b.role} | {b.name} | {tuple(b.shape)} | {b.dtype} | {_nbytes(b):,} | {offset} |")
    return "\n".join(lines)


def summary(r: dict) -> str:
    kb = lambda n: f"{n / 1024:,.1f} KiB"
    roles = ", ".join(f"{role} {count} × = {kb(total)}" for role, (count, total) in r["by_role"].items())
    return "\n".join([
        f"- buffers by role: {roles}",
        f"- arena (all {r['by_role'].get('temp', (0, 0))[0]} intermediates, planned): {kb(r['arena_bytes'])}; "
        f"intermediates live at once at most {kb(r['temp_live_peak'])} (before {r['temp_live_peak_at']}); "
        f"intermediates' total {kb(r['temps_total'])}",
        f"- **step peak memory {kb(r['peak_bytes'])}** (bound buffers + arena) vs **sum of live tensors "
        f"{kb(r['live_bytes'])}** (inputs, params incl. Adam moments, outputs incl. grads, busiest intermediates): "
        f"{r['peak_bytes'] / r['live_bytes']:.2f}×; without planning {kb(r['unplanned_bytes'])}",
    ])


_RSS_SCRIPT = textwrap.dedent("""
    import json, sys, tracemalloc
    sys.path.insert(0, {bench!r})
    import numpy as np, fusegrad
    from compiled_step import _batch, _mlp_step
    def status(key):           # /proc/self/status in bytes (getrusage's maxrss survives exec)
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))
    rss, peak = (lambda: status("VmRSS")), (lambda: status("VmHWM"))
    x, y = _batch()
    fx, fy = fusegrad.from_numpy(x), fusegrad.tensor(y)
    step = _mlp_step(fusegrad, fusegrad.compile)
    out = {{"base": rss(), "base_peak": peak()}}
    for _ in range({stable}):
        step(fx, fy)
    out.update(compiled=rss(), compiled_peak=peak())
    for _ in range(200):
        step(fx, fy)
    out.update(steady=rss(), steady_peak=peak())
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(10):
        step(fx, fy)
    now, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out.update(alloc_peak=top - before, retained_10_steps=now - before)
    print(json.dumps(out))
""")


def rss_growth() -> dict:
    """RSS (current and peak) of a fresh process with an empty compile cache: after imports
    and data, after the compiling calls, after 200 steady steps; tracemalloc over 10 steps."""
    script = _RSS_SCRIPT.format(bench=os.path.dirname(os.path.abspath(__file__)), stable=STEPS_TO_STABLE)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, FUSEGRAD_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def rss_summary(r: dict) -> str:
    mib = lambda n: f"{n / 2**20:.1f} MiB"
    return (f"- RSS of a fresh process (empty compile cache): {mib(r['base'])} after imports and data "
            f"(peak {mib(r['base_peak'])}); {mib(r['compiled'])} after the first {STEPS_TO_STABLE} calls "
            f"(tracing, passes, LLVM, arena; peak {mib(r['compiled_peak'])}); {mib(r['steady'])} after 200 "
            f"more steps (peak {mib(r['steady_peak'])}); 10 steady steps allocate at most "
            f"{r['alloc_peak'] / 1024:.1f} KiB at once through Python/numpy (tracemalloc) and keep "
            f"{r['retained_10_steps'] / 1024:.1f} KiB")


def section(with_rss: bool = True) -> str:
    """The memory report as Markdown (for run_all)."""
    step, _, _ = compiled_mlp_step()
    program, exe = program_of(step)
    parts = ["### Memory: compiled MLP step 784-256-10, batch 128, Adam", "", summary(report(program, exe))]
    if with_rss:
        try:
            parts.append(rss_summary(rss_growth()))
        except Exception as e:      # a measurement problem must not stop the suite
            parts.append(f"- peak RSS: not measured ({type(e).__name__}: {e})")
    parts += ["", "<details><summary>buffer table</summary>", "", buffer_table(program), "", "</details>"]
    return "\n".join(parts)


if __name__ == "__main__":
    print(section())
