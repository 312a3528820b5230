"""GPU row reductions: the reduced axes are innermost, a block works on a row.

Like the CPU's row driver (cpu.drive_reduce_rows, same `row_plan`), a kernel makes one pass
over its row per reduction, writing the row outputs that are ready in that pass (softmax:
the max pass, the sum pass, then a write pass), then writes the per-row outputs:

- each thread strides along the row accumulating its share (float32 sums in float64);
- `nvptx.block_reduce` combines the threads' partials (warp shuffles, then one shared-memory
  round between warps) and hands every thread the row's value for the next pass.

Blocks stride over rows, so any grid size works. Two shapes of work get their own layout:

- rows of at most THREAD_ROW elements (a softmax over ten classes) would leave most of a
  warp idle: a thread takes a whole such row, making its passes with the CPU's sequential
  row loops (row_loops.py);
- a few very long rows (a full reduction of a large tensor) would leave most of the GPU idle:
  each row is split over many blocks, each writing its partial to scratch memory, and the
  last block of the row to finish (an atomic counter per row) combines the partials in a
  fixed order, so the result is deterministic, and writes the outputs. That needs one
  reduction and no row outputs.
"""
from __future__ import annotations

from llvmlite import ir

from ..passes.fuse import Kernel
from ..passes.schedule import Schedule
from . import nvptx
from .emit import Checks, Space, combine
from .kernel_plan import RowPlan, row_plan
from .llvm_util import I8, I32, I64, i64
from .ptx_kernel import KernelFunction, accumulate, accumulator_dtype, accumulator_identity, finish, open_kernel
from .row_loops import one_row

MAX_BLOCK = 256
THREAD_ROW = 16                   # rows this short: a thread per row
ELEMENTS_PER_THREAD = 4           # a row's length / this = the threads worth giving it
SPLIT_MIN_ELEMENTS = 4096         # a block of a split row gets at least this many elements
SPLIT_TARGET_BLOCKS = 1024        # rows * splits aimed for: several waves on any GPU


