"""Threads on a busy machine: a compiled MLP training step at one thread, at every thread, and
with the thread count the runtime chooses (the default), alone and beside busy processes.

A busy process (a Python loop that never sleeps) is started on all CPUs but one, so the
step's worker threads compete for cores. libgomp joins the threads at the end of every
parallel kernel, so a worker that does not get a core stalls the whole step; the runtime's
default choice measures each program's calls at one thread and at all of them and keeps the
faster. Each line gives the median, the 90th percentile and the mean of single-call times.

Run: python bench/threads.py [--calls N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import fusegrad

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from replay_overhead import mlp_step  # noqa: E402  (the same compiled MLP step)


def _times(fn, calls: int) -> tuple[float, float, float]:
    """(median, 90th percentile, mean) of `calls` single-call times, in ms, after a warm-up."""
    for _ in range(max(20, calls // 10)):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))], statistics.fmean(times)


def _busy_processes(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    step = mlp_step()
    settings = [("1 thread", 1), (f"{cpus} threads", cpus), ("chosen by the runtime", None)]
    print(f"compiled MLP step (784-256-10, batch 128, SGD momentum), {cpus} CPUs, "
          f"load {os.getloadavg()[0]:.2f} before the run")
    print(f"{'':24s} {'alone':>33s} {f'{max(cpus - 1, 1)} busy process(es)':>37s}")
    rows: dict = {}
    for busy in (False, True):
        procs = _busy_processes(max(cpus - 1, 1)) if busy else []
        try:
            time.sleep(0.5 if busy else 0.0)
            for label, n in settings:
                fusegrad.runtime.set_num_threads(n)
                rows.setdefault(label, []).append(_times(step, args.calls))
        finally:
            for p in procs:
                p.kill()
                p.wait()
    fusegrad.runtime.set_num_threads(None)
    for label, results in rows.items():
        cells = "".join(f"  median {m:6.2f} p90 {p:6.2f} mean {a:6.2f} ms" for m, p, a in results)
        print(f"{label:24s}{cells}")


if __name__ == "__main__":
    main()
