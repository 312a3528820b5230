"""Differential tests of the generated GEMM (compiler/codegen/gemm.py) against numpy.

Every kernel is built for both vector widths, 32 bytes (AVX2) and 64 (AVX-512): LLVM
legalizes 64-byte vectors on a host without AVX-512, so both run anywhere.
"""

from __future__ import annotations

import ctypes
import threading

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir

from fusegrad.compiler.codegen.gemm import GemmSpec, define_gemm, host_vector_bytes
from fusegrad.runtime.cpu import jit_engine

PTR = ir.PointerType()
I64 = ir.IntType(64)
NP_DTYPES = {'f32': np.float32, 'f64': np.float64, 'i32': np.int32, 'i64': np.int64}
IR_DTYPES = {'f32': ir.FloatType(), 'f64': ir.DoubleType(), 'i32': ir.IntType(32), 'i64': ir.IntType(64)}
A_SLOT, B_SLOT, C_SLOT, BIAS_SLOT = 2, 0, 3, 1      # deliberately not 0, 1, 2

WIDTHS = [32, 64]                                   # vector_bytes of define_gemm

llvm.initialize_native_target()
llvm.initialize_native_asmprinter()
_engines = []       # keep JIT-ed code alive for the session


def jit(module: ir.Module, name: str):
    """Compile ``module`` as the runtime will and return ``name`` as a ctypes function."""
    engine = jit_engine(str(module))
    _engines.append(engine)
    return ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)(
        engine.get_function_address(name))


def bias_relu(dtype: str, n: int):
    """Epilogue: C = max(acc + bias[batch, col], 0), the bias read from its own table slot."""
    ty = IR_DTYPES[dtype]
    zero = ir.Constant(ty, 0.0 if dtype.startswith('f') else 0)

    def emit(b: ir.IRBuilder, table, batch, row, col, acc):
        base = b.load(b.gep(table, [ir.Constant(I64, BIAS_SLOT)], source_etype=PTR), typ=PTR)
        at = b.add(b.mul(batch, ir.Constant(I64, n)), col)
        bias = b.load(b.gep(base, [at], source_etype=ty), typ=ty)
        if dtype.startswith('f'):
            biased = b.fadd(acc, bias)
            return b.select(b.fcmp_ordered('>', biased, zero), biased, zero)
        biased = b.add(acc, bias)
        return b.select(b.icmp_signed('>', biased, zero), biased, zero)
    return emit


