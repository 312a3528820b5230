"""A row reduction's work on one row, as sequential loops (target-independent LLVM IR).

What one CPU thread does for each row of its share (cpu.drive_reduce_rows) and what one
GPU thread does for a short row (ptx_rows): a pass over the row per reduction, writing the
row outputs that pass makes ready (`row_plan`), then the outputs at the row's index, then
one more pass for the row outputs that need every reduction (softmax: max pass, sum pass,
write pass). float32 sums add float32 blocks of SUM_BLOCK elements (which vectorize) into
a float64 total, so a sum of 10^7 values is accurate to about 1e-7.

A pass can also walk only part of a row (`ranges`: a [lo, hi) per reduced dim): the CPU
splits the few long rows of a full reduction among threads that way (cpu.py). Such a pass
returns its partial in the accumulator type (`accumulator_type`; float64 for float32
sums); `finish` turns a combined partial into the reduction's value.
"""
from __future__ import annotations

from llvmlite import ir

from ..ir import dtypes
from .emit import Emitter, Space, combine, reduction_identity
from .kernel_plan import RowPlan
from .llvm_util import F64, I64, Loop, close_nest, i64, intrinsic, nest, reg_type

SUM_BLOCK = 1024


def one_row(em: Emitter, k, plan: RowPlan, outer_index: list) -> None:
    """Every pass and output of the row at `outer_index` (reduced dims 0)."""
    whole = full_ranges(plan)
    em.push()
    for r, row_stores in zip(k.reduces, plan.passes):
        em.acc[id(r)] = finish(em.b, r, row_partial(em, r, plan, whole, outer_index, row_stores))
    outer_space = Space(plan.outer_shape, outer_index)
    for n, p in plan.outer_stores:
        em.store(n, em.value(n, (), outer_space), p, outer_space)
    if plan.late:
        write_row(em, plan, whole, outer_index, plan.late)
    em.pop()


def full_ranges(plan: RowPlan) -> list:
    """[lo, hi) of every reduced dim covering the whole row."""
    return [(0, plan.space[d]) for d in plan.inner_dims]


def row_index(em: Emitter, plan: RowPlan, row) -> list:
    """The full index (reduced dims 0) of row number `row` (row-major over the kept dims)."""
    index = [i64(0)] * len(plan.space)
    for d, v in zip(plan.outer_dims, em.unravel(row, [plan.space[d] for d in plan.outer_dims])):
        index[d] = v
    return index


def row_space(S, inner_dims, outer_index, inner_loops) -> Space:
    index = list(outer_index)
    for d, lp in zip(inner_dims, inner_loops):
        index[d] = lp.index
    return Space(tuple(S), index)


def write_row(em: Emitter, plan: RowPlan, ranges, outer_index, stores) -> None:
    """Write the row outputs `stores` over the part of the row that `ranges` covers."""
    inner = nest(em.b, ranges)
    space = row_space(plan.space, plan.inner_dims, outer_index, inner)
    em.push()
    for n, p in stores:
        em.store(n, em.value(n, (), space), p, space)
    em.pop()
    close_nest(inner)


# ---------------------------------------------------------------- accumulators

def blocked(r) -> bool:
    """Whether reduction `r` adds float32 blocks into a float64 total."""
    return r.op == "sum" and r.dtype is dtypes.float32


def accumulator_type(r) -> ir.Type:
    """The register type of a partial of reduction `r`."""
    return F64 if blocked(r) else reg_type(r.dtype)


def finish(b: ir.IRBuilder, r, acc):
    """The reduction's value from its (combined) partial."""
    return b.fptrunc(acc, reg_type(r.dtype)) if blocked(r) else acc


def combine_partials(b: ir.IRBuilder, r, acc, partial):
    """acc (op) partial in the accumulator type, strictly in program order (no reassociation,
    so partials combined in a fixed order give the same bits every run)."""
    if r.dtype.is_floating_point and r.op == "sum":
        return b.fadd(acc, partial)
    if r.dtype.is_floating_point and r.op == "prod":
        return b.fmul(acc, partial)
    return combine(b, r.op, r.dtype, acc, partial)


# ---------------------------------------------------------------- one pass

def row_partial(em: Emitter, r, plan: RowPlan, ranges, outer_index, stores):
    """One pass over the part of a row that `ranges` covers: reduction `r`'s partial in
    `accumulator_type(r)`, writing `stores` (row outputs) on the way."""
    b = em.b
    S, inner_dims = plan.space, plan.inner_dims
    acc = ir.Constant(F64, 0.0) if blocked(r) else reduction_identity(r.op, r.dtype)
    inner: list[Loop] = []
    for depth, (_dim, (lo, hi)) in enumerate(zip(inner_dims, ranges)):
        last = depth == len(inner_dims) - 1
        if last and blocked(r):
            acc = _blocked_sum(em, r, plan, outer_index, inner, acc, stores, lo, hi)
            break
        lp = Loop(b, lo, hi, [acc], name=f"r{depth}")
        inner.append(lp)
        acc = lp.carried[0]
        if last:
            space = row_space(S, inner_dims, outer_index, inner)
            em.push()
            v = em.value(r.inputs[0], (), space)
            for n, p in stores:
                em.store(n, em.value(n, (), space), p, space)
            acc = combine(b, r.op, r.dtype, acc, v)
            em.pop()
    for lp in reversed(inner):
        acc = lp.close([acc])[0]
    return acc


def _blocked_sum(em, r, plan: RowPlan, outer_index, outer_loops, acc64, stores, lo, hi):
    """Innermost reduced dim of a float32 sum over [lo, hi): float32 partial sums of
    SUM_BLOCK elements, added into a float64 total."""
    b = em.b
    hi = hi if isinstance(hi, ir.Value) else i64(hi)
    blocks = Loop(b, lo, hi, [acc64], name="blk", step=SUM_BLOCK)
    start = blocks.index
    stop = intrinsic(b, "llvm.smin", [I64], [b.add(start, i64(SUM_BLOCK)), hi])
    lp = Loop(b, start, stop, [ir.Constant(reg_type(r.dtype), 0.0)], name="elt")
    space = row_space(plan.space, plan.inner_dims, outer_index, outer_loops + [lp])
    em.push()
    v = em.value(r.inputs[0], (), space)
    for node, p in stores:
        em.store(node, em.value(node, (), space), p, space)
    part = combine(b, "sum", r.dtype, lp.carried[0], v)
    em.pop()
    block_sum = lp.close([part])[0]
    total = b.fadd(blocks.carried[0], b.fpext(block_sum, F64))
    return blocks.close([total])[0]
