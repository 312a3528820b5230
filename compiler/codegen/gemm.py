"""CPU codegen: the matrix-multiply kernel, with fused epilogues.

The fusion pass gives every ``matmul`` node a kernel of its own; the LLVM code generator lowers
that kernel by calling :func:`define_gemm`, which writes one function (and its ``name.*``
helpers) into the program's LLVM module.  Elementwise consumers of the product (bias add,
activation, ...) come in as an *epilogue* emitter, applied to each finished strip of C while it
is still in cache, so ``relu(x @ W.T + b)`` costs one pass over C.

The generated function is ``void name(ptr table, i64 part, i64 nparts)``.  ``table`` is the
program's array of buffer pointers; A, B and C are ``table[a_slot]`` etc.  The runtime calls it
``nparts`` times concurrently with ``part = 0 .. nparts-1``; each call computes a disjoint,
equal share of C -- a range of batch x row panels or of batch x column panels (see
``_splits_rows``) -- with scratch memory of its own.

Floating-point products take the BLIS route (Goto's algorithm), with vectors of the host's
widest registers -- 64-byte zmm where the CPU has AVX-512F, else 32-byte ymm (AVX2; see
:func:`host_vector_bytes`; ``define_gemm(vector_bytes=...)`` picks either) -- a register tile
for their register count, and blocking for the caches that sysfs reports (see :func:`_blocking`):

* loop over column blocks of NC, then K panels of KC: pack ``B[kc, nc]`` into micro-panels of
  NR columns (k-major, padded), sized to stay in L3;
* loop over row blocks of MC: pack ``A[mc, kc]`` into micro-panels of MR rows (k-major,
  padded), sized to stay in L2 -- unless N is at most two micro-panels wide, where packing A
  would not be repaid and the micro-kernel reads A in place.  Operands contiguous along K
  (row-major A, a transposed B such as ``W.T``) are packed by W x W in-register transposes;
* loop over the micro-panels: the micro-kernel keeps an MR x NR tile of C in MR x 2 vector
  registers and does ``kc`` rank-1 updates with ``llvm.fma`` on ``<W x T>`` vectors (W = 16
  f32 or 8 f64 with AVX-512, 8 or 4 with AVX2; MR = 8 or 6), reading a B micro-panel (kept
  in L1) and broadcasting A elements.

Tiles at the M/N edges compute on padding and write back only their valid part (masked vector
stores).  After the last K panel of a row block, the epilogue runs over each finished MC x NR
strip.  A batch sharing one B whose A and C rows run on across batch entries is folded into a
single taller product, so that B is packed once.

The micro-kernel reads C's row stride as an argument, so the GEMMs that differ only in shape
and layout (every packed f32 product of a model, say) have one micro-kernel; given ``share``,
``define_gemm`` puts it in a module of its own that all of them call (the CPU backend compiles
that module once: a third of a GEMM's compile time).

Scratch memory for the packed panels comes from ``aligned_alloc(64, ...)`` / ``free`` once per
call (sizes are known at compile time; heap rather than stack, since the caller's thread stacks
may be small).  Products too small to repay packing, matrix-vector products, K = 0 and integer
dtypes use plain loops over the rows of C instead (see :func:`_uses_packing`).
"""

from __future__ import annotations

import functools
import os
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Callable, Iterator

import llvmlite.binding as llvm
from llvmlite import ir

I1 = ir.IntType(1)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()
VOID = ir.VoidType()

_SCALAR_TYPES = {
    'f32': ir.FloatType(),
    'f64': ir.DoubleType(),
    'i32': ir.IntType(32),
    'i64': ir.IntType(64),
}
_ELEMENT_BYTES = {'f32': 4, 'f64': 8, 'i32': 4, 'i64': 8}


@dataclass(frozen=True)
class GemmSpec:
    """One (batched) matrix product ``C[b] = A[b] @ B[b]`` with A: m x k, B: k x n, C: m x n.

    Strides are in elements, ordered (batch, row, col); any layout is allowed (a transposed
    operand has row stride 1, a broadcast operand batch stride 0).  Offsets locate element
    (0, 0, 0) in the buffer at ``table[*_slot]``.
    """
    dtype: str
    batch: int
    m: int
    n: int
    k: int
    a: tuple[int, int, int]
    b: tuple[int, int, int]
    c: tuple[int, int, int]
    a_slot: int
    b_slot: int
    c_slot: int
    a_offset: int = 0
    b_offset: int = 0
    c_offset: int = 0


Epilogue = Callable[[ir.IRBuilder, ir.Value, ir.Value, ir.Value, ir.Value, ir.Value], ir.Value]
"""``(builder, table_ptr, batch_idx_i64, row_i64, col_i64, acc_scalar) -> value`` stored at
``C[batch, row, col]``; called once per output element, after its full K accumulation."""
Share = Callable[[str, str], str]      # (a module's text, the placeholder name in it) -> the symbol
SHARED_PLACEHOLDER = 'fg.shared.placeholder'     # a shared function's name in its module's text


# --------------------------------------------------------------------------------------------
# Blocking constants
# --------------------------------------------------------------------------------------------

# Register tile per vector width in bytes: (MR rows, vectors of columns).  AVX2 (16 ymm): 6 x 2
# -> 12 accumulators, plus 2 B vectors and one broadcast A value: 15 of the 16 registers.
# AVX-512 (32 zmm): 8 x 2 -> 16 accumulators, 2 B vectors, one broadcast: 19 of 32.  Two 4-cycle
# FMA pipes need 8 independent accumulators; 16 hide the loads.  Taller or wider tiles (12 x 2,
# 14 x 2, 8 x 3, 6 x 4) measured no faster on Zen 5, and MR = 8 divides the usual sizes (edge
# tiles and the split between threads stay even) and compiles faster.
_REGISTER_TILES = {32: (6, 2), 64: (8, 2)}
# Caches of Zen 3 (this project's reference CPU), used where sysfs does not say.
_DEFAULT_CACHES = (32 << 10, 512 << 10, 32 << 20)
# A packed B block of KC x NC lives in (a share of) L3; NC beyond this buys nothing and costs
# scratch memory.
_NC_MAX = 4096
# Work units (row or column panels) that share out evenly enough among a few parts (exactly
# among 2, 4 or 8).  With 32-column panels (AVX-512) 16 would send an MLP's 128 x 256 products
# to the split that packs twice as much (about 5% at two threads).
_EVEN_SHARE_UNITS = 8
# Products of fewer multiply-adds than this, or with fewer rows than this, skip packing.
_SMALL_MACS = 16 * 16 * 16
_SMALL_ROWS = 3
# Products at most this many columns wide (matrix-vector) are computed as dot products over K:
# a register tile would be mostly padding.
_NARROW_COLS = 2


