"""GPU matmul: C[b] = A[b] @ B[b] by shared-memory tiles and register blocking, with the
kernel's fused epilogue (bias, activation, ...) evaluated by the Emitter as C is written.

A block computes a BM x BN tile of C; each of its threads keeps a TM x TN sub-tile in
registers. K is walked BK at a time: the block copies A[BM, BK] (transposed, so one k's
values of a thread's rows are adjacent) and B[BK, BN] into shared memory, then each thread
does BK rank-1 updates of its accumulators from there. The global loads of the next K tile
are issued before the current tile is consumed, so their latency overlaps the arithmetic.

Operands are read in place through their strides (a transposed weight, a broadcast batch),
elements past M, N or K as zeros. Threads walk an operand along whichever of its axes has
unit stride, so global loads coalesce; shared rows are padded so that neither the
transposing stores nor the compute loads conflict on banks. A thread's rows and columns are
groups of four spread across the tile (vector loads from shared memory, coalesced stores).
Blocks stride over (batch, tile row, tile column), so any grid size works.
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from ..passes.fuse import Kernel, matmul_read
from ..passes.schedule import Schedule
from . import nvptx
from .emit import Checks, Space
from .kernel_plan import numel
from .llvm_util import Loop, const, elem_ptr, i64, intrinsic, mem_type
from .ptx_kernel import open_kernel

PAD = 4                    # extra elements per shared-memory row (bank spreading)


@dataclass(frozen=True)
class Tiling:
    bm: int
    bn: int
    bk: int
    tm: int                # rows per thread (a multiple of 4)
    tn: int                # columns per thread (a multiple of 4)

    @property
    def threads(self) -> int:
        return (self.bm // self.tm) * (self.bn // self.tn)


LARGE = Tiling(128, 128, 8, 8, 8)       # 256 threads x 64 accumulators
SMALL = Tiling(64, 64, 16, 4, 4)        # 256 threads x 16 accumulators
MIN_LARGE_TILES = 256                    # about two blocks per SM of an H100


def tiling(itemsize: int, batch: int, m: int, n: int) -> Tiling:
    """LARGE where its tiles still fill a big GPU (at least MIN_LARGE_TILES) for 4-byte
    dtypes; SMALL otherwise (more, smaller tiles; fewer registers for 8-byte dtypes)."""
    large_tiles = batch * -(-m // LARGE.bm) * -(-n // LARGE.bn)
    return LARGE if itemsize == 4 and large_tiles >= MIN_LARGE_TILES else SMALL


def _group_offset(i: int, per_thread: int, extent: int) -> int:
    """Where a thread's i-th row (column) sits, less 4 x its thread row (column): groups of
    four, spread `extent / groups` apart."""
    return (i // 4) * (extent // (per_thread // 4)) + i % 4


def emit_matmul(module, sched: Schedule, k: Kernel, checks: Checks):
    mm = k.anchor
    assert mm is not None, "a matmul kernel is anchored at its matmul"
    dt = mm.dtype
    ety = mem_type(dt)
    batch_shape = tuple(mm.shape[:-2])
    batch = numel(batch_shape)
    M, N, K = mm.shape[-2], mm.shape[-1], mm.inputs[0].shape[-1]
    t = tiling(dt.itemsize, batch, M, N)
    kf = open_kernel(module, sched, k, checks, k.name, t.threads)
    em, b = kf.em, kf.b
    slot = sched.slot_of
    a_op, b_op = (matmul_read(x, sched.read_slot) for x in mm.inputs)
    a_ptr, b_ptr = kf.ptr_of_slot[slot(mm.inputs[0])], kf.ptr_of_slot[slot(mm.inputs[1])]
    a_row = t.bm + PAD
    b_row = t.bn + PAD
    a_tile = nvptx.shared_array(module, f"{k.name}.a", ety, t.bk * a_row)
    b_tile = nvptx.shared_array(module, f"{k.name}.b", ety, t.bk * b_row)
    tiles_m, tiles_n = -(-M // t.bm), -(-N // t.bn)

    blocks = nvptx.block_stride_loop(b, batch * tiles_m * tiles_n, name="tile")
    per_batch = tiles_m * tiles_n
    bi = b.udiv(blocks.index, i64(per_batch))
    rest = b.urem(blocks.index, i64(per_batch))
    m0 = b.mul(b.udiv(rest, i64(tiles_n)), i64(t.bm))
    n0 = b.mul(b.urem(rest, i64(tiles_n)), i64(t.bn))
    a_base = b.add(i64(a_op.offset), b.mul(bi, i64(a_op.strides[0])))
    b_base = b.add(i64(b_op.offset), b.mul(bi, i64(b_op.strides[0])))
    tid = nvptx.thread_index(b)

    # Which (row, k) of the A tile and (k, column) of the B tile each of a thread's loads fetches.
    a_k_fast = a_op.strides[2] == 1
    b_k_fast = b_op.strides[2] != 1 and b_op.strides[1] == 1
    a_coords = [_coords(b, tid, q, t.threads, t.bk, t.bm, a_k_fast) for q in range(t.bm * t.bk // t.threads)]
    b_coords = [_coords(b, tid, q, t.threads, t.bk, t.bn, b_k_fast) for q in range(t.bk * t.bn // t.threads)]

    def load_tiles(k0) -> list:
        """This thread's elements of the A and B tiles at K offset `k0`."""
        return (_load_tile(b, a_ptr, a_base, a_coords, m0, M, a_op.strides[1], k0, K, a_op.strides[2], dt)
                + _load_tile(b, b_ptr, b_base, b_coords, n0, N, b_op.strides[2], k0, K, b_op.strides[1], dt))

    tx = b.urem(tid, i64(t.bn // t.tn))
    ty = b.udiv(tid, i64(t.bn // t.tn))
    rows = [b.add(i64(_group_offset(i, t.tm, t.bm)), b.mul(ty, i64(4))) for i in range(t.tm)]
    cols = [b.add(i64(_group_offset(j, t.tn, t.bn)), b.mul(tx, i64(4))) for j in range(t.tn)]
    zero = const(dt, 0)
    accs = [zero] * (t.tm * t.tn)
    if K:
        k_tiles = -(-K // t.bk)
        first = load_tiles(i64(0))
        loop = Loop(b, 0, k_tiles, first + accs, name="kt")
        carried = loop.carried
        staged, accs = carried[:len(first)], carried[len(first):]
        for (mi, ki), v in zip(a_coords, staged[:len(a_coords)]):
            b.store(v, nvptx.shared_ptr(b, a_tile, b.add(b.mul(ki, i64(a_row)), mi), ety))
        for (ni, ki), v in zip(b_coords, staged[len(a_coords):]):
            b.store(v, nvptx.shared_ptr(b, b_tile, b.add(b.mul(ki, i64(b_row)), ni), ety))
        nvptx.barrier(b)
        k_next = b.mul(b.add(loop.index, i64(1)), i64(t.bk))
        following = load_tiles(k_next)
        accs = list(accs)
        for kk in range(t.bk):
            a_vals = [b.load(nvptx.shared_ptr(b, a_tile, b.add(r, i64(kk * a_row)), ety), typ=ety) for r in rows]
            b_vals = [b.load(nvptx.shared_ptr(b, b_tile, b.add(c, i64(kk * b_row)), ety), typ=ety) for c in cols]
            for i, av in enumerate(a_vals):
                for j, bv in enumerate(b_vals):
                    accs[i * t.tn + j] = _mul_add(b, dt, av, bv, accs[i * t.tn + j])
        nvptx.barrier(b)
        results = loop.close(following + accs)
        accs = results[len(first):]

    batch_index = em.unravel(bi, batch_shape) if batch_shape else []
    for i, r in enumerate(rows):
        row = b.add(m0, r)
        for j, c in enumerate(cols):
            col = b.add(n0, c)
            inside = b.and_(b.icmp_signed("<", row, i64(M)), b.icmp_signed("<", col, i64(N)))
            with b.if_then(inside):
                em.push()
                em.acc[id(mm)] = accs[i * t.tn + j]
                space = Space(tuple(mm.shape), batch_index + [row, col])
                for n, p in kf.stores:
                    em.store(n, em.value(n, (), space), p, space)
                em.pop()
    blocks.close()
    return kf.launch(batch * tiles_m * tiles_n)


def _coords(b, tid, q: int, threads: int, depth: int, width: int, depth_fast: bool) -> tuple:
    """(position along the tile's width, position along K) of load number `q` of thread
    `tid`: consecutive threads step along K when `depth_fast`, along the width otherwise."""
    e = b.add(tid, i64(q * threads))
    if depth_fast:
        return b.udiv(e, i64(depth)), b.urem(e, i64(depth))
    return b.urem(e, i64(width)), b.udiv(e, i64(width))


def _load_tile(b, ptr, base, coords, origin, extent: int, width_stride: int, k0, depth: int, depth_stride: int,
               dt) -> list:
    """The elements at `coords` (position along the tile's width, position along K) of the
    tile starting at (origin, k0) of an operand, zeros past (extent, depth)."""
    out = []
    for w, d in coords:
        at, kk = b.add(origin, w), b.add(k0, d)
        ok = b.and_(b.icmp_signed("<", at, i64(extent)), b.icmp_signed("<", kk, i64(depth)))
        off = b.add(base, b.add(b.mul(at, i64(width_stride)), b.mul(kk, i64(depth_stride))))
        out.append(_masked_load(b, ptr, off, ok, dt))
    return out


def _masked_load(b, ptr, off, ok, dt):
    """The element at `off`, or 0 where `ok` is false (element 0 is read instead)."""
    ty = mem_type(dt)
    v = b.load(elem_ptr(b, ptr, b.select(ok, off, i64(0)), ty), typ=ty)
    return b.select(ok, v, ir.Constant(ty, 0.0 if dt.is_floating_point else 0))


def _mul_add(b, dt, x, y, acc):
    if dt.is_floating_point:
        return intrinsic(b, "llvm.fma", [x.type], [x, y, acc])
    return b.add(acc, b.mul(x, y))
