"""Compile time: the first call of compiled training steps, stage by stage.

Each measurement is the first call of a `@fusegrad.compile` function in a fresh process:
"cold" with an empty compile cache (FUSEGRAD_CACHE_DIR), "warm" in a second process on the
same cache folder. The parameters are realized before the call, so it is the step's own
trace and compile that are timed. Workloads:

- the seed's linear-regression step (nn.Linear(1, 1), MSE, SGD; examples/linear_regression.py);
- the MLP step 784-256-10 (ReLU, cross-entropy, batch 128) with Adam;
- that step unrolled N times in one compiled function (N = 2, 4, 8, 16; N = 1 is the step).

Stages, found by wrapping the functions that do them (so this file times any build):
trace (`CompiledFunction._trace`), passes (`pipeline.run_passes`), LLVM IR (the CPU backend's
emission; "printed" is the part spent turning llvmlite's IR objects into text), optimise
and object (LLVM's -O3 pipeline and code generation, in seconds summed over the modules
compiled, which may run on several threads at once), LLVM (the wall time of getting every
object of the program, cached or compiled) and load (linking the objects into an engine).
Then the columns: the kernels of the program, its modules (one per distinct kernel, and the
modules kernels share: GEMM micro-kernels), the objects compiled, and the later call that
traced again (Adam creates its state on the first call).

Peers: `torch.compile` of the same MLP step (first call, with an empty and then a warm
inductor cache), and JAX `jit` of it when installed (first call, cold and with JAX's
persistent compilation cache warm).

Run: python bench/compile_time.py [--quick] [--repeat R]
  --quick   N up to 4 and one run per row (a smoke run);
  --repeat  runs per row, the median quoted (default 3; 1 with --quick).
Compare two builds by running this file under each (PYTHONPATH pointing at the other build).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
UNROLLED = (1, 2, 4, 8, 16)
STAGES = ("trace", "passes", "LLVM IR", "printed", "optimise", "object", "LLVM", "load")


# ---------------------------------------------------------------- stage timers (in the worker)

class Timers:
    """Seconds per stage, by wrapping the functions that do each stage where they are found."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)

    def wrap(self, owner, name: str, stage: str) -> bool:
        fn = getattr(owner, name, None)
        if fn is None:
            return False
        seconds = self.seconds

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[stage] += time.perf_counter() - start
        setattr(owner, name, timed)
        return True

    def install(self) -> None:
        import llvmlite.binding as llvm
        from llvmlite import ir

        from fusegrad.jit.function import CompiledFunction
        from fusegrad.runtime import cpu as runtime_cpu
        self.wrap(CompiledFunction, "_trace", "trace")
        self.wrap(importlib.import_module("fusegrad.compiler.pipeline"), "run_passes", "passes")
        self.wrap(ir.Module, "__repr__", "printed")
        try:                                   # this build's CPU backend: one module per kernel ...
            program_emitter = importlib.import_module("fusegrad.compiler.codegen.cpu_program")
            self.wrap(program_emitter, "emit_program", "LLVM IR")
            objects = importlib.import_module("fusegrad.runtime.objects")
            self.wrap(objects, "optimized_module", "optimise")
            self.wrap(objects, "emit_object", "object")
        except ImportError:                    # ... or one module per program
            self.wrap(importlib.import_module("fusegrad.compiler.codegen.cpu"), "emit_module", "LLVM IR")
            self.wrap(runtime_cpu, "optimized_module", "optimise")
            self.wrap(llvm.TargetMachine, "emit_object", "object")
        self.wrap(runtime_cpu, "machine_code", "LLVM")
        self.wrap(runtime_cpu.CpuExecutable, "__init__", "load")

    def reset(self) -> None:
        for stage in self.seconds:
            self.seconds[stage] = 0.0

    def result(self) -> dict:
        out = dict(self.seconds)
        out["load"] -= out["LLVM"]             # the engine's own work: linking the objects
        return out


def _realize(*tensors) -> None:
    for t in tensors:
        t.detach().numpy()