def strides_of(view: np.ndarray) -> tuple[int, int, int]:
    return tuple(s // view.itemsize for s in view.strides)


class Problem:
    """A, B views of arbitrary layout inside larger buffers, C in its own buffer."""

    def __init__(self, dtype, batch, m, n, k, a_layout='rm', b_layout='rm', c_layout='rm',
                 a_broadcast=False, b_broadcast=False, seed=0):
        rng = np.random.default_rng(seed)
        self.dtype, self.m, self.n, self.k = dtype, m, n, k
        np_dtype = NP_DTYPES[dtype]
        self.a_buf, self.a = self._operand(rng, np_dtype, batch, m, k, a_layout, a_broadcast)
        self.b_buf, self.b = self._operand(rng, np_dtype, batch, k, n, b_layout, b_broadcast)
        self.c_buf, self.c = self._operand(rng, np_dtype, batch, m, n, c_layout, False)
        self.bias = self._values(rng, np_dtype, (batch, n))
        self.spec = GemmSpec(
            dtype, batch, m, n, k, a=strides_of(self.a), b=strides_of(self.b), c=strides_of(self.c),
            a_slot=A_SLOT, b_slot=B_SLOT, c_slot=C_SLOT,
            a_offset=self._offset(self.a_buf, self.a), b_offset=self._offset(self.b_buf, self.b),
            c_offset=self._offset(self.c_buf, self.c))
        pointers = {A_SLOT: self.a_buf, B_SLOT: self.b_buf, C_SLOT: self.c_buf, BIAS_SLOT: self.bias}
        self.table = (ctypes.c_void_p * 4)(*(pointers[i].ctypes.data for i in range(4)))

    @staticmethod
    def _values(rng, np_dtype, shape):
        if np.issubdtype(np_dtype, np.integer):
            return rng.integers(-50, 50, shape).astype(np_dtype)
        return rng.standard_normal(shape).astype(np_dtype)

    def _operand(self, rng, np_dtype, batch, rows, cols, layout, broadcast):
        """(buffer, batch x rows x cols view): 'rm' row-major, 'cm' column-major (transposed),
        'gap' every other row and column of a padded buffer, starting at an offset, 'flip'
        row-major read backwards (negative strides), 'rows0' one row repeated (stride 0)."""
        count = 1 if broadcast else batch
        if layout == 'rm':
            buf = self._values(rng, np_dtype, (count, rows, cols))
            view = buf
        elif layout == 'cm':
            buf = self._values(rng, np_dtype, (count, cols, rows))
            view = buf.transpose(0, 2, 1)
        elif layout == 'flip':
            buf = self._values(rng, np_dtype, (count, rows, cols))
            view = buf[:, ::-1, ::-1]
        elif layout == 'rows0':
            buf = self._values(rng, np_dtype, (count, 1, cols))
            view = np.broadcast_to(buf, (count, rows, cols))
        else:
            buf = self._values(rng, np_dtype, (count, 2 * rows + 1, 2 * cols + 3))
            view = buf[:, 1::2, 3::2][:, :rows, :cols]
        if broadcast:
            view = np.broadcast_to(view, (batch, rows, cols))
        return buf, view

    @staticmethod
    def _offset(buf, view) -> int:
        return (view.__array_interface__['data'][0] - buf.ctypes.data) // buf.itemsize

    def compile(self, epilogue: bool, vector_bytes: int):
        module = ir.Module('test_gemm')
        module.triple = llvm.get_process_triple()
        define_gemm(module, 'gemm', self.spec, bias_relu(self.dtype, self.n) if epilogue else None,
                    vector_bytes=vector_bytes)
        return jit(module, 'gemm')

    def fill_value(self):
        return 77 if self.dtype.startswith('i') else np.nan

    def run(self, fn, nparts: int = 1, concurrent: bool = False) -> np.ndarray:
        """C after calling all ``nparts`` parts (on threads at once when ``concurrent``)."""
        self.c_buf.fill(self.fill_value())
        calls = [(ctypes.addressof(self.table), part, nparts) for part in range(nparts)]
        if concurrent:
            threads = [threading.Thread(target=fn, args=call) for call in calls]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:
            for call in calls:
                fn(*call)
        return self.c.copy()

    def expected(self, epilogue: bool) -> np.ndarray:
        wide = np.int64 if self.dtype.startswith('i') else np.float64
        out = np.matmul(self.a.astype(wide), self.b.astype(wide))
        if epilogue:
            out = np.maximum(out + self.bias[:, None, :], 0)
        return out.astype(NP_DTYPES[self.dtype])

    def check(self, got: np.ndarray, epilogue: bool) -> None:
        want = self.expected(epilogue)
        if self.dtype.startswith('i'):
            np.testing.assert_array_equal(got, want)
        else:
            eps = np.finfo(NP_DTYPES[self.dtype]).eps
            # Each output is a k-term dot product of standard normals: rounding grows like k.
            np.testing.assert_allclose(got, want, rtol=0, atol=4 * eps * max(self.k, 1) + 4 * eps)


    def assert_only_c_written(self) -> None:
        """The elements of C's buffer outside the view of C still hold the fill value."""
        batch, (s0, s1, s2) = self.c.shape[0], self.spec.c
        b, i, j = np.ix_(range(batch), range(self.m), range(self.n))
        outside = np.ones(self.c_buf.size, bool)
        outside[(self.spec.c_offset + b * s0 + i * s1 + j * s2).ravel()] = False
        np.testing.assert_array_equal(self.c_buf.ravel()[outside], self.fill_value())


def check_problem(problem: Problem, epilogue: bool, vector_bytes: int, nparts: int = 1) -> None:
    fn = problem.compile(epilogue, vector_bytes)
    problem.check(problem.run(fn), epilogue)
    problem.assert_only_c_written()
    if nparts > 1:
        np.testing.assert_array_equal(problem.run(fn, nparts, concurrent=True), problem.run(fn))


# Tiny and matrix-vector (unpacked loops), edge tiles, several K panels, narrow N (A read in
# place), M, N, K prime, parts splitting columns.
SHAPES = [(1, 1, 1), (4, 4, 4), (2, 300, 40), (300, 1, 200), (77, 2, 90), (6, 16, 7), (7, 17, 300),
          (41, 13, 50), (127, 29, 65), (127, 129, 131), (100, 300, 20), (64, 48, 600)]


@pytest.mark.parametrize('vector_bytes', WIDTHS)
@pytest.mark.parametrize('m,n,k', SHAPES)
def test_f32_row_major(m, n, k, vector_bytes):
    check_problem(Problem('f32', 1, m, n, k), epilogue=False, vector_bytes=vector_bytes, nparts=2)


@pytest.mark.parametrize('vector_bytes', WIDTHS)
@pytest.mark.parametrize('n', [129, 29])
@pytest.mark.parametrize('a_layout,b_layout,c_layout', [
    ('cm', 'rm', 'rm'), ('rm', 'cm', 'rm'), ('cm', 'cm', 'cm'), ('gap', 'gap', 'gap'), ('gap', 'cm', 'rm'),
    ('flip', 'flip', 'flip'), ('rows0', 'rm', 'rm'),
])
def test_f32_layouts(a_layout, b_layout, c_layout, n, vector_bytes):
    check_problem(Problem('f32', 1, 127, n, 131, a_layout, b_layout, c_layout), epilogue=True,
                  vector_bytes=vector_bytes, nparts=2)


@pytest.mark.parametrize('vector_bytes', WIDTHS)
@pytest.mark.parametrize('dtype', ['f32', 'f64', 'i32', 'i64'])
@pytest.mark.parametrize('epilogue', [False, True])
@pytest.mark.parametrize('n', [35, 1])
def test_dtypes(dtype, epilogue, n, vector_bytes):
    check_problem(Problem(dtype, 1, 61, n, 70, 'rm', 'cm'), epilogue, vector_bytes=vector_bytes, nparts=2)


@pytest.mark.parametrize('vector_bytes', WIDTHS)
@pytest.mark.parametrize('dtype', ['f64', 'i64'])
@pytest.mark.parametrize('m,n,k,batch', [(1, 1, 1, 1), (127, 129, 131, 1), (9, 67, 33, 3)])
@pytest.mark.parametrize('a_layout,b_layout', [('rm', 'rm'), ('cm', 'cm'), ('gap', 'flip')])
def test_f64_i64_edges(dtype, m, n, k, batch, a_layout, b_layout, vector_bytes):
    # One element, primes, a batch: transposed, non-contiguous and reversed operands.
    check_problem(Problem(dtype, batch, m, n, k, a_layout, b_layout), epilogue=True,
                  vector_bytes=vector_bytes, nparts=2)


@pytest.mark.parametrize('vector_bytes', WIDTHS)
@pytest.mark.parametrize('dtype', ['f32', 'f64'])
@pytest.mark.parametrize('m,n,k', [(5, 130, 7), (7, 97, 15), (8, 96, 16), (9, 97, 17), (13, 131, 47)])
def test_transposing_pack_edges(dtype, m, n, k, vector_bytes):
    # Row-major A and column-major B are packed by W x W transposes: panels of fewer rows than
    # the register tile, groups of lanes past MR (MR is no multiple of W), K not a multiple of
    # W (masked loads, part of a tile stored) and below W.
    check_problem(Problem(dtype, 1, m, n, k, 'rm', 'cm'), epilogue=False, vector_bytes=vector_bytes, nparts=2)


@pytest.mark.parametrize('vector_bytes', WIDTHS)
def test_f64_large_k_transposed_a(vector_bytes):
    check_problem(Problem('f64', 1, 127, 129, 300, 'cm', 'rm'), epilogue=True, vector_bytes=vector_bytes, nparts=2)


@pytest.mark.parametrize('vector_bytes', WIDTHS)
@pytest.mark.parametrize('dtype,n', [('f32', 45), ('f64', 11)])
@pytest.mark.parametrize('a_broadcast,b_broadcast', [(False, False), (True, False), (False, True)])
def test_batched(dtype, n, a_broadcast, b_broadcast, vector_bytes):
    problem = Problem(dtype, 3, 37, n, 29, 'rm', 'gap', a_broadcast=a_broadcast, b_broadcast=b_broadcast)
    check_problem(problem, epilogue=True, vector_bytes=vector_bytes, nparts=2)


@pytest.mark.parametrize('vector_bytes', WIDTHS)
def test_epilogue_applied_once_across_k_panels(vector_bytes):
    # K spans several packed panels and N several register tiles; bias+relu applied twice
    # would differ wherever the bias is positive.
    check_problem(Problem('f32', 1, 50, 70, 700), epilogue=True, vector_bytes=vector_bytes, nparts=2)


@pytest.mark.parametrize('vector_bytes', WIDTHS)
def test_wide_and_tall_blocks(vector_bytes):
    # N beyond one packed B block (NC) and M beyond one packed A block (MC).
    check_problem(Problem('f32', 1, 20, 4200, 5), epilogue=True, vector_bytes=vector_bytes, nparts=2)
    check_problem(Problem('f32', 1, 1400, 20, 5), epilogue=False, vector_bytes=vector_bytes, nparts=2)


@pytest.mark.parametrize('vector_bytes', WIDTHS)
@pytest.mark.parametrize('dtype', ['f32', 'i64'])
@pytest.mark.parametrize('epilogue', [False, True])
def test_k_zero(dtype, epilogue, vector_bytes):
    problem = Problem(dtype, 2, 5, 7, 0)
    problem.check(problem.run(problem.compile(epilogue, vector_bytes)), epilogue)


@pytest.mark.parametrize('vector_bytes', WIDTHS)
@pytest.mark.parametrize('shared_b', [False, True])
@pytest.mark.parametrize('shape', [(4, 4, 4), (127, 129, 131), (1, 8, 3)])
def test_any_number_of_parts_matches_one(shape, shared_b, vector_bytes):
    problem = Problem('f32', 2, *shape, b_broadcast=shared_b)
    fn = problem.compile(epilogue=True, vector_bytes=vector_bytes)
    whole = problem.run(fn)
    problem.check(whole, epilogue=True)
    for nparts in (2, 3, 5, 64):
        np.testing.assert_array_equal(problem.run(fn, nparts), whole)


def test_host_vector_bytes():
    assert host_vector_bytes() == (64 if llvm.get_host_cpu_features().get('avx512f') else 32)


@pytest.mark.parametrize('vector_bytes,dtype,fma', [
    (32, 'f32', 'llvm.fma.v8f32'), (64, 'f32', 'llvm.fma.v16f32'),
    (32, 'f64', 'llvm.fma.v4f64'), (64, 'f64', 'llvm.fma.v8f64'),
    (None, 'f32', f'llvm.fma.v{host_vector_bytes() // 4}f32'),
])
def test_vector_width_of_the_code(vector_bytes, dtype, fma):
    module = ir.Module('width')
    define_gemm(module, 'gemm', Problem(dtype, 1, 64, 64, 64).spec, vector_bytes=vector_bytes)
    assert fma in {f.name for f in module.functions}


def test_unsupported_vector_width():
    with pytest.raises(ValueError, match='vector width'):
        define_gemm(ir.Module('width'), 'gemm', Problem('f32', 1, 64, 64, 64).spec, vector_bytes=16)
