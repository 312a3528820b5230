"""Every CPU benchmark in one run, one table.

    python bench/run_all.py [--quick] [--only GROUP[,GROUP...]] [--write] [--list]

Prints the machine (CPU, cores, measured copy and triad bandwidth, measured peak FLOP/s,
versions), then one Markdown table: for each benchmark fusegrad's median time, its speed-up
over each installed peer (numpy, PyTorch eager, `torch.compile`, JAX `jit`, tinygrad; > 1 means
fusegrad is faster) and the fraction of the machine's limit it reached; then the memory of the
compiled MLP training step. Peers run in the same run, warmed up, medians over repeats; a peer
that fails is left out with the reason in the note column.

Groups: elementwise, reductions (sum, softmax, log_softmax, cross-entropy), gemm (1024^3 and
the MLP shapes, on 1 and 2 threads), linreg (the 5,000-epoch loop, compiled step and eager),
mlp (MLP step, SGD and Adam, compiled and eager), models (the digits CNN step and a 4-layer
transformer step, compiled, against PyTorch eager and torch.compile), first_call (compile
latency, cold and warm disk cache), compile_time (bench/compile_time.py's first calls: the
linreg step and the MLP Adam step unrolled 1 to 16 times, cold and warm, against torch.compile),
memory.

GEMM rows run in one worker process per thread count, with OPENBLAS_NUM_THREADS,
OMP_NUM_THREADS, FUSEGRAD_NUM_THREADS (and torch.set_num_threads, XLA's and tinygrad's
settings) fixed before numpy, fusegrad or a peer starts.

--quick: fewer repeats, 512^3 instead of 1024^3, 500 epochs instead of 5,000 (a smoke run; its
numbers are not the results).
--write: also write bench/RESULTS.md (machine, table, memory, date).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import io
import json
import os
import platform
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

GROUPS = ("elementwise", "reductions", "gemm", "linreg", "mlp", "models", "first_call", "compile_time", "memory")
THREAD_COUNTS = (1, 2)
QUICK = {"median_repeat": 0.35}


def thread_env(n: int) -> dict:
    """Environment fixing every library's thread count to n (read when each one starts)."""
    return {"OPENBLAS_NUM_THREADS": str(n), "OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n),
            "FUSEGRAD_NUM_THREADS": str(n), "NUM_CPU_THREADS": str(n),          # tinygrad's CPU device
            "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") +
                          (" --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
                           if n == 1 else "")).strip()}


# ---------------------------------------------------------------- quick mode

def make_quick() -> None:
    """Fewer repeats in every benchmark module, a 512^3 GEMM and 500-epoch loops (before they run)."""
    import common
    full = common.median_time

    def quick_median(fn, repeat=15, warmup=3, min_time=0.0):
        return full(fn, repeat=max(5, int(repeat * QUICK["median_repeat"])), warmup=min(warmup, 2),
                    min_time=min_time * QUICK["median_repeat"])
    common.median_time = quick_median
    for name in ("elementwise", "reductions", "compiled_step", "train_loop", "models"):
        module = importlib.import_module(name)
        if hasattr(module, "median_time"):
            module.median_time = quick_median
    import compiled_step
    import train_loop
    # elementwise and reductions keep their sizes: smaller arrays would sit in the last-level
    # cache, and their fractions of the (memory) copy bandwidth would mean nothing
    compiled_step.EPOCHS = 500
    train_loop.EPOCHS = 500


# ---------------------------------------------------------------- machine

