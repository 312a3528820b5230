"""Benchmark of the generated GEMM kernel (compiler/codegen/gemm.py) against numpy/OpenBLAS.

Prints median GFLOP/s of fusegrad's GEMM and of numpy for
  * 1024^3 f32, row-major A, B, C, on one and two threads;
  * the MLP shapes of an MNIST 784-256 layer (forward with the nn.Linear weight layout W.T
    and with a row-major B, and the two gradient products), each with a fused bias + ReLU
    epilogue, against numpy's ``matmul`` followed by numpy's bias add and ReLU (in place);
and the ratio fusegrad / numpy.  fusegrad's kernels use the host's widest vectors (64 bytes with
AVX-512, else 32) unless ``--vector-bytes`` says otherwise; the compile time printed per module
is the median of a few compiles of that GEMM alone (-O3, machine code, MCJIT linking).

numpy runs in worker subprocesses started with ``OPENBLAS_NUM_THREADS`` = 1 or 2; fusegrad's
two-thread runs call the function's two parts from libgomp (``GOMP_parallel``).  Measurements
alternate between fusegrad and numpy round by round, so that load from other work on the
machine falls on both alike; still, two-thread timings mean little while other work keeps the
cores busy (the load average is printed first).  libgomp keeps its defaults, as the runtime
does: idle threads spin a while, which makes back-to-back parallel calls cheap, but where
other work takes a core, a thread spinning at the join while its partner waits for a time
slice turns a millisecond into tens (``OMP_WAIT_POLICY=passive`` then fares better; on an idle
machine it costs MLP-sized calls half their two-thread speed in wake-ups).

    python bench/gemm_kernel.py [--rounds 3] [--quick] [--vector-bytes 32|64]
"""

from __future__ import annotations

import os

# This process's numpy only builds and checks data; a numpy worker gets its thread count here.
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import argparse
import ctypes
import ctypes.util
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from fusegrad.compiler.codegen.gemm import GemmSpec, define_gemm, host_vector_bytes
from fusegrad.runtime.cpu import jit_engine

PTR = ir.PointerType()
I32, I64 = ir.IntType(32), ir.IntType(64)
F32 = ir.FloatType()
BIAS_SLOT = 3
# Pause between fusegrad's and numpy's turns: OpenBLAS's idle threads spin (yielding) for about
# 0.1 s after a call, libgomp's for milliseconds unless passive; on two cores a side that
# starts while the other's threads spin loses a core.
SETTLE_SECONDS = 0.3
# Compiles of each module; the median time is printed (the first pays LLVM's start-up).
COMPILES = 3


@dataclass(frozen=True)
class Case:
    label: str
    m: int
    n: int
    k: int
    a_transposed: bool      # A is stored as its transpose (column-major)
    b_transposed: bool
    bias_relu: bool
    threads: tuple[int, ...]
    reps: int

    @property
    def flops(self) -> int:
        return 2 * self.m * self.n * self.k


def cases(quick: bool) -> list[Case]:
    big = 512 if quick else 1024
    return [
        Case(f'{big}^3', big, big, big, False, False, False, (1, 2), 3 if quick else 7),
        Case('x@W.T+b relu 128x784 @ 784x256', 128, 256, 784, False, True, True, (1, 2), 50),
        Case('x@B+b relu   128x784 @ 784x256', 128, 256, 784, False, False, True, (1, 2), 50),
        Case('X.T@dY       784x128 @ 128x256', 784, 256, 128, True, False, True, (1, 2), 50),
        Case('dY@W         128x256 @ 256x784', 128, 784, 256, False, False, True, (1, 2), 50),
    ]


# ---------------------------------------------------------------------------------------------
# Operands (the same construction in this process and in the numpy workers)
# ---------------------------------------------------------------------------------------------

