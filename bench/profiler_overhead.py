"""What profiling costs a compiled replay: off (the default) against on, and against a build
without the profiler's hooks ("before"), measured in the same run.

Rows: the bare native call of `x * 2 + 1` on 1,000 elements (the executable an eager
realization made, called again: where the hooks' cost would show most), the same function
compiled and replayed (almost all fixed cost), and the digits MLP's compiled Adam step
(Linear(64,128)-ReLU-Linear(128,10), cross-entropy, batch 64: examples/profile_mlp.py's model,
on random data of the same shapes). Each mode runs in a worker process of its own (one
fusegrad thread, so other load on the machine matters less), the modes alternating round
after round so that load which comes and goes falls on all of them alike. Each worker times
15 batches of calls; the table shows the median over the rounds of each worker's median batch
(mean time per call), and in brackets the best batch of all rounds (other load only ever
adds time, so the best is the steadiest figure on a busy machine).

    python bench/profiler_overhead.py [--rounds 5] [--calls 2000] [--before-rev REV | --before DIR]

--before-rev REV builds the "before" package from git revision REV (frontend/, compiler/,
runtime/ as the installed package lays them out) in a temporary folder; --before DIR uses a
folder that holds such a `fusegrad` package. Without either, only off and on are measured.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CASES = ("native call of x*2+1 on 1,000 elements", "compiled x*2+1 on 1,000 elements, replayed",
         "digits MLP Adam step (64-128-10, batch 64), replayed")


# ---------------------------------------------------------------- the worker

def _per_call(fn, calls: int, batches: int = 15) -> tuple[float, float]:
    """(median, best) over `batches` of the mean time of `calls` calls, in microseconds."""
    for _ in range(5):
        fn()
    times = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(batches):
            start = time.perf_counter_ns()
            for _ in range(calls):
                fn()
            times.append((time.perf_counter_ns() - start) / calls / 1e3)
    finally:
        gc.enable()
    return statistics.median(times), min(times)


def worker(mode: str, calls: int) -> None:
    """Time every case in this process (`mode`: before, off or on); prints one JSON line."""
    import contextlib

    import numpy as np

    import fusegrad
    from fusegrad import nn
    from fusegrad.realize import _PROGRAMS  # to reach the executable a realization made (internal)
    fusegrad.runtime.set_num_threads(1)

    x1 = fusegrad.ones(1000)
    (x1 * 2 + 1).numpy()
    executable = next(reversed(_PROGRAMS.values()))[0]
    tiny = fusegrad.compile(lambda x: x * 2 + 1)

    fusegrad.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = fusegrad.optim.Adam(model.parameters(), lr=1e-2)
    criterion = nn.CrossEntropyLoss()

    @fusegrad.compile
    def train_step(x, y):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    rng = np.random.default_rng(0)
    x = fusegrad.from_numpy(rng.random((64, 64), dtype=np.float32))
    y = fusegrad.from_numpy(rng.integers(0, 10, 64))
    if mode == "on":
        import fusegrad.profiler
        recording = fusegrad.profiler.profile()
    else:
        recording = contextlib.nullcontext()
    with recording:
        result = {CASES[0]: _per_call(executable.call, 10 * calls),
                  CASES[1]: _per_call(lambda: tiny(x1), calls),
                  CASES[2]: _per_call(lambda: train_step(x, y), max(1, calls // 10))}
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------- the driver

def build_before(rev: str, folder: str) -> str:
    """A folder holding revision `rev`'s package as `fusegrad/` (frontend/ with compiler/ and
    runtime/ inside, as the installed package maps them)."""
    src = os.path.join(folder, "src")
    os.makedirs(src)
    archive = subprocess.run(["git", "archive", rev, "frontend", "compiler", "runtime"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
    package = os.path.join(folder, "pkg", "fusegrad")
    shutil.copytree(os.path.join(src, "frontend"), package)
    shutil.copytree(os.path.join(src, "compiler"), os.path.join(package, "compiler"))
    shutil.copytree(os.path.join(src, "runtime"), os.path.join(package, "runtime"))
    return os.path.join(folder, "pkg")


def run_worker(mode: str, calls: int, before: str | None) -> dict:
    env = dict(os.environ)
    if mode == "before":
        env["PYTHONPATH"] = before + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else before
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", mode, "--calls", str(calls)],
                          env=env, cwd=HERE, capture_output=True, text=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        raise RuntimeError(f"{mode} worker failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(line[7:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternations of the modes")
    parser.add_argument("--calls", type=int, default=2000,
                        help="calls per batch (the native call: ten times as many, the MLP step: a tenth)")
    parser.add_argument("--before-rev", default=None, help="git revision to build the 'before' package from")
    parser.add_argument("--before", default=None, help="folder holding the 'before' fusegrad package")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.calls)
        return
    with tempfile.TemporaryDirectory(prefix="fusegrad-before-") as tmp:
        before = args.before or (build_before(args.before_rev, tmp) if args.before_rev else None)
        modes = (["before"] if before else []) + ["off", "on"]
        results: dict = {m: {c: [] for c in CASES} for m in modes}
        for r in range(args.rounds):
            for m in modes if r % 2 == 0 else modes[::-1]:
                for case, us in run_worker(m, args.calls, before).items():
                    results[m][case].append(us)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    med = {m: {c: statistics.median(v[0] for v in results[m][c]) for c in CASES} for m in modes}
    best = {m: {c: min(v[1] for v in results[m][c]) for c in CASES} for m in modes}
    load = os.getloadavg()
    print(f"Time per call in microseconds, one fusegrad thread: median over {args.rounds} rounds of each worker's "
          f"median batch [best batch]; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
          + (f"; before = {args.before_rev or args.before}" if before else ""))
    head = "| case | " + " | ".join(modes) + " | " + ("off / before | " if before else "") + "on / off |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for c in CASES:
        cells = [c] + [f"{med[m][c]:.2f} [{best[m][c]:.2f}]" for m in modes]
        ratio = lambda a, b: f"{med[a][c] / med[b][c]:.3f} [{best[a][c] / best[b][c]:.3f}]"
        if before:
            cells.append(ratio("off", "before"))
        cells.append(ratio("on", "off"))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