def _versions() -> dict:
    from importlib import metadata
    out = {"Python": platform.python_version()}
    for dist in ("numpy", "llvmlite", "torch", "jax", "jaxlib", "tinygrad"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    try:
        import llvmlite.binding as llvm
        out["LLVM"] = ".".join(map(str, llvm.llvm_version_info))
    except Exception:
        pass
    try:
        import threadpoolctl
        for lib in threadpoolctl.threadpool_info():
            if lib.get("user_api") == "blas":
                out["numpy BLAS"] = (f"{lib.get('internal_api')} {lib.get('version')} "
                                     f"({lib.get('architecture')} kernels)")
                break
    except Exception:
        import numpy as np
        try:
            blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
            out["numpy BLAS"] = f"{blas.get('name')} {blas.get('version')}"
        except Exception:
            pass
    return out


def _git() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + (" (with uncommitted changes)" if dirty else "")
    except Exception:
        return "unknown"


def machine_section() -> tuple[str, dict]:
    """The machine in Markdown, and its limits for the table."""
    import llvmlite.binding as llvm
    import numpy as np  # noqa: F401

    import common
    cpu = platform.processor() or "unknown CPU"
    mhz = ""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        cpu = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        flags = next(line for line in info.splitlines() if line.startswith("flags")).split()
        mhz = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("cpu MHz")), "")
    except (OSError, StopIteration):
        flags = []
    llvm.initialize_native_target()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    vec = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "?"
    limits = {"copy": common.copy_bandwidth(), "numpy copy": common._LIMITS.get("numpy copy")}
    for n in THREAD_COUNTS:
        limits[("copy", n)] = common.stream_bandwidth("copy", n)
        limits[("triad", n)] = common.stream_bandwidth("triad", n)
        for w in common.vector_widths():
            limits[("fma", n, w)] = common.peak_flops(n, w)
        limits[("peak", n)] = common.flops_limit(n)
    gb = lambda x: f"{x / 1e9:.1f} GB/s"
    gf = lambda x: f"{x / 1e9:.0f} GFLOP/s"
    fma = "; ".join(f"{n} thread{'s' * (n > 1)}: " + ", ".join(
        f"{w}-lane {gf(limits[('fma', n, w)])}" for w in common.vector_widths()) for n in THREAD_COUNTS)
    lines = [
        f"- CPU: {cpu} (LLVM host CPU `{llvm.get_host_cpu_name()}`, {vec}"
        + (f", {float(mhz):.0f} MHz reported" if mhz else "") + f"); {os.cpu_count()} CPUs, "
        f"{affinity} usable; fusegrad uses {common.threads()} threads by default",
        f"- load average at start: {os.getloadavg()[0]:.2f} (other work on the machine slows everything, "
        "two-thread runs most)",
        f"- memory bandwidth (10M float32 arrays, best of 21): numpy copy (1 thread) {gb(limits['numpy copy'])}; "
        + "; ".join(f"JIT loop on {n} thread{'s' * (n > 1)}: copy {gb(limits[('copy', n)])}, "
                    f"triad {gb(limits[('triad', n)])}" for n in THREAD_COUNTS)
        + f". Bandwidth rows count bytes read and written against the best copy, {gb(limits['copy'])} "
        "(copy and triad count read and written bytes alike; no write-allocate traffic).",
        f"- peak float32 FLOP/s, measured: 12 independent FMA chains in a JIT-compiled loop (best of 7): {fma}. "
        "FLOP/s rows use as the limit, at n threads, the best width's n-thread figure or n times its one-thread "
        "figure, whichever is higher: " + ", ".join(f"{gf(limits[('peak', n)])} at {n}" for n in THREAD_COUNTS) + ".",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in _versions().items()) + f"; fusegrad at {_git()}",
    ]
    return "\n".join(lines), limits


# ---------------------------------------------------------------- GEMM (worker processes)

def gemm_cases(quick: bool) -> list:
    big = 512 if quick else 1024
    return [
        dict(label=f"matmul {big}x{big} @ {big}x{big}", kind="mm", m=big, k=big, n=big),
        dict(label="relu(x @ W.T + b) 128x784 @ 784x256", kind="linear_relu", m=128, k=784, n=256),
        dict(label="X.T @ dY 784x128 @ 128x256", kind="at_b", m=784, k=128, n=256),
        dict(label="dY @ W 128x256 @ 256x784", kind="mm", m=128, k=256, n=784),
    ]


def _gemm_operands(case: dict):
    import numpy as np
    rng = np.random.default_rng(0)
    m, k, n = case["m"], case["k"], case["n"]
    f32 = lambda *shape: rng.standard_normal(shape, dtype=np.float32)
    if case["kind"] == "mm":
        return f32(m, k), f32(k, n)
    if case["kind"] == "at_b":
        return f32(k, m), f32(k, n)            # A stored as X (k x m): the product reads X.T
    return f32(m, k), f32(n, k), f32(n)        # x, W in nn.Linear's layout, b


def _gemm_fn(m, kind: str):
    """The case as a function of module `m` (numpy, torch, jax.numpy, or tensors' methods)."""
    if kind == "mm":
        return lambda a, b: a @ b
    if kind == "at_b":
        return lambda a, b: a.T @ b
    relu = (lambda v: v.relu()) if m is None else getattr(m, "relu", None) or (lambda v: m.maximum(v, 0))
    return lambda x, w, b: relu(x @ w.T + b)