def operands(case: Case):
    """A, B as numpy views with the case's layouts, the bias, and C."""
    rng = np.random.default_rng(0)
    a_store = rng.standard_normal((case.k, case.m) if case.a_transposed else (case.m, case.k), dtype=np.float32)
    b_store = rng.standard_normal((case.n, case.k) if case.b_transposed else (case.k, case.n), dtype=np.float32)
    a = a_store.T if case.a_transposed else a_store
    b = b_store.T if case.b_transposed else b_store
    bias = rng.standard_normal(case.n, dtype=np.float32)
    return a, b, bias, np.zeros((case.m, case.n), np.float32)


def numpy_step(case: Case, a, b, bias, c) -> None:
    np.matmul(a, b, out=c)
    if case.bias_relu:
        c += bias
        np.maximum(c, 0, out=c)


def numpy_worker() -> None:
    """Say ``ready``, then answer one JSON line per request {case, reps} with the list of timings."""
    prepared = {}
    print('ready', flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        case = Case(**{**request['case'], 'threads': tuple(request['case']['threads'])})
        if case not in prepared:
            prepared[case] = operands(case)
            numpy_step(case, *prepared[case])
        args = prepared[case]
        times = []
        for _ in range(request['reps']):
            start = time.perf_counter()
            numpy_step(case, *args)
            times.append(time.perf_counter() - start)
        print(json.dumps(times), flush=True)


class NumpyWorker:
    def __init__(self, threads: int):
        env = {**os.environ, 'OPENBLAS_NUM_THREADS': str(threads)}
        self.proc = subprocess.Popen([sys.executable, __file__, '--numpy-worker'], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        # Started up (numpy imported) before any timing or compiling here.
        assert self.proc.stdout.readline().strip() == 'ready'

    def times(self, case: Case, reps: int) -> list[float]:
        self.proc.stdin.write(json.dumps({'case': case.__dict__, 'reps': reps}) + '\n')
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


# ---------------------------------------------------------------------------------------------
# fusegrad side: one module per case with the GEMM and a libgomp entry point
# ---------------------------------------------------------------------------------------------

def bias_relu(b: ir.IRBuilder, table, batch, row, col, acc):
    bias_base = b.load(b.gep(table, [ir.Constant(I64, BIAS_SLOT)], source_etype=PTR), typ=PTR)
    biased = b.fadd(acc, b.load(b.gep(bias_base, [col], source_etype=F32), typ=F32))
    return b.select(b.fcmp_ordered('>', biased, ir.Constant(F32, 0.0)), biased, ir.Constant(F32, 0.0))


def add_parallel_entry(module: ir.Module, gemm: ir.Function) -> None:
    """``void gemm_parallel(ptr table, i32 nthreads)``: GOMP_parallel over gemm's parts."""
    thread_num = ir.Function(module, ir.FunctionType(I32, []), 'omp_get_thread_num')
    num_threads = ir.Function(module, ir.FunctionType(I32, []), 'omp_get_num_threads')
    gomp_parallel = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, PTR, I32, I32]), 'GOMP_parallel')
    body = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR]), 'gemm_omp_body')
    b = ir.IRBuilder(body.append_basic_block())
    b.call(gemm, [body.args[0], b.sext(b.call(thread_num, []), I64), b.sext(b.call(num_threads, []), I64)])
    b.ret_void()
    entry = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, I32]), 'gemm_parallel')
    b = ir.IRBuilder(entry.append_basic_block())
    b.call(gomp_parallel, [body, entry.args[0], entry.args[1], ir.Constant(I32, 0)])
    b.ret_void()


def jit(text: str) -> llvm.ExecutionEngine:
    """LLVM IR -> machine code in an MCJIT engine, optimized as the runtime does (-O3, host CPU)."""
    return jit_engine(text)