@dataclass(frozen=True)
class _Blocking:
    vector_bytes: int   # bytes of one vector register
    width: int      # lanes of one vector
    mr: int         # rows of the register tile
    nr: int         # columns of the register tile (a few vectors)
    kc: int         # depth of a packed panel
    mc: int         # rows of a packed A block
    nc: int         # columns of a packed B block


@functools.cache
def _data_cache_sizes() -> tuple[int, int, int]:
    """Sizes in bytes of the L1 data, L2 and L3 caches of cpu0, from sysfs."""
    sizes = dict(enumerate(_DEFAULT_CACHES, start=1))
    base = '/sys/devices/system/cpu/cpu0/cache'
    try:
        for index in os.listdir(base):
            if not index.startswith('index'):
                continue
            with open(f'{base}/{index}/type') as f:
                if f.read().strip() not in ('Data', 'Unified'):
                    continue
            with open(f'{base}/{index}/level') as f:
                level = int(f.read())
            with open(f'{base}/{index}/size') as f:
                text = f.read().strip()
            scale = {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}.get(text[-1:], 1)
            sizes[level] = int(text.rstrip('KMG')) * scale
    except (OSError, ValueError):
        pass
    return sizes[1], sizes[2], sizes[3]


@functools.cache
def host_vector_bytes() -> int:
    """Bytes of the host's widest vector registers the GEMM uses: 64 (zmm) with AVX-512F,
    else 32 (ymm)."""
    return 64 if llvm.get_host_cpu_features().get('avx512f', False) else 32


def host_facts() -> tuple:
    """What the generated code depends on besides the product: the host's vector width and
    data cache sizes (part of a kernel's structural key, codegen/kernel_key.py)."""
    return host_vector_bytes(), _data_cache_sizes()