def gemm_worker(threads: int, quick: bool, rounds: int) -> None:
    """Runs in a process whose thread settings were fixed before it started; prints JSON rows."""
    import statistics

    import numpy as np

    import common
    import fusegrad
    if quick:
        make_quick()
    median_time = common.median_time
    settle = 0.2 if threads > 1 else 0.0     # OpenBLAS's and libgomp's idle threads spin a while
    peak = common.flops_limit(threads)
    actual = common.threads()
    mismatch = [] if actual == threads else [f"fusegrad ran {actual} thread(s), not {threads}"]
    rows = []
    for case in gemm_cases(quick):
        arrays = _gemm_operands(case)
        flops = 2 * case["m"] * case["n"] * case["k"]
        big = flops > 1e9
        repeat, min_time = (9, 0.0) if big else (50, 0.3)
        notes = list(mismatch)
        tensors = [fusegrad.from_numpy(a) for a in arrays]
        compiled = fusegrad.compile(_gemm_fn(None, case["kind"]))
        if case["kind"] == "linear_relu":
            x, w, b = arrays

            def numpy_call(x=x, w=w, b=b):      # numpy's matmul, then its bias and ReLU in place
                c = x @ w.T
                c += b
                np.maximum(c, 0, out=c)
                return c
        else:
            numpy_call = (lambda f=_gemm_fn(np, case["kind"]): f(*arrays))
        expected = _gemm_fn(np, case["kind"])(*(a.astype(np.float64) for a in arrays))
        got = compiled(*tensors).numpy()
        if not np.allclose(got, expected, rtol=1e-3, atol=1e-3 * np.sqrt(case["k"])):
            notes.append(f"WRONG RESULT (max error {np.abs(got - expected).max():.3g})")
        time.sleep(settle)                 # the check's float64 matmul leaves OpenBLAS threads spinning
        ours, theirs = [], []
        for _ in range(rounds):            # alternate, so that other load falls on both alike
            ours.append(median_time(lambda: compiled(*tensors), repeat=repeat, min_time=min_time))
            time.sleep(settle)
            theirs.append(median_time(numpy_call, repeat=repeat, min_time=min_time))
            time.sleep(settle)
        t = statistics.median(ours)
        peers = {"numpy": statistics.median(theirs)}
        common.time_peers(peers, {
            "torch": lambda torch: _torch_gemm(torch, case, arrays, threads, compiled=False),
            "torch.compile": lambda torch: _torch_gemm(torch, case, arrays, threads, compiled=True),
            "jax": lambda jax: _jax_gemm(jax, case, arrays),
            "tinygrad": lambda tiny: _tinygrad_gemm(tiny, case, arrays)},
            repeat=repeat, notes=notes)
        gf = lambda s: flops / s / 1e9
        rows.append(dict(name=f"GEMM {case['label']}, {threads} thread{'s' * (threads > 1)}", fusegrad=t,
                         peers=peers, limit=flops / t / peak, unit="peak FLOP/s",
                         note="; ".join([f"{gf(t):.0f} GFLOP/s, numpy {gf(peers['numpy']):.0f}"] + notes)))
    print("ROWS " + json.dumps(rows), flush=True)


def _torch_gemm(torch, case, arrays, threads, compiled):
    torch.set_num_threads(threads)
    args = [torch.from_numpy(a) for a in arrays]
    fn = _gemm_fn(torch, case["kind"])
    if compiled:
        fn = torch.compile(fn)
        fn(*args)
    return lambda: fn(*args)


def _jax_gemm(jax, case, arrays):
    import jax.numpy as jnp
    args = [jnp.asarray(a) for a in arrays]
    fn = jax.jit(_gemm_fn(jnp, case["kind"]))
    return lambda: fn(*args).block_until_ready()


def _tinygrad_gemm(tiny, case, arrays):
    args = [tiny.Tensor(a).realize() for a in arrays]
    fn = _gemm_fn(None, case["kind"])
    try:      # TinyJit replays the captured kernels without re-scheduling: tinygrad's fast path
        jitted = tiny.TinyJit(lambda *xs: fn(*xs).realize())
        for _ in range(3):
            jitted(*args)
        return lambda: jitted(*args)
    except Exception:
        return lambda: fn(*args).realize()


def gemm_rows(quick: bool, rounds: int, failures: list) -> list:
    from common import Row
    rows = []
    for n in THREAD_COUNTS:
        env = dict(os.environ, **thread_env(n))
        cmd = [sys.executable, os.path.abspath(__file__), "--gemm-worker", str(n), "--rounds", str(rounds)] + \
            (["--quick"] if quick else [])
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("ROWS ")), None)
        if proc.returncode != 0 or line is None:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            failures.append(f"- gemm, {n} thread(s): worker exited with {proc.returncode}: {last}")
            continue
        rows += [Row(**r) for r in json.loads(line[5:])]
    return rows


# ---------------------------------------------------------------- the groups

# The MLP step's matmul FLOPs: forward, weight gradient and input gradient of each layer, less the
# input gradient of the first layer (the batch needs none); elementwise work and Adam not counted.
MLP_FLOPS = 3 * 2 * 128 * (784 * 256 + 256 * 10) - 2 * 128 * 784 * 256