class Compiled:
    def __init__(self, case: Case, vector_bytes: int):
        a, b, self.bias, self.c = operands(case)
        self.a, self.b = a, b
        spec = GemmSpec('f32', 1, case.m, case.n, case.k,
                        a=(0, *(s // 4 for s in a.strides)), b=(0, *(s // 4 for s in b.strides)),
                        c=(0, case.n, 1), a_slot=0, b_slot=1, c_slot=2)
        module = ir.Module('bench_gemm')
        module.triple = llvm.get_process_triple()
        gemm = define_gemm(module, 'gemm', spec, bias_relu if case.bias_relu else None, vector_bytes=vector_bytes)
        add_parallel_entry(module, gemm)
        text = str(module)
        times = []
        for _ in range(COMPILES):
            start = time.perf_counter()
            self.engine = jit(text)
            times.append(time.perf_counter() - start)
        self.compile_seconds = statistics.median(times)
        self.serial = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)(
            self.engine.get_function_address('gemm'))
        self.parallel = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int32)(
            self.engine.get_function_address('gemm_parallel'))
        self.table = (ctypes.c_void_p * 4)(a.ctypes.data, b.ctypes.data, self.c.ctypes.data, self.bias.ctypes.data)
        self.case = case

    def run(self, threads: int) -> None:
        if threads == 1:
            self.serial(ctypes.addressof(self.table), 0, 1)
        else:
            self.parallel(ctypes.addressof(self.table), threads)

    def times(self, threads: int, reps: int) -> list[float]:
        out = []
        for _ in range(reps):
            start = time.perf_counter()
            self.run(threads)
            out.append(time.perf_counter() - start)
        return out

    def check(self) -> None:
        expected = np.zeros_like(self.c)
        numpy_step(self.case, self.a.astype(np.float64), self.b.astype(np.float64), self.bias, expected)
        for threads in self.case.threads:
            self.c[:] = np.nan
            self.run(threads)
            np.testing.assert_allclose(self.c, expected, rtol=1e-3, atol=1e-3 * np.sqrt(self.case.k))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rounds', type=int, default=3, help='alternations of fusegrad and numpy')
    parser.add_argument('--quick', action='store_true', help='512^3 instead of 1024^3, fewer reps')
    parser.add_argument('--vector-bytes', type=int, choices=(32, 64), default=host_vector_bytes(),
                        help="fusegrad's vector width (default: the host's widest)")
    parser.add_argument('--numpy-worker', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.numpy_worker:
        numpy_worker()
        return

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    # Loaded by ctypes, which never unloads it (globally, for MCJIT to resolve GOMP_parallel);
    # llvmlite unloads the libraries it loads at exit, under libgomp's still-running threads.
    ctypes.CDLL(ctypes.util.find_library('gomp'), mode=ctypes.RTLD_GLOBAL)
    workers = {t: NumpyWorker(t) for t in (1, 2)}
    print(f'load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; median GFLOP/s; '
          f'OMP_WAIT_POLICY={os.environ.get("OMP_WAIT_POLICY", "(default)")}; '
          f'{llvm.get_host_cpu_name()}, fusegrad vectors of {args.vector_bytes} bytes')
    print(f'{"case":34} {"thr":>3} {"fusegrad GF/s":>14} {"numpy GF/s":>11} {"ratio":>6}')
    try:
        for case in cases(args.quick):
            compiled = Compiled(case, args.vector_bytes)
            compiled.check()
            for threads in case.threads:
                ours, theirs = [], []
                compiled.times(threads, 2)
                for _ in range(args.rounds):
                    ours += compiled.times(threads, case.reps)
                    time.sleep(SETTLE_SECONDS)
                    theirs += workers[threads].times(case, case.reps)
                    time.sleep(SETTLE_SECONDS)
                ours_gf = case.flops / statistics.median(ours) / 1e9
                theirs_gf = case.flops / statistics.median(theirs) / 1e9
                print(f'{case.label:34} {threads:>3} {ours_gf:>14.1f} {theirs_gf:>11.1f} {ours_gf / theirs_gf:>6.2f}',
                      flush=True)
            print(f'{"":34}     (compile: {compiled.compile_seconds * 1000:.0f} ms, median of {COMPILES})', flush=True)
    finally:
        for worker in workers.values():
            worker.close()


if __name__ == '__main__':
    main()