def block_size(row_length: int) -> int:
    """Threads per row: a power of two from one warp to MAX_BLOCK."""
    want = -(-row_length // ELEMENTS_PER_THREAD)
    block = nvptx.WARP
    while block < min(want, MAX_BLOCK):
        block *= 2
    return block


def split_count(k: Kernel, plan: RowPlan) -> int:
    """Blocks per row (1: unsplit)."""
    if len(k.reduces) != 1 or plan.passes[0] or plan.late:
        return 1
    by_length = plan.row_length // SPLIT_MIN_ELEMENTS
    by_rows = -(-SPLIT_TARGET_BLOCKS // plan.rows)
    return max(1, min(by_length, by_rows))


def emit_rows(module, sched: Schedule, k: Kernel, checks: Checks):
    probe = row_plan(k, k.stores)
    if probe.row_length <= THREAD_ROW:
        return _emit_thread_per_row(open_kernel(module, sched, k, checks, k.name, MAX_BLOCK))
    splits = split_count(k, probe)
    if splits > 1:
        return _emit_split(module, sched, k, checks, splits)
    kf = open_kernel(module, sched, k, checks, k.name, block_size(probe.row_length))
    plan = row_plan(k, kf.stores)
    em, b = kf.em, kf.b
    exchange = nvptx.shared_array(module, f"{k.name}.exchange", I64, nvptx.WARP)
    rows = nvptx.block_stride_loop(b, plan.rows, name="row")
    em.push()
    outer_index = _outer_index(em, plan, rows.index)
    for r, row_stores in zip(k.reduces, plan.passes):
        acc = _row_pass(kf, plan, outer_index, 0, plan.row_length, r, row_stores)
        em.acc[id(r)] = finish(b, r, nvptx.block_reduce(b, r.op, accumulator_dtype(r), acc, kf.block, exchange))
    _store_outer(kf, plan, outer_index)
    if plan.late:
        _row_pass(kf, plan, outer_index, 0, plan.row_length, None, plan.late)
    em.pop()
    rows.close()
    return kf.launch(plan.rows)


def _emit_thread_per_row(kf: KernelFunction):
    plan = row_plan(kf.kernel, kf.stores)
    rows = nvptx.grid_stride_loop(kf.b, plan.rows, kf.block, name="row")
    one_row(kf.em, kf.kernel, plan, _outer_index(kf.em, plan, rows.index))
    rows.close()
    return kf.launch(-(-plan.rows // kf.block))


def _outer_index(em, plan: RowPlan, row) -> list:
    """The full index (reduced dims 0) of row number `row`."""
    index = [i64(0)] * len(plan.space)
    for d, v in zip(plan.outer_dims, em.unravel(row, [plan.space[d] for d in plan.outer_dims])):
        index[d] = v
    return index


def _row_pass(kf: KernelFunction, plan: RowPlan, outer_index, lo, hi, r, stores):
    """Threads stride over row positions [lo, hi): reduction `r`'s partial (None: no
    reduction) in the accumulator dtype, writing `stores` on the way."""
    em, b = kf.em, kf.b
    carried = [accumulator_identity(r)] if r is not None else []
    loop = nvptx.thread_stride_loop(b, lo, hi, kf.block, carried)
    index = list(outer_index)
    for d, v in zip(plan.inner_dims, em.unravel(loop.index, plan.inner_shape)):
        index[d] = v
    space = Space(tuple(plan.space), index)
    em.push()
    for n, p in stores:
        em.store(n, em.value(n, (), space), p, space)
    nxt = [accumulate(b, r, loop.carried[0], em.value(r.inputs[0], (), space))] if r is not None else []
    em.pop()
    results = loop.close(nxt)
    return results[0] if r is not None else None


def _store_outer(kf: KernelFunction, plan: RowPlan, outer_index) -> None:
    """Thread 0 writes the outputs at the row's index."""
    if not plan.outer_stores:
        return
    em, b = kf.em, kf.b
    space = Space(plan.outer_shape, outer_index)
    with b.if_then(nvptx.is_thread_zero(b)):
        em.push()
        for n, p in plan.outer_stores:
            em.store(n, em.value(n, (), space), p, space)
        em.pop()


def _emit_split(module, sched: Schedule, k: Kernel, checks: Checks, splits: int):
    """Each row over `splits` blocks; scratch: a u32 counter per row, then the partials."""
    (r,) = k.reduces
    acc_dt = accumulator_dtype(r)
    probe = row_plan(k, k.stores)
    rows, length = probe.rows, probe.row_length
    item = acc_dt.itemsize
    partials_at = -(-4 * rows // item) * item
    kf = open_kernel(module, sched, k, checks, k.name, MAX_BLOCK, partials_at + rows * splits * item)
    plan = row_plan(k, kf.stores)
    em, b = kf.em, kf.b
    acc_ty = accumulator_identity(r).type
    exchange = nvptx.shared_array(module, f"{k.name}.exchange", I64, nvptx.WARP)
    flag = nvptx.shared_array(module, f"{k.name}.last", I32, 1)
    counters = kf.scratch
    partials = b.gep(kf.scratch, [i64(partials_at)], inbounds=True, source_etype=I8)
    chunk = -(-length // splits)

    blocks = nvptx.block_stride_loop(b, rows * splits)
    em.push()
    row = b.udiv(blocks.index, i64(splits))
    part = b.urem(blocks.index, i64(splits))
    outer_index = _outer_index(em, plan, row)
    lo = b.mul(part, i64(chunk))
    hi = b.select(b.icmp_signed("<", b.add(lo, i64(chunk)), i64(length)), b.add(lo, i64(chunk)), i64(length))
    acc = _row_pass(kf, plan, outer_index, lo, hi, r, [])
    total = nvptx.block_reduce(b, r.op, acc_dt, acc, kf.block, exchange)

    counter = b.gep(counters, [row], inbounds=True, source_etype=I32)
    with b.if_then(nvptx.is_thread_zero(b)):
        b.store(total, b.gep(partials, [blocks.index], inbounds=True, source_etype=acc_ty))
        nvptx.fence(b)
        done = b.atomic_rmw("add", counter, ir.Constant(I32, 1), "monotonic")
        nvptx.fence(b)
        last = b.icmp_unsigned("==", done, ir.Constant(I32, splits - 1))
        b.store(b.zext(last, I32), nvptx.shared_ptr(b, flag, 0, I32))
    nvptx.barrier(b)
    is_last = b.icmp_unsigned("!=", b.load(nvptx.shared_ptr(b, flag, 0, I32), typ=I32), ir.Constant(I32, 0))
    with b.if_then(is_last):
        nvptx.fence(b)
        gather = nvptx.thread_stride_loop(b, 0, splits, kf.block, [accumulator_identity(r)], name="part")
        at = b.gep(partials, [b.add(b.mul(row, i64(splits)), gather.index)], inbounds=True, source_etype=acc_ty)
        value = b.load_atomic(at, "monotonic", item, typ=acc_ty)
        (acc,) = gather.close([combine(b, r.op, acc_dt, gather.carried[0], value)])
        em.acc[id(r)] = finish(b, r, nvptx.block_reduce(b, r.op, acc_dt, acc, kf.block, exchange))
        _store_outer(kf, plan, outer_index)
        with b.if_then(nvptx.is_thread_zero(b)):
            b.store(ir.Constant(I32, 0), counter)     # ready for the next launch
    nvptx.barrier(b)
    em.pop()
    blocks.close()
    return kf.launch(rows * splits)
