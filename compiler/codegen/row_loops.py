"""A row reduction's work on one row, as sequential loops (target-independent LLVM IR).

What one CPU thread does for each row of its share (cpu.drive_reduce_rows) and what one
GPU thread does for a short row (ptx_rows): a pass over the row per reduction, writing the
row outputs that pass makes ready (`row_plan`), then the outputs at the row's index, then
one more pass for the row outputs that need every reduction (softmax: max pass, sum pass,
write pass). float32 sums add float32 blocks of SUM_BLOCK elements (which vectorize) into
a float64 total, so a sum of 10^7 values is accurate to about 1e-7.
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
    S = plan.space
    em.push()
    for r, row_stores in zip(k.reduces, plan.passes):
        em.acc[id(r)] = reduce_row(em, r, S, plan.inner_dims, outer_index, row_stores)
    outer_space = Space(plan.outer_shape, outer_index)
    for n, p in plan.outer_stores:
        em.store(n, em.value(n, (), outer_space), p, outer_space)
    if plan.late:
        inner = nest(em.b, [(0, S[d]) for d in plan.inner_dims])
        space = row_space(S, plan.inner_dims, outer_index, inner)
        em.push()
        for n, p in plan.late:
            em.store(n, em.value(n, (), space), p, space)
        em.pop()
        close_nest(inner)
    em.pop()


def row_space(S, inner_dims, outer_index, inner_loops) -> Space:
    index = list(outer_index)
    for d, lp in zip(inner_dims, inner_loops):
        index[d] = lp.index
    return Space(tuple(S), index)


def reduce_row(em: Emitter, r, S, inner_dims, outer_index, stores):
    """One pass over a row: the reduction `r`, writing `stores` (row outputs) on the way."""
    b = em.b
    dt = r.dtype
    blocked = r.op == "sum" and dt is dtypes.float32
    init = reduction_identity(r.op, dt)
    if blocked:
        init = ir.Constant(F64, 0.0)
    inner = []
    acc = init
    for depth, d in enumerate(inner_dims):
        last = depth == len(inner_dims) - 1
        if last and blocked:
            acc = _blocked_sum(em, r, S, inner_dims, outer_index, inner, acc, stores)
            break
        lp = Loop(b, 0, S[d], [acc], name=f"r{depth}")
        inner.append(lp)
        acc = lp.carried[0]
        if last:
            space = row_space(S, inner_dims, outer_index, inner)
            em.push()
            v = em.value(r.inputs[0], (), space)
            for n, p in stores:
                em.store(n, em.value(n, (), space), p, space)
            acc = combine(b, r.op, dt, acc, v)
            em.pop()
    for lp in reversed(inner):
        acc = lp.close([acc])[0]
    if blocked:
        acc = b.fptrunc(acc, reg_type(dt))
    return acc


def _blocked_sum(em, r, S, inner_dims, outer_index, outer_loops, acc64, stores):
    """Innermost dim of a float32 sum: float32 partial sums of SUM_BLOCK elements, added into
    a float64 total."""
    b = em.b
    d = inner_dims[-1]
    n = S[d]
    blocks = Loop(b, 0, (n + SUM_BLOCK - 1) // SUM_BLOCK, [acc64], name="blk")
    start = b.mul(blocks.index, i64(SUM_BLOCK))
    stop = intrinsic(b, "llvm.smin", [I64], [b.add(start, i64(SUM_BLOCK)), i64(n)])
    lp = Loop(b, start, stop, [ir.Constant(reg_type(r.dtype), 0.0)], name="elt")
    space = row_space(S, inner_dims, outer_index, outer_loops + [lp])
    em.push()
    v = em.value(r.inputs[0], (), space)
    for node, p in stores:
        em.store(node, em.value(node, (), space), p, space)
    part = combine(b, "sum", r.dtype, lp.carried[0], v)
    em.pop()
    block_sum = lp.close([part])[0]
    total = b.fadd(blocks.carried[0], b.fpext(block_sum, F64))
    return blocks.close([total])[0]