def _blocking(dtype: str, vector_bytes: int) -> _Blocking:
    """Register and cache blocking for ``dtype`` with vectors of ``vector_bytes``.  On Zen 3
    with AVX2 (L1d 32 KiB, L2 512 KiB per core, L3 32 MiB): KC = 256, NC = 4096 and MC = 252
    for f32, 126 for f64; on Zen 5 with AVX-512 (L1d 48 KiB, L2 1 MiB): KC = 192, NC = 4096
    and MC = 680 for f32, 336 for f64."""
    l1, l2, l3 = _data_cache_sizes()
    size = _ELEMENT_BYTES[dtype]
    width = vector_bytes // size
    mr, vectors = _REGISTER_TILES[vector_bytes]
    nr = vectors * width
    # The B micro-panel (KC x NR) stays in half of L1 while A micro-panels stream past it.
    kc = max(64, min(512, l1 // (2 * nr * size)) // 8 * 8)
    # The packed A block (MC x KC) takes half of L2, leaving room for the B panel and C.
    mc = max(mr, (l2 // 2) // (kc * size) // mr * mr)
    # The packed B block (KC x NC) takes a quarter of L3 (shared by the cores).
    nc = max(nr, min(_NC_MAX, (l3 // 4) // (kc * size)) // nr * nr)
    return _Blocking(vector_bytes=vector_bytes, width=width, mr=mr, nr=nr, kc=kc, mc=mc, nc=nc)


def _uses_packing(spec: GemmSpec) -> bool:
    """Whether the packed, register-blocked path pays off: floats, not tiny, not
    matrix-vector."""
    return (spec.dtype in ('f32', 'f64') and spec.k > 0 and spec.m >= _SMALL_ROWS
            and spec.n > _NARROW_COLS and spec.m * spec.n * spec.k >= _SMALL_MACS)


def _fold_shared_b(spec: GemmSpec) -> tuple[GemmSpec, int | None]:
    """A batch of products with one B (batch stride 0) whose A and C rows run on from one
    batch entry to the next is a single product with batch*m rows (``x @ W`` for a 3-d x):
    (that spec, m) -- B is then packed once -- else (spec, None)."""
    if (spec.batch > 1 and spec.b[0] == 0 and spec.a[0] == spec.m * spec.a[1]
            and spec.c[0] == spec.m * spec.c[1]):
        return replace(spec, batch=1, m=spec.batch * spec.m, a=(0, *spec.a[1:]), c=(0, *spec.c[1:])), spec.m
    return spec, None


# --------------------------------------------------------------------------------------------
# IR helpers
# --------------------------------------------------------------------------------------------

def _i64(value: int) -> ir.Constant:
    return ir.Constant(I64, value)


@contextmanager
def _for(b: ir.IRBuilder, start, stop, step=1, name: str = 'i') -> Iterator[ir.Value]:
    """``for (i = start; i < stop; i += step)`` over i64; the body is built inside the block."""
    start, stop, step = (_i64(x) if isinstance(x, int) else x for x in (start, stop, step))
    fn = b.function
    head = fn.append_basic_block(f'{name}.head')
    body = fn.append_basic_block(f'{name}.body')
    done = fn.append_basic_block(f'{name}.done')
    before = b.block
    b.branch(head)
    b.position_at_end(head)
    index = b.phi(I64, name)
    index.add_incoming(start, before)
    b.cbranch(b.icmp_signed('<', index, stop), body, done)
    b.position_at_end(body)
    yield index
    index.add_incoming(b.add(index, step, name=f'{name}.next'), b.block)
    b.branch(head)
    b.position_at_end(done)


def _min(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed('<', x, y), x, y)


def _max(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed('>', x, y), x, y)


def _balanced_step(b: ir.IRBuilder, extent: ir.Value, limit: int, multiple: int) -> ir.Value:
    """The step that cuts ``extent`` (>= 1) into the fewest blocks of at most ``limit`` (a
    multiple of ``multiple``), all about equal: no thin last block."""
    blocks = b.udiv(b.add(extent, _i64(limit - 1)), _i64(limit))
    step = b.udiv(b.add(extent, b.sub(blocks, _i64(1))), blocks)
    return b.mul(b.udiv(b.add(step, _i64(multiple - 1)), _i64(multiple)), _i64(multiple))


def _splat(b: ir.IRBuilder, value: ir.Value, lanes: int) -> ir.Value:
    """<lanes x T> with every lane ``value``."""
    vector = ir.VectorType(value.type, lanes)
    one = b.insert_element(ir.Constant(vector, ir.Undefined), value, ir.Constant(I32, 0))
    return b.shuffle_vector(one, ir.Constant(vector, ir.Undefined), ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))


def _offset(b: ir.IRBuilder, *terms: tuple[ir.Value, int]) -> ir.Value:
    """sum(index * stride) over (i64 index, compile-time stride) terms."""
    scaled = [index if stride == 1 else b.mul(index, _i64(stride)) for index, stride in terms if stride]
    if not scaled:
        return _i64(0)
    total = scaled[0]
    for term in scaled[1:]:
        total = b.add(total, term)
    return total


def _stack_array(b: ir.IRBuilder, ty: ir.Type, align: int, name: str) -> ir.Value:
    """An ``align``-aligned alloca at the top of the function, typed as an opaque ``ptr``
    (llvmlite types an alloca's pointer after its allocated type)."""
    entry = b.function.entry_basic_block
    at_entry = ir.IRBuilder(entry)
    at_entry.position_at_start(entry)
    slot = at_entry.alloca(ty, name=name)
    slot.align = align
    slot.type = PTR
    return slot


def _internal_function(module: ir.Module, name: str, params: list[tuple[ir.Type, str]],
                       noalias: tuple[str, ...] = (), explicit_vectors: bool = False) -> ir.Function:
    """A ``void`` helper, kept out of line (inlined, LLVM unswitches the whole nest per
    condition: big code, slow compiles).  ``explicit_vectors``: the helper's vector code is
    written out, so it is optimized for size, which stops LLVM from unrolling and
    re-vectorizing its scalar edge loops (a third of the compile time, for no speed)."""
    fn = ir.Function(module, ir.FunctionType(VOID, [t for t, _ in params]), name=name)
    fn.linkage = 'internal'
    fn.attributes.add('nounwind')
    fn.attributes.add('noinline')
    if explicit_vectors:
        fn.attributes.add('optsize')
    for arg, (_, arg_name) in zip(fn.args, params):
        arg.name = arg_name
        if arg_name in noalias:
            arg.attributes.add('noalias')
    return fn


def _row_offset(b: ir.IRBuilder, row: int, ldc: ir.Value, col: int) -> ir.Value:
    """``row * ldc + col``, for a compile-time row and column and a row stride known at run time."""
    if row == 0:
        return _i64(col)
    return b.add(b.mul(_i64(row), ldc), _i64(col)) if col else b.mul(_i64(row), ldc)


def _declare(module: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    existing = module.globals.get(name)
    return existing if existing is not None else ir.Function(module, ir.FunctionType(ret, args), name)


# --------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------

class _GemmGenerator:
    """Writes the functions of one GEMM into a module: entry, block loops, packing, kernel."""

    def __init__(self, module: ir.Module, name: str, spec: GemmSpec, epilogue: Epilogue | None,
                 vector_bytes: int, share: Share | None = None):
        if spec.dtype not in _SCALAR_TYPES:
            raise ValueError(f'unsupported GEMM dtype {spec.dtype!r}')
        if min(spec.batch, spec.m, spec.n) < 1 or spec.k < 0:
            raise ValueError(f'bad GEMM sizes {spec}')
        self.module = module
        self.name = name
        self.share = share
        self.spec, self.rows_per_batch = _fold_shared_b(spec)
        self.epilogue = epilogue
        self.is_float = spec.dtype in ('f32', 'f64')
        self.scalar = _SCALAR_TYPES[spec.dtype]
        self.blocking = _blocking(spec.dtype, vector_bytes)
        # K panels of equal depth (784 = 4 x 196, not 3 x 256 + 16): a shallow last panel
        # would pay the C tile traffic of a full one for little work.
        panels = max(1, -(-spec.k // self.blocking.kc))
        self.kc = -(-spec.k // panels)
        # Packing A pays when its micro-panels are reused across many column panels; for
        # narrow products (an MLP's 10-way output layer) the micro-kernel reads A in place.
        self.packs_a = spec.n > 2 * self.blocking.nr
        self.vector = ir.VectorType(self.scalar, self.blocking.width)

    # -- arithmetic on the element type ------------------------------------------------------

    def _zero(self, ty: ir.Type | None = None) -> ir.Constant:
        ty = ty or self.scalar
        if isinstance(ty, ir.VectorType):
            return ir.Constant(ty, [self._zero(ty.element)] * ty.count)
        return ir.Constant(ty, 0.0 if self.is_float else 0)

    def _mul_add(self, b: ir.IRBuilder, x: ir.Value, y: ir.Value, acc: ir.Value) -> ir.Value:
        """acc + x*y; floats may fuse (``contract``)."""
        if self.is_float:
            return b.fadd(acc, b.fmul(x, y, flags=('contract',)), flags=('contract',))
        return b.add(acc, b.mul(x, y))

    def _elem(self, b: ir.IRBuilder, base: ir.Value, offset: ir.Value) -> ir.Value:
        return b.gep(base, [offset], source_etype=self.scalar)

    def _load(self, b: ir.IRBuilder, ptr: ir.Value) -> ir.Value:
        return b.load(ptr, typ=self.scalar)

    def _apply_epilogue(self, b, table, batch, row, col, value) -> ir.Value:
        """The caller's epilogue at the caller's (batch, row, col), also where batches were
        folded into rows."""
        if self.rows_per_batch:
            batch = b.udiv(row, _i64(self.rows_per_batch))
            row = b.urem(row, _i64(self.rows_per_batch))
        assert self.epilogue is not None, "called only when there is an epilogue"
        return self.epilogue(b, table, batch, row, col, value)

    # -- entry point -------------------------------------------------------------------------

    def define(self) -> ir.Function:
        """The entry point: A, B, C from the table, then this part's share of the product on
        the packed path or the row loops."""
        spec = self.spec
        fn = ir.Function(self.module, ir.FunctionType(VOID, [PTR, I64, I64]), name=self.name)
        fn.attributes.add('nounwind')
        table, part, nparts = fn.args
        table.name, part.name, nparts.name = 'table', 'part', 'nparts'
        b = ir.IRBuilder(fn.append_basic_block('entry'))
        a_ptr = self._operand(b, table, spec.a_slot, spec.a_offset, 'A')
        b_ptr = self._operand(b, table, spec.b_slot, spec.b_offset, 'B')
        c_ptr = self._operand(b, table, spec.c_slot, spec.c_offset, 'C')
        if _uses_packing(spec):
            self._emit_packed_share(b, table, part, nparts, a_ptr, b_ptr, c_ptr)
        else:
            rows = self._define_row_loops()
            lo, hi = self._share(b, part, nparts, spec.batch * spec.m)
            b.call(rows, [a_ptr, b_ptr, c_ptr, table, lo, hi])
        b.ret_void()
        return fn

    def _operand(self, b, table, slot: int, offset: int, name: str) -> ir.Value:
        slot_ptr = b.gep(table, [_i64(slot)], source_etype=PTR)
        base = b.load(slot_ptr, name=f'{name}.base', typ=PTR)
        return self._elem(b, base, _i64(offset)) if offset else base

    @staticmethod
    def _share(b: ir.IRBuilder, part, nparts, units: int) -> tuple[ir.Value, ir.Value]:
        """[lo, hi) of ``units`` work units for this part: floor(part*units/nparts) ..."""
        lo = b.udiv(b.mul(part, _i64(units)), nparts, name='share.lo')
        hi = b.udiv(b.mul(b.add(part, _i64(1)), _i64(units)), nparts, name='share.hi')
        return lo, hi

    def _emit_packed_share(self, b, table, part, nparts, a_ptr, b_ptr, c_ptr) -> None:
        """Split batch x (row or column) panels evenly; run the block loops on this share."""
        spec, blk = self.spec, self.blocking
        row_panels = -(-spec.m // blk.mr)
        col_panels = -(-spec.n // blk.nr)
        per_batch = row_panels if self._splits_rows(row_panels, col_panels) else col_panels
        lo, hi = self._share(b, part, nparts, spec.batch * per_batch)

        size = _ELEMENT_BYTES[spec.dtype]
        a_bytes = -(-min(blk.mc, spec.m) // blk.mr) * blk.mr * self.kc * size if self.packs_a else 0
        b_bytes = -(-min(blk.nc, spec.n) // blk.nr) * blk.nr * self.kc * size
        alloc = _declare(self.module, 'aligned_alloc', PTR, [I64, I64])
        free = _declare(self.module, 'free', VOID, [PTR])
        # Packing may write up to a vector past the panels (see _define_pack_tile).
        slack = blk.vector_bytes
        a_pack = (b.call(alloc, [_i64(64), _i64(-(-(a_bytes + slack) // 64) * 64)], name='A.packed')
                  if a_bytes else ir.Constant(PTR, None))
        b_pack = b.call(alloc, [_i64(64), _i64(-(-(b_bytes + slack) // 64) * 64)], name='B.packed')

        block_loops = self._define_block_loops()
        first_batch = b.udiv(lo, _i64(per_batch))
        end_batch = b.udiv(b.add(hi, _i64(per_batch - 1)), _i64(per_batch))
        with _for(b, first_batch, end_batch, name='batch') as batch:
            start = b.mul(batch, _i64(per_batch))
            first = _max(b, b.sub(lo, start), _i64(0))
            last = _min(b, b.sub(hi, start), _i64(per_batch))
            with b.if_then(b.icmp_signed('<', first, last)):
                a_batch = self._elem(b, a_ptr, _offset(b, (batch, spec.a[0])))
                b_batch = self._elem(b, b_ptr, _offset(b, (batch, spec.b[0])))
                c_batch = self._elem(b, c_ptr, _offset(b, (batch, spec.c[0])))
                if per_batch == row_panels:
                    r0 = b.mul(first, _i64(blk.mr))
                    r1 = _min(b, b.mul(last, _i64(blk.mr)), _i64(spec.m))
                    c0, c1 = _i64(0), _i64(spec.n)
                else:
                    r0, r1 = _i64(0), _i64(spec.m)
                    c0 = b.mul(first, _i64(blk.nr))
                    c1 = _min(b, b.mul(last, _i64(blk.nr)), _i64(spec.n))
                b.call(block_loops, [a_batch, b_batch, c_batch, table, batch,
                                     r0, r1, c0, c1, a_pack, b_pack])
        if a_bytes:
            b.call(free, [a_pack])
        b.call(free, [b_pack])

    def _splits_rows(self, row_panels: int, col_panels: int) -> bool:
        """Whether parts share out row panels (else column panels).  Each part packs all of
        the operand along the other dimension -- B (k x n) for a row split, A (m x k), if A is
        packed, for a column split -- so, where both give enough units to share out evenly,
        split the way that duplicates less packing; else the way with more units."""
        spec = self.spec
        if min(row_panels, col_panels) * spec.batch >= _EVEN_SHARE_UNITS:
            return self.packs_a and spec.n <= spec.m
        return row_panels >= col_panels

    # -- the blocked loop nest ---------------------------------------------------------------

    def _define_block_loops(self) -> ir.Function:
        """C[r0:r1, c0:c1] of one batch entry: the NC / KC / MC / NR / MR loops."""
        spec, blk = self.spec, self.blocking
        fn = _internal_function(
            self.module, f'{self.name}.block_loops',
            [(PTR, 'A'), (PTR, 'B'), (PTR, 'C'), (PTR, 'table'), (I64, 'batch'),
             (I64, 'r0'), (I64, 'r1'), (I64, 'c0'), (I64, 'c1'), (PTR, 'Ap'), (PTR, 'Bp')],
            noalias=('A', 'B', 'C', 'Ap', 'Bp'), explicit_vectors=True)
        a_ptr, b_ptr, c_ptr, table, batch, r0, r1, c0, c1, a_pack, b_pack = fn.args
        pack_a = self._define_pack_a() if self.packs_a else None
        pack_b = self._define_pack_b()
        kernel = self._micro_kernel()
        strip_epilogue = self._define_strip_epilogue() if self.epilogue else None

        b = ir.IRBuilder(fn.append_basic_block('entry'))
        nc_step = _balanced_step(b, b.sub(c1, c0), blk.nc, blk.nr)
        mc_step = _balanced_step(b, b.sub(r1, r0), blk.mc, blk.mr)
        with _for(b, c0, c1, nc_step, name='jc') as jc:
            nc = _min(b, b.sub(c1, jc), nc_step)
            with _for(b, 0, spec.k, self.kc, name='pc') as pc:
                kc = _min(b, b.sub(_i64(spec.k), pc), _i64(self.kc))
                b.call(pack_b, [self._elem(b, b_ptr, _offset(b, (pc, spec.b[1]), (jc, spec.b[2]))),
                                b_pack, nc, kc])
                accumulate = b.icmp_signed('!=', pc, _i64(0))
                last_panel = b.icmp_signed('>=', b.add(pc, _i64(self.kc)), _i64(spec.k))
                with _for(b, r0, r1, mc_step, name='ic') as ic:
                    mc = _min(b, b.sub(r1, ic), mc_step)
                    a_block = self._elem(b, a_ptr, _offset(b, (ic, spec.a[1]), (pc, spec.a[2])))
                    if pack_a:
                        b.call(pack_a, [a_block, a_pack, mc, kc])
                    with _for(b, 0, nc, blk.nr, name='jr') as jr:
                        nr = _min(b, b.sub(nc, jr), _i64(blk.nr))
                        col = b.add(jc, jr)
                        b_panel = self._elem(b, b_pack, b.mul(jr, kc))
                        with _for(b, 0, mc, blk.mr, name='ir') as ir_:
                            mr = _min(b, b.sub(mc, ir_), _i64(blk.mr))
                            row = b.add(ic, ir_)
                            c_tile = self._elem(b, c_ptr, _offset(b, (row, spec.c[1]), (col, spec.c[2])))
                            a_panel = (self._elem(b, a_pack, b.mul(ir_, kc)) if pack_a
                                       else self._elem(b, a_block, _offset(b, (ir_, spec.a[1]))))
                            b.call(kernel, [a_panel, b_panel, c_tile, kc, mr, nr, _i64(spec.c[1]), accumulate])
                        if strip_epilogue:
                            with b.if_then(last_panel):
                                c_strip = self._elem(b, c_ptr, _offset(b, (ic, spec.c[1]), (col, spec.c[2])))
                                b.call(strip_epilogue, [c_strip, table, batch, ic, col, mc, nr])
        b.ret_void()
        return fn

    # -- packing -----------------------------------------------------------------------------

    def _define_pack_a(self) -> ir.Function:
        """A[mc, kc] -> MR-row micro-panels, each kc x MR (k-major)."""
        return self._define_pack(f'{self.name}.pack_a', self.blocking.mr,
                                 lane_stride=self.spec.a[1], depth_stride=self.spec.a[2])

    def _define_pack_b(self) -> ir.Function:
        """B[kc, nc] -> NR-column micro-panels, each kc x NR (k-major)."""
        return self._define_pack(f'{self.name}.pack_b', self.blocking.nr,
                                 lane_stride=self.spec.b[2], depth_stride=self.spec.b[1])

    def _define_pack(self, name: str, width: int, lane_stride: int, depth_stride: int) -> ir.Function:
        """``void(src, dst, count, depth)``: dst[panel][d][lane] = src[panel*width + lane, d].

        ``lane_stride`` steps along the packed dimension (rows of A, columns of B),
        ``depth_stride`` along K.  The last panel may be partial: its missing lanes are
        padding, zeros or copies of its last lane (the micro-kernel never stores their
        products).  A source contiguous along K (row-major A, transposed B) is packed by W x W
        transposes (see :meth:`_define_pack_tile`), any other element by element or, where
        contiguous along the lanes, one vector per k.
        """
        fn = _internal_function(self.module, name, [(PTR, 'src'), (PTR, 'dst'), (I64, 'count'), (I64, 'depth')],
                                noalias=('src', 'dst'), explicit_vectors=True)
        src, dst, count, depth = fn.args
        tile = (self._define_pack_tile(f'{name}.tile', width, lane_stride)
                if lane_stride != 1 and depth_stride == 1 else None)
        b = ir.IRBuilder(fn.append_basic_block('entry'))
        with _for(b, 0, count, width, name='panel') as first:
            valid = b.sub(count, first)
            panel_src = self._elem(b, src, _offset(b, (first, lane_stride)))
            panel_dst = self._elem(b, dst, b.mul(first, depth))
            if tile:
                w = self.blocking.width
                last = b.sub(_min(b, valid, _i64(width)), _i64(1))
                for group in reversed(range(0, width, w)):
                    with _for(b, 0, depth, w, name='d') as d0:
                        at = self._elem(b, panel_dst, b.add(b.mul(d0, _i64(width)), _i64(group)))
                        b.call(tile, [self._elem(b, panel_src, d0), at, _i64(group), last,
                                      _min(b, b.sub(depth, d0), _i64(w))])
            else:
                with b.if_else(b.icmp_signed('>=', valid, _i64(width))) as (full, partial):
                    with full:
                        self._emit_pack_panel(b, panel_src, panel_dst, depth, width, None, lane_stride, depth_stride)
                    with partial:
                        self._emit_pack_panel(b, panel_src, panel_dst, depth, width, valid, lane_stride, depth_stride)
        b.ret_void()
        return fn

    def _emit_pack_panel(self, b, src, dst, depth, width, valid, lane_stride, depth_stride) -> None:
        """One micro-panel of ``depth`` x ``width``, not contiguous along K; ``valid``
        (runtime) source lanes in a partial panel, None in a full one, zeros past them.  One
        vector per k where the source is contiguous along the lanes (row-major B, column-major
        A; masked in a partial panel), element by element otherwise."""
        align = _ELEMENT_BYTES[self.spec.dtype]
        if lane_stride == 1:
            lanes = ir.VectorType(self.scalar, width)
            with _for(b, 0, depth, name='d') as d:
                at = self._elem(b, src, _offset(b, (d, depth_stride)))
                row = (b.load(at, typ=lanes, align=align) if valid is None
                       else self._masked_load(b, at, self._lane_mask(b, width, 0, valid)))
                b.store(row, self._elem(b, dst, b.mul(d, _i64(width))), align=align)
            return
        with _for(b, 0, depth, name='d') as d:
            row = b.mul(d, _i64(width))

            def copy(lane):
                value = self._load(b, self._elem(b, src, _offset(b, (lane, lane_stride), (d, depth_stride))))
                b.store(value, self._elem(b, dst, b.add(row, lane)))
            if valid is None:
                for lane in range(width):
                    copy(_i64(lane))
            else:
                with _for(b, 0, valid, name='lane') as lane:
                    copy(lane)
                with _for(b, valid, width, name='pad') as lane:
                    b.store(self._zero(), self._elem(b, dst, b.add(row, lane)))

    def _define_pack_tile(self, name: str, width: int, lane_stride: int) -> ir.Function:
        """``void(src, dst, first, last, depth)``: ``dst[t*width + l] = src[min(first + l,
        last), t]`` for t < depth <= W and l < W: W k's of the W lanes from ``first`` of a panel
        ``width`` lanes wide, from a source contiguous along K.

        Each lane's run of ``depth`` k's is read as one (masked) vector, the W runs transposed
        (W live vectors: no spills), each k's W lanes stored contiguously.  Lanes past the
        panel's width (an MR of 6 or 8 is no multiple of W = 4 or 16) overhang into the next
        k's first lanes, which are stored later: the caller packs a panel's last group of
        lanes first, and each group's k's in order.  Past the panel, the overhang lands in the
        next panel or in a vector of slack allocated with the scratch.  A function of its own,
        without loops: loop passes that weigh every pair of memory accesses in a loop body
        never see its 2W of them.
        """
        fn = _internal_function(
            self.module, name, [(PTR, 'src'), (PTR, 'dst'), (I64, 'first'), (I64, 'last'), (I64, 'depth')],
            noalias=('src', 'dst'), explicit_vectors=True)
        src, dst, first, last, depth = fn.args
        b = ir.IRBuilder(fn.append_basic_block('entry'))
        w = self.blocking.width
        k_mask = self._lane_mask(b, w, 0, depth)
        runs = [self._masked_load(b, self._elem(b, src, b.mul(_min(b, b.add(first, _i64(lane)), last),
                                                                _i64(lane_stride))), k_mask)
                for lane in range(min(w, width))]
        columns = self._transpose(b, runs + [ir.Constant(self.vector, ir.Undefined)] * (w - len(runs)))
        align = _ELEMENT_BYTES[self.spec.dtype]
        done = fn.append_basic_block('done')
        for t in range(w):
            if t:
                more = fn.append_basic_block(f'k{t}')
                b.cbranch(b.icmp_signed('<', _i64(t), depth), more, done)
                b.position_at_end(more)
            b.store(columns[t], self._elem(b, dst, _i64(t * width)), align=align)
        b.branch(done)
        b.position_at_end(done)
        b.ret_void()
        return fn

    @staticmethod
    def _transpose(b, rows: list[ir.Value]) -> list[ir.Value]:
        """Transpose W vectors of W lanes (vector t of the result holds lane t of every row) by
        block swaps: for h = 1, 2, 4, .. W/2, rows i and i+h (i without bit h) exchange their
        off-diagonal blocks of h lanes -- each step swaps bit h of the row and lane indices.
        W log2 W two-source shuffles, each one instruction or two (vshufps, vunpck*, vperm2f128,
        vshuff64x2, vpermt2*): 24 for 8 x 8 f32, as the unpack-shuffle-permute idiom."""
        w = len(rows)
        rows = list(rows)
        mask_type = ir.VectorType(I32, w)
        h = 1
        while h < w:
            low = ir.Constant(mask_type, [lane + w - h if lane & h else lane for lane in range(w)])
            high = ir.Constant(mask_type, [lane + w if lane & h else lane + h for lane in range(w)])
            for i in range(w):
                if not i & h:
                    upper, lower = rows[i], rows[i + h]
                    rows[i] = b.shuffle_vector(upper, lower, low)
                    rows[i + h] = b.shuffle_vector(upper, lower, high)
            h *= 2
        return rows

    # -- masked vector access ----------------------------------------------------------------

    @staticmethod
    def _lane_mask(b: ir.IRBuilder, lanes: int, first: int, limit) -> ir.Value:
        """<lanes x i1>: lane l is on where first + l < limit (an i64)."""
        indices = ir.Constant(ir.VectorType(I64, lanes), list(range(first, first + lanes)))
        return b.icmp_signed('<', indices, _splat(b, limit, lanes))

    def _masked_intrinsic(self, op: str, lanes: int) -> ir.Function:
        vector = ir.VectorType(self.scalar, lanes)
        mask = ir.VectorType(I1, lanes)
        name = f'llvm.masked.{op}.v{lanes}{self.spec.dtype}.p0'
        if op == 'load':
            return _declare(self.module, name, vector, [PTR, I32, mask, vector])
        return _declare(self.module, name, VOID, [vector, PTR, I32, mask])

    def _masked_load(self, b: ir.IRBuilder, ptr: ir.Value, mask: ir.Value) -> ir.Value:
        """Lanes under ``mask`` from ``ptr``, zeros elsewhere (which are not read)."""
        lanes = mask.type.count
        return b.call(self._masked_intrinsic('load', lanes),
                      [ptr, ir.Constant(I32, _ELEMENT_BYTES[self.spec.dtype]), mask,
                       self._zero(ir.VectorType(self.scalar, lanes))])

    def _masked_store(self, b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, mask: ir.Value) -> None:
        b.call(self._masked_intrinsic('store', mask.type.count),
               [value, ptr, ir.Constant(I32, _ELEMENT_BYTES[self.spec.dtype]), mask])

    # -- micro-kernel ------------------------------------------------------------------------

    def _micro_kernel(self) -> ir.Function:
        """The micro-kernel: defined in this module as ``name.micro_kernel``, or, given
        ``share``, in a module of its own that ``share`` names (the GEMMs of a program, and
        of every program, whose micro-kernels have one text share one module: C's row stride
        is an argument), declared here."""
        if self.share is None:
            return self._define_micro_kernel(f'{self.name}.micro_kernel')
        own, self.module = self.module, ir.Module(name=SHARED_PLACEHOLDER)
        try:
            fn = self._define_micro_kernel(SHARED_PLACEHOLDER)
            fn.linkage = ''
            symbol = self.share(str(self.module), SHARED_PLACEHOLDER)
        finally:
            self.module = own
        return _declare(self.module, symbol, VOID, [a.type for a in fn.args])

    def _define_micro_kernel(self, name: str) -> ir.Function:
        """``void(A, Bp, C, kc, mr, nr, ldc, accumulate)``: C[:mr, :nr] (+)= A-panel @ Bp-panel,
        C's rows ``ldc`` elements apart.

        The MR x NR product is held in 2*MR ``<W x T>`` accumulators across the ``kc`` rank-1
        updates, each a broadcast A element times the two B vectors of one packed row.  A is
        a packed micro-panel or, when A is not packed, the operand itself (rows past ``mr``
        then re-read row mr-1; their results are never stored).  Full tiles of a C with unit
        column stride are read-modify-written as vectors, edge tiles with masks; other C
        layouts go through a stack tile.
        """
        spec, blk = self.spec, self.blocking
        fn = _internal_function(
            self.module, name,
            [(PTR, 'A'), (PTR, 'Bp'), (PTR, 'C'), (I64, 'kc'), (I64, 'mr'), (I64, 'nr'), (I64, 'ldc'),
             (I1, 'accumulate')],
            noalias=('A', 'Bp', 'C'))
        a_panel, b_pack, c_tile, kc, mr, nr, ldc, accumulate = fn.args
        entry = fn.append_basic_block('entry')
        b = ir.IRBuilder(entry)
        if spec.c[2] == 1:
            self._emit_prefetch_c(b, c_tile, ldc)
        if self.packs_a:
            a_rows = [self._elem(b, a_panel, _i64(i)) for i in range(blk.mr)]
            a_k_stride = blk.mr
        else:
            last_row = b.sub(mr, _i64(1))
            a_rows = [self._elem(b, a_panel, _offset(b, (_min(b, _i64(i), last_row), spec.a[1])))
                      for i in range(blk.mr)]
            a_k_stride = spec.a[2]
        loop = fn.append_basic_block('k.loop')
        b.branch(loop)

        b.position_at_end(loop)
        vectors = blk.nr // blk.width
        p = b.phi(I64, 'p')
        p.add_incoming(_i64(0), entry)
        accs = [[b.phi(self.vector, f'acc{i}.{j}') for j in range(vectors)] for i in range(blk.mr)]
        for row in accs:
            for acc in row:
                acc.add_incoming(self._zero(self.vector), entry)
        b_vecs = [b.load(self._elem(b, b_pack, b.add(b.mul(p, _i64(blk.nr)), _i64(j * blk.width))),
                         typ=self.vector, align=blk.vector_bytes)
                  for j in range(vectors)]
        fma = _declare(self.module, f'llvm.fma.v{blk.width}{self.spec.dtype}', self.vector, [self.vector] * 3)
        new_accs = []
        for i in range(blk.mr):
            a_val = self._load(b, self._elem(b, a_rows[i], _offset(b, (p, a_k_stride))))
            a_vec = _splat(b, a_val, blk.width)
            new_accs.append([b.call(fma, [a_vec, b_vecs[j], accs[i][j]]) for j in range(vectors)])
        p_next = b.add(p, _i64(1))
        p.add_incoming(p_next, b.block)
        for i in range(blk.mr):
            for j in range(vectors):
                accs[i][j].add_incoming(new_accs[i][j], b.block)
        done = fn.append_basic_block('k.done')
        b.cbranch(b.icmp_signed('<', p_next, kc), loop, done)

        b.position_at_end(done)
        if spec.c[2] == 1:
            full = b.and_(b.icmp_signed('==', mr, _i64(blk.mr)), b.icmp_signed('==', nr, _i64(blk.nr)))
            with b.if_else(full) as (whole, edge):
                with whole:
                    self._emit_store_tile(b, c_tile, ldc, new_accs, accumulate)
                with edge:
                    self._emit_store_tile_masked(b, c_tile, ldc, new_accs, mr, nr, accumulate)
        else:
            self._emit_store_tile_staged(b, c_tile, ldc, new_accs, mr, nr, accumulate)
        b.ret_void()
        return fn

    def _emit_prefetch_c(self, b: ir.IRBuilder, c_tile: ir.Value, ldc: ir.Value) -> None:
        """Ask for the C tile's rows (for writing) before the k loop, as BLIS kernels do: an
        element every 64 bytes of each row and its last, which cover all its cache lines."""
        prefetch = _declare(self.module, 'llvm.prefetch.p0', VOID, [PTR, I32, I32, I32])
        write, keep, data = ir.Constant(I32, 1), ir.Constant(I32, 3), ir.Constant(I32, 1)
        nr = self.blocking.nr
        for i in range(self.blocking.mr):
            for j in [*range(0, nr - 1, 64 // _ELEMENT_BYTES[self.spec.dtype]), nr - 1]:
                b.call(prefetch, [self._elem(b, c_tile, _row_offset(b, i, ldc, j)), write, keep, data])

    def _emit_store_tile(self, b, c_tile, ldc, accs, accumulate) -> None:
        """Full tile, unit column stride: C rows are (read-modify-)written as vectors."""
        align = _ELEMENT_BYTES[self.spec.dtype]
        for i, row in enumerate(accs):
            for j, acc in enumerate(row):
                ptr = self._elem(b, c_tile, _row_offset(b, i, ldc, j * self.blocking.width))
                old = b.load(ptr, typ=self.vector, align=align)
                b.store(b.select(accumulate, b.fadd(old, acc), acc), ptr, align=align)

    def _emit_store_tile_masked(self, b, c_tile, ldc, accs, mr, nr, accumulate) -> None:
        """Edge tile, unit column stride: masked vector loads/stores of rows < mr, cols < nr."""
        width = self.blocking.width
        no_lanes = self._lane_mask(b, width, 0, _i64(0))
        for i, row in enumerate(accs):
            row_valid = b.icmp_signed('<', _i64(i), mr)
            for j, acc in enumerate(row):
                mask = b.select(row_valid, self._lane_mask(b, width, j * width, nr), no_lanes)
                ptr = self._elem(b, c_tile, _row_offset(b, i, ldc, j * width))
                old = self._masked_load(b, ptr, b.select(accumulate, mask, no_lanes))
                self._masked_store(b, b.select(accumulate, b.fadd(old, acc), acc), ptr, mask)

    def _emit_store_tile_staged(self, b, c_tile, ldc, accs, mr, nr, accumulate) -> None:
        """C with non-unit column stride: spill the accumulators, copy the valid mr x nr part."""
        blk, spec = self.blocking, self.spec
        tile = _stack_array(b, ir.ArrayType(self.scalar, blk.mr * blk.nr), blk.vector_bytes, 'tile')
        for i, row in enumerate(accs):
            for j, acc in enumerate(row):
                b.store(acc, self._elem(b, tile, _i64(i * blk.nr + j * blk.width)), align=blk.vector_bytes)
        with _for(b, 0, mr, name='ti') as i:
            with _for(b, 0, nr, name='tj') as j:
                value = self._load(b, self._elem(b, tile, b.add(b.mul(i, _i64(blk.nr)), j)))
                ptr = self._elem(b, c_tile, b.add(b.mul(i, ldc), _offset(b, (j, spec.c[2]))))
                b.store(b.select(accumulate, b.fadd(self._load(b, ptr), value), value), ptr)

    # -- epilogue ----------------------------------------------------------------------------

    def _define_strip_epilogue(self) -> ir.Function:
        """``void(C, table, batch, row0, col0, rows, cols)``: C = epilogue(C) over a finished strip.

        C is ``noalias`` so that the epilogue's own loads through ``table`` can be hoisted and
        the column loop vectorized.
        """
        spec = self.spec
        fn = _internal_function(
            self.module, f'{self.name}.strip_epilogue',
            [(PTR, 'C'), (PTR, 'table'), (I64, 'batch'), (I64, 'row0'), (I64, 'col0'),
             (I64, 'rows'), (I64, 'cols')],
            noalias=('C',))
        c_strip, table, batch, row0, col0, rows, cols = fn.args
        b = ir.IRBuilder(fn.append_basic_block('entry'))
        with _for(b, 0, rows, name='er') as i:
            row = b.add(row0, i)
            with _for(b, 0, cols, name='ec') as j:
                ptr = self._elem(b, c_strip, _offset(b, (i, spec.c[1]), (j, spec.c[2])))
                value = self._apply_epilogue(b, table, batch, row, b.add(col0, j), self._load(b, ptr))
                b.store(value, ptr)
        b.ret_void()
        return fn

    # -- unpacked path -----------------------------------------------------------------------

    def _define_row_loops(self) -> ir.Function:
        """``void(A, B, C, table, lo, hi)``: rows lo..hi-1 of the batch-major row list, each
        by dot products when C is only a few columns wide, else by row updates."""
        spec = self.spec
        fn = _internal_function(
            self.module, f'{self.name}.row_loops',
            [(PTR, 'A'), (PTR, 'B'), (PTR, 'C'), (PTR, 'table'), (I64, 'lo'), (I64, 'hi')],
            noalias=('A', 'B', 'C'))
        a_ptr, b_ptr, c_ptr, table, lo, hi = fn.args
        b = ir.IRBuilder(fn.append_basic_block('entry'))
        with _for(b, lo, hi, name='unit') as unit:
            batch = b.udiv(unit, _i64(spec.m))
            row = b.urem(unit, _i64(spec.m))
            a_row = self._elem(b, a_ptr, _offset(b, (batch, spec.a[0]), (row, spec.a[1])))
            b_mat = self._elem(b, b_ptr, _offset(b, (batch, spec.b[0])))
            c_row = self._elem(b, c_ptr, _offset(b, (batch, spec.c[0]), (row, spec.c[1])))
            if spec.n <= _NARROW_COLS:
                self._emit_row_by_dots(b, table, batch, row, a_row, b_mat, c_row)
            else:
                self._emit_row_by_updates(b, table, batch, row, a_row, b_mat, c_row)
        b.ret_void()
        return fn

    def _emit_row_by_dots(self, b, table, batch, row, a_row, b_mat, c_row) -> None:
        """C[row, j] = epilogue(A[row, :] . B[:, j]): the k loop is a reduction, vectorizable
        (``reassoc``) when A's row and B's column are contiguous."""
        spec = self.spec
        acc = _stack_array(b, self.scalar, _ELEMENT_BYTES[spec.dtype], 'dot')
        flags = ('reassoc', 'contract')
        with _for(b, 0, spec.n, name='j') as j:
            b_col = self._elem(b, b_mat, _offset(b, (j, spec.b[2])))
            b.store(self._zero(), acc)
            with _for(b, 0, spec.k, name='p') as p:
                a_val = self._load(b, self._elem(b, a_row, _offset(b, (p, spec.a[2]))))
                b_val = self._load(b, self._elem(b, b_col, _offset(b, (p, spec.b[1]))))
                total = (b.fadd(self._load(b, acc), b.fmul(a_val, b_val, flags=flags), flags=flags)
                         if self.is_float else b.add(self._load(b, acc), b.mul(a_val, b_val)))
                b.store(total, acc)
            value = self._load(b, acc)
            if self.epilogue:
                value = self._apply_epilogue(b, table, batch, row, j, value)
            b.store(value, self._elem(b, c_row, _offset(b, (j, spec.c[2]))))

    def _emit_row_by_updates(self, b, table, batch, row, a_row, b_mat, c_row) -> None:
        """C[row, :] accumulated in place over k (i-k-j order: the inner loop walks a row of B
        and of C, vectorizable when both are contiguous), then finished by the epilogue."""
        spec = self.spec
        with _for(b, 0, spec.n, name='zj') as j:
            b.store(self._zero(), self._elem(b, c_row, _offset(b, (j, spec.c[2]))))
        with _for(b, 0, spec.k, name='p') as p:
            a_val = self._load(b, self._elem(b, a_row, _offset(b, (p, spec.a[2]))))
            b_row = self._elem(b, b_mat, _offset(b, (p, spec.b[1])))
            with _for(b, 0, spec.n, name='j') as j:
                c_elem = self._elem(b, c_row, _offset(b, (j, spec.c[2])))
                b_val = self._load(b, self._elem(b, b_row, _offset(b, (j, spec.b[2]))))
                b.store(self._mul_add(b, a_val, b_val, self._load(b, c_elem)), c_elem)
        if self.epilogue:
            with _for(b, 0, spec.n, name='ej') as j:
                c_elem = self._elem(b, c_row, _offset(b, (j, spec.c[2])))
                b.store(self._apply_epilogue(b, table, batch, row, j, self._load(b, c_elem)), c_elem)


def define_gemm(module: ir.Module, name: str, spec: GemmSpec, epilogue: Epilogue | None = None,
                vector_bytes: int | None = None, share: Share | None = None) -> ir.Function:
    """Define ``void name(ptr table, i64 part, i64 nparts)`` computing
    ``C[b, i, j] = epilogue(sum_p A[b, i, p] * B[b, p, j])`` for this part's share of C.

    Helper functions are added as ``name.*`` with internal linkage; ``aligned_alloc`` and
    ``free`` are declared if the module lacks them.  ``vector_bytes`` (32 or 64) is the vector
    width the code is written for; by default the host's (:func:`host_vector_bytes`).
    ``share(text, placeholder)``: the micro-kernel goes in a module of its own, whose text
    names it ``placeholder``; ``share`` returns the symbol it is to have (and keeps the
    module), which this module declares and calls.
    """
    if vector_bytes is None:
        vector_bytes = host_vector_bytes()
    if vector_bytes not in _REGISTER_TILES:
        raise ValueError(f'unsupported GEMM vector width {vector_bytes} bytes')
    return _GemmGenerator(module, name, spec, epilogue, vector_bytes, share).define()
