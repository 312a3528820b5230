"""Float32 accumulation (after broadcasting resolution, before simplify): reductions,
matmuls and scatter-adds of 16-bit floats (float16, bfloat16) compute in float32 and round once.

Elementwise code needs no rewriting: 16-bit floats are float32 in registers (codegen loads,
converts, and rounds when it stores or casts). An accumulation is different: it would round
at every step where the accumulator lives in memory (column reductions, GEMM tiles, atomic
adds), so `sum(x: f16)` becomes `cast(sum(cast(x, f32)), f16)`, and likewise for the other
reductions, `matmul` and `scatter_add`. The casts fuse with the producers and the consumers,
and the backends never see a 16-bit accumulator (as PyTorch accumulates half in float).
"""
from __future__ import annotations

from ..ir import Graph, Node, clone, dtypes, make, rewrite

WIDENED_KINDS = frozenset({"reduce", "matmul", "scatter"})


def _cast(x: Node, dt, loc) -> Node:
    return x if x.dtype is dt else make("cast", [x], {}, loc, shape=x.shape, dtype=dt)


def _widen(n: Node, inputs: tuple) -> Node:
    if n.kind not in WIDENED_KINDS or not n.dtype.is_storage_float:
        return clone(n, inputs)
    wide = tuple(_cast(x, dtypes.float32, n.loc) if x.dtype is n.dtype else x for x in inputs)
    return _cast(make(n.op, wide, dict(n.attrs), n.loc), n.dtype, n.loc)


def widen(graph: Graph) -> Graph:
    return rewrite(graph, _widen)