def _fusegrad_step(workload: str, n: int):
    """(compiled step, its arguments) with the parameters realized."""
    import numpy as np

    import fusegrad
    sys.path.insert(0, HERE)
    from compiled_step import _batch, _mlp, _points

    if workload == "linreg":
        model = fusegrad.nn.Linear(1, 1)
        loss_fn, opt = fusegrad.nn.MSELoss(), fusegrad.optim.SGD(model.parameters(), lr=0.01)
        x, y = (fusegrad.from_numpy(a) for a in _points())
    else:
        model = _mlp(fusegrad)
        loss_fn, opt = fusegrad.nn.CrossEntropyLoss(), fusegrad.optim.Adam(model.parameters(), lr=1e-3)
        xa, ya = _batch()
        x, y = fusegrad.from_numpy(xa), fusegrad.tensor(ya.astype(np.int64))
    _realize(x, y, *model.parameters())

    def one(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    def step(x, y):
        for _ in range(n):
            loss = one(x, y)
        return loss
    step.__name__ = f"{workload}_x{n}"
    return fusegrad.compile(step), (x, y)


def fusegrad_worker(workload: str, n: int) -> dict:
    timers = Timers()
    timers.install()
    step, args = _fusegrad_step(workload, n)
    from fusegrad.runtime.cache import OBJECTS
    timers.reset()
    compiles = OBJECTS.stats["compiles"]
    start = time.perf_counter()
    step(*args).item()
    first = time.perf_counter() - start
    stages = timers.result()
    compiled = OBJECTS.stats["compiles"] - compiles
    settle = 0.0
    for _ in range(5):                         # later calls that trace again (state made by the first)
        start, traces = time.perf_counter(), step.stats["traces"]
        step(*args).item()
        if step.stats["traces"] == traces:
            break
        settle += time.perf_counter() - start
    program = step.traced_variants()[0].program
    modules = getattr(program, "modules", None)
    return {"first": first, "stages": stages, "kernels": program.num_kernels,
            "distinct": len(modules) if modules is not None else None, "compiled": compiled, "settle": settle}


def threads_worker() -> dict:
    """Seconds to compile the MLP step's kernel modules one after the other, then on a thread
    per CPU as the runtime does, then so again with llvmlite's lock held around every call."""
    import fusegrad
    from fusegrad.runtime import objects
    sys.path.insert(0, HERE)
    from compiled_step import _batch, _mlp_step
    xa, ya = _batch()
    program = _mlp_step(fusegrad, fusegrad.compile).lower(fusegrad.from_numpy(xa), fusegrad.tensor(ya)).program
    jobs = [(m.source, True) for m in program.modules]
    objects.object_code(*jobs[0])                       # start-up: target machines, the thread pool
    objects.object_codes(jobs[:objects.workers()])

    def seconds(compile_all) -> float:
        start = time.perf_counter()
        compile_all()
        return time.perf_counter() - start
    out = {"modules": len(jobs), "workers": objects.workers(),
           "serial": seconds(lambda: [objects.object_code(*job) for job in jobs])}
    cpu = time.process_time()
    out["threads"] = seconds(lambda: objects.object_codes(jobs))
    out["busy"] = (time.process_time() - cpu) / out["threads"]      # CPUs busy on average: overlap
    objects.BYPASS_LLVMLITE_LOCK = False
    out["threads, llvmlite lock"] = seconds(lambda: objects.object_codes(jobs))
    return out


def torch_worker() -> dict:
    import numpy as np
    import torch
    sys.path.insert(0, HERE)
    from compiled_step import _batch, _mlp_step
    step = _mlp_step(torch, torch.compile, "Adam")
    xa, ya = _batch()
    x, y = torch.from_numpy(xa), torch.from_numpy(ya.astype(np.int64))
    start = time.perf_counter()
    step(x, y).item()
    return {"first": time.perf_counter() - start}


def jax_worker() -> dict:
    """JAX jit's first call of the same MLP Adam step (compiled_step._jax_mlp_step: trace, XLA
    compile, one run), with its persistent compilation cache on for everything when
    JAX_COMPILATION_CACHE_DIR names a folder (the "warm" run finds the first's entry)."""
    import jax
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    sys.path.insert(0, HERE)
    from compiled_step import _batch, _jax_mlp_step
    x, y = _batch()
    start = time.perf_counter()
    _jax_mlp_step(jax, "Adam", x, y)          # builds the parameters, then makes the first call
    return {"first": time.perf_counter() - start}


# ---------------------------------------------------------------- runs (in the parent)

def run_worker(args: list, env: dict) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", *args], env=env,
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"worker {args} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cold_and_warm(args: list, repeat: int, cache_env: str) -> tuple:
    """The median cold run (a fresh cache folder each) and warm run (a second process on the
    folder of the last cold one) of a worker, by first-call time."""
    colds, warms = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, **{cache_env: cache})
            colds.append(run_worker(args, env))
            warms.append(run_worker(args, env))
    pick = lambda runs: sorted(runs, key=lambda r: r["first"])[len(runs) // 2]
    return pick(colds), pick(warms)


def fmt(t: float | None) -> str:
    if t is None:
        return "–"
    return f"{t:.2f} s" if t >= 1 else f"{t * 1e3:.0f} ms"


def fusegrad_rows(quick: bool, repeat: int) -> list:
    cases = [("linreg step", "linreg", 1)] + [(f"MLP Adam step x{n}" if n > 1 else "MLP Adam step", "mlp", n)
                                              for n in UNROLLED if not quick or n <= 4]
    rows = []
    for label, workload, n in cases:
        cold, warm = cold_and_warm([workload, str(n)], repeat, "FUSEGRAD_CACHE_DIR")
        rows.append((label, n, workload, cold, warm))
        print(f"  {label}: cold {fmt(cold['first'])}, warm {fmt(warm['first'])}", file=sys.stderr)
    return rows


def rows(quick: bool = False, repeat: int = 1) -> list:
    """bench/run_all.py's `compile_time` group: each workload's first call, cold and with the
    disk cache warm, as table rows; torch.compile's first call of the MLP step beside it."""
    from common import Row
    peers: dict = {}
    try:
        import torch  # noqa: F401
        cold, warm = cold_and_warm(["torch"], repeat, "TORCHINDUCTOR_CACHE_DIR")
        peers = {"cold": {"torch.compile": cold["first"]}, "warm": {"torch.compile": warm["first"]}}
    except (ImportError, RuntimeError):
        pass
    out = []
    for label, n, workload, cold, warm in fusegrad_rows(quick, repeat):
        for cache, r in (("cold", cold), ("warm", warm)):
            distinct = "" if r["distinct"] is None else f", {r['distinct']} distinct modules"
            out.append(Row(f"first call, {label}, {cache} cache", r["first"],
                           peers.get(cache, {}) if workload == "mlp" and n == 1 else {},
                           note=f"{r['kernels']} kernels{distinct}, {r['compiled']} compiled"))
    return out


def table(rows: list) -> str:
    head = ["workload", "cache", "first call", "vs x1"] + list(STAGES) + ["kernels", "distinct", "compiled",
                                                                          "traced again"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = {cache: next((r[3 + i]["first"] for r in rows if r[2] == "mlp" and r[1] == 1), None)
            for i, cache in enumerate(("cold", "warm"))}
    for label, _, workload, cold, warm in rows:
        for cache, r in (("cold", cold), ("warm", warm)):
            ratio = f"{r['first'] / base[cache]:.1f}×" if workload == "mlp" and base[cache] else "–"
            distinct = "–" if r["distinct"] is None else str(r["distinct"])
            cells = [label, cache, fmt(r["first"]), ratio] + [fmt(r["stages"][s]) for s in STAGES] + [
                str(r["kernels"]), distinct, str(r["compiled"]), fmt(r["settle"])]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def thread_lines(repeat: int) -> list:
    """Do the threads that compile a program's modules overlap? (This build's runtime only.)"""
    try:
        runs = [run_worker(["threads"], dict(os.environ, FUSEGRAD_CACHE_DIR="")) for _ in range(repeat)]
    except RuntimeError as e:
        return [f"- concurrent compiles: not measured ({str(e).strip().splitlines()[-1][:100]})"]
    med = lambda key: statistics.median(r[key] for r in runs)
    r = runs[0]
    return [f"- concurrent compiles, the MLP step's {r['modules']} kernel modules: one after the other "
            f"{fmt(med('serial'))}; on {r['workers']} threads {fmt(med('threads'))} "
            f"({med('serial') / med('threads'):.2f}× faster, {med('busy'):.2f} CPUs busy on average); "
            f"on {r['workers']} threads with llvmlite's lock around every call {fmt(med('threads, llvmlite lock'))}"]


# peers timed by their own workers: (module, worker, its cache folder variable, name, how the warm run is warm)
PEERS = (("torch", "torch", "TORCHINDUCTOR_CACHE_DIR", "torch.compile", "inductor cache"),
         ("jax", "jax", "JAX_COMPILATION_CACHE_DIR", "JAX jit", "persistent compilation cache"))


def peer_lines(repeat: int) -> list:
    lines = []
    for module, worker, cache_env, name, cache in PEERS:
        try:
            importlib.import_module(module)
            cold, warm = cold_and_warm([worker], repeat, cache_env)
            lines.append(f"- {name}, MLP Adam step, first call: cold {fmt(cold['first'])}, with its {cache} warm "
                         f"{fmt(warm['first'])} (each in a fresh process)")
        except ImportError:
            lines.append(f"- {name}: {module} is not installed, skipped")
        except RuntimeError as e:
            lines.append(f"- {name} failed: {str(e).splitlines()[-1][:120]}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        kind = options.worker[0]
        result = {"torch": torch_worker, "jax": jax_worker, "threads": threads_worker}.get(kind, lambda: None)() or \
            fusegrad_worker(kind, int(options.worker[1]))
        print(json.dumps(result))
        return
    repeat = options.repeat or (1 if options.quick else 3)
    print(f"load average at start: {os.getloadavg()[0]:.2f}; median of {repeat} run(s) per row", file=sys.stderr)
    rows = fusegrad_rows(options.quick, repeat)
    print(table(rows))
    print()
    print("\n".join(thread_lines(repeat) + peer_lines(repeat)))
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}; median of {repeat} run(s) per row; stages "
          "optimise and object are summed over the modules compiled (they may overlap on several threads)")


if __name__ == "__main__":
    main()