def run_group(name: str, args, limits: dict, failures: list) -> list:
    quick = args.quick
    if name == "elementwise":
        import elementwise
        return elementwise.rows()
    if name == "reductions":
        import reductions
        return reductions.rows()
    if name == "gemm":
        return gemm_rows(quick, 1 if quick else args.rounds, failures)
    if name == "linreg":
        import compiled_step
        import train_loop
        return compiled_step.linreg_rows() + train_loop.linreg_rows()
    if name == "mlp":
        import common
        import compiled_step
        import train_loop
        rows, names = [], set()
        for r in compiled_step.mlp_rows() + train_loop.mlp_rows():
            if r.name not in names:         # both time the eager Adam step; the first has more peers
                names.add(r.name)
                rows.append(r)
        peak = limits.get(("peak", common.threads())) or common.flops_limit()
        for r in rows:                      # the step's matmul FLOPs against the machine's peak
            if r.limit is None:
                r.limit, r.unit = MLP_FLOPS / r.fusegrad / peak, "peak FLOP/s"
        return rows
    if name == "models":
        import models
        return models.rows()
    if name == "first_call":
        import compiled_step
        return compiled_step.first_call_rows()
    if name == "compile_time":
        import compile_time
        return compile_time.rows(quick)
    raise ValueError(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (smoke run)")
    parser.add_argument("--only", default="", help="comma-separated groups: " + ", ".join(GROUPS))
    parser.add_argument("--write", action="store_true", help="write bench/RESULTS.md")
    parser.add_argument("--list", action="store_true", help="list the groups and exit")
    parser.add_argument("--rounds", type=int, default=3, help="GEMM: alternations of fusegrad and numpy")
    parser.add_argument("--gemm-worker", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.list:
        print("\n".join(GROUPS))
        return
    if args.gemm_worker:
        gemm_worker(args.gemm_worker, args.quick, args.rounds)
        return
    groups = [g.strip() for g in args.only.split(",") if g.strip()] or list(GROUPS)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; groups are {', '.join(GROUPS)}")

    import common
    if args.quick:
        make_quick()
    started = time.perf_counter()
    log = lambda msg: print(f"[{time.perf_counter() - started:6.1f} s] {msg}", file=sys.stderr, flush=True)
    log("measuring the machine")
    machine, limits = machine_section()
    rows, failures, memory, timings = [], [], "", []
    for g in groups:
        log(f"running {g}")
        t0 = time.perf_counter()
        try:
            if g == "memory":
                import memory as memory_module
                memory = memory_module.section()
            else:
                rows += run_group(g, args, limits, failures)
        except Exception as e:         # one broken group must not lose the others' results
            failures.append(f"- {g}: {type(e).__name__}: {e}")
            traceback.print_exc()
        timings.append(f"{g} {time.perf_counter() - t0:.0f} s")
    total = time.perf_counter() - started
    log("done")

    out = io.StringIO()
    mode = ("QUICK SMOKE RUN (few repeats, 512^3 GEMM, 500-epoch loops; noisy, not the results)" if args.quick
            else "full run")
    print(f"## fusegrad benchmarks: {mode}", file=out)
    print(f"\n{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; `python bench/run_all.py"
          f"{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`; {total:.0f} s ({', '.join(timings)}); "
          f"load average at the end {os.getloadavg()[0]:.2f}\n", file=out)
    print("### Machine\n", file=out)
    print(machine, file=out)
    if rows:
        print("\n### Results\n", file=out)
        print("Median times; `vs X` is X's median over fusegrad's (> 1: fusegrad faster; – where the peer is not "
              "installed, not measured for that row, or failed, with the reason in the note). \"of machine "
              "limit\": bytes moved over the copy bandwidth, or FLOPs over the FLOP/s limit at the row's thread "
              "count (MLP, CNN and transformer rows: the step's matmul and convolution FLOPs only). Rows without "
              "a thread count run on fusegrad's default threads, peers on theirs.\n", file=out)
        print(common.table(rows), file=out)
    if memory:
        print("\n" + memory, file=out)
    if failures:
        print("\n### Failed groups\n", file=out)
        print("\n".join(failures), file=out)
    text = out.getvalue()
    print(text)
    if args.write:
        with open(os.path.join(HERE, "RESULTS.md"), "w") as f:
            f.write("# Benchmark results\n\nWritten by `python bench/run_all.py --write`; rerun it on a quiet machine "
                    "to refresh. Numbers vary with the machine and its load; ratios measured in the same run are "
                    "what to compare.\n\n" + text)
        log("wrote bench/RESULTS.md")


if __name__ == "__main__":
    main()
