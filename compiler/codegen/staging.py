"""Staged evaluation of a long elementwise kernel on the CPU.

LLVM spends time quadratic in the length of a loop body on it: the loop vectorizer (VPlan)
walks back along a value's chain of operands for every value it plans, and the register
allocator splits live ranges across the whole of a basic block. One loop evaluating a fused
chain of thousands of ops would take it seconds; the same ops in loops of a few hundred each
take it time in proportion to their number.

`plan` cuts a kernel's values, in the order the Emitter computes them, into stages of about
STAGE_COST operations (a math function inlined counts INLINE_MATH_COST). `emit` walks the
innermost loop dim in tiles of TILE elements (a dim that short is one tile) and, for each
tile, runs one loop per stage over the tile's elements. A value that a later stage reads is
kept in a stack array of TILE elements of its register type (a float16 value stays the
unrounded float32 it is inside a kernel; a bool is a byte), so every element goes through
the same operations as in one loop: the results are the same bits. Loads, constants and
views are evaluated again by each stage that needs them (no arithmetic); the stores all come
in the last stage, after every read of the tile.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

from llvmlite import ir

from ..ir import Node
from . import mathlib
from .emit import VIEW_OPS, Emitter, Space
from .llvm_util import I64, Loop, close_nest, from_storage, i64, intrinsic, mem_type, nest, reg_type, to_storage

TILE = 64                  # elements of the innermost dim per tile (a stage loop's trip count)
STAGE_COST = 512           # operations per stage, about; a kernel of more is staged
INLINE_MATH_COST = 40      # what a math function inlined (mathlib) costs, in operations
MAX_KEPT = 32              # values kept between stages at most (each TILE elements of stack)

Value = tuple              # (node, path): a node's value at the index `path` leads to (emit.py)


@dataclass
class Stage:
    computes: list = field(default_factory=list)   # values this stage evaluates, in order
    reads: list = field(default_factory=list)      # values of earlier stages it loads from their tiles
    keeps: list = field(default_factory=list)      # values it stores into their tiles


def plan(em: Emitter, roots: list) -> list | None:
    """The stages evaluating `roots` (nodes stored at the kernel's index), or None when the
    kernel is short enough for one loop, or its stages would keep more than MAX_KEPT values."""
    value_of, inputs = _values(em, roots)
    owned = [k for k, (n, _) in value_of.items() if not _free(em, n)]
    cost = {k: _cost(em, value_of[k][0]) for k in owned}
    if sum(cost.values()) <= STAGE_COST:
        return None
    stage_of = _cut(owned, cost)
    last = stage_of[owned[-1]]
    needs = [(stage_of[k], inputs[k]) for k in owned] + [(last, [_key((r, ())) for r in roots])]
    reads: list[dict] = [{} for _ in range(last + 1)]     # per stage: the kept values it reads
    for s, keys in needs:
        for k in _owned_behind(em, keys, inputs, value_of):
            if stage_of[k] != s:
                reads[s][k] = None
    kept = {k for r in reads for k in r}
    if len(kept) > MAX_KEPT:
        return None
    stages = [Stage(reads=[value_of[k] for k in r]) for r in reads]
    for k in owned:
        stages[stage_of[k]].computes.append(value_of[k])
        if k in kept:
            stages[stage_of[k]].keeps.append(value_of[k])
    return stages


def emit(em: Emitter, stores: list, shape: tuple, ranges: list, stages: list) -> None:
    """Loops over `ranges` (per dim of `shape`) whose innermost dim goes by tiles, one loop
    per stage inside each tile (module doc); `stores` are (node, pointer) pairs."""
    b = em.b
    tiles = {_key(v): b.alloca(ir.ArrayType(_tile_type(v[0].dtype), TILE)) for s in stages for v in s.keeps}
    outer = nest(b, ranges[:-1])
    lo, hi = ranges[-1]
    tile = None if _short(lo, hi) else Loop(b, lo, hi, name="tile", step=TILE)
    start, end = (i64(lo), i64(hi)) if tile is None else \
        (tile.index, intrinsic(b, "llvm.smin", [I64], [b.add(tile.index, i64(TILE)), _value(hi)]))
    for i, stage in enumerate(stages):
        loop = Loop(b, start, end, name=f"stage{i}")
        space = Space(shape, [lp.index for lp in outer] + [loop.index])
        em.push()
        _emit_stage(em, stage, space, functools.partial(_tile_element, b, tiles, b.sub(loop.index, start)))
        if i == len(stages) - 1:
            for n, ptr in stores:
                em.store(n, em.value(n, (), space), ptr, space)
        em.pop()
        loop.close()
    if tile is not None:
        tile.close()
    close_nest(outer)


def _emit_stage(em: Emitter, stage: Stage, space: Space, at) -> None:
    """One stage's values at the element `space` indexes, `at(value)` the address of a kept
    value's element in its tile: those it reads come from there, those it keeps go there."""
    b = em.b
    for n, path in stage.reads:
        kept = b.load(at((n, path)))
        em.provide(n, path, space, from_storage(b, kept, n.dtype) if n.dtype.is_bool else kept)
    for n, path in stage.computes:
        em.value(n, path, space)
    for n, path in stage.keeps:
        v = em.value(n, path, space)
        b.store(to_storage(b, v, n.dtype) if n.dtype.is_bool else v, at((n, path)))


def _short(lo, hi) -> bool:
    """Whether the innermost range is one tile at most, known now: the stage loops then run
    over all of it, with bounds LLVM sees (a dim of 3 is unrolled, not looped)."""
    return isinstance(lo, int) and isinstance(hi, int) and hi - lo <= TILE


def _key(v: Value) -> tuple:
    n, path = v
    return id(n), tuple(map(id, path)) if path else ()


def _tile_type(dt) -> ir.Type:
    """What a tile holds per element: the register type (float16 as its unrounded float32),
    but a bool as a byte (an i1 array has no vector loads)."""
    return mem_type(dt) if dt.is_bool else reg_type(dt)


def _value(x) -> ir.Value:
    return x if isinstance(x, ir.Value) else i64(x)


def _tile_element(b: ir.IRBuilder, tiles: dict, slot, v: Value):
    """The address of element `slot` of kept value `v`'s tile."""
    return b.gep(tiles[_key(v)], [i64(0), slot], inbounds=True)


def _free(em: Emitter, n: Node) -> bool:
    """Whether evaluating `n` again in another stage costs no arithmetic: a load, a constant
    or a view (index arithmetic at most)."""
    return id(n) in em.loaded or n.op == "const" or n.op in VIEW_OPS


def _cost(em: Emitter, n: Node) -> int:
    """Operations `n` costs LLVM, about: one, or a whole math function when inlined."""
    inlined = not em.out_of_line_math and n.op in mathlib.MATH_FUNCTIONS and n.dtype.is_floating_point
    return INLINE_MATH_COST if inlined else 1


def _values(em: Emitter, roots: list) -> tuple[dict, dict]:
    """Every value the kernel computes by _key, each after its inputs (the order of
    Emitter.value), and the keys of each one's inputs. A stack, not recursion: chains are
    thousands deep."""
    value_of: dict = {}
    inputs: dict = {}
    for r in roots:
        stack: list = [((r, ()), _key((r, ())), False)]
        while stack:
            v, k, expanded = stack.pop()
            if expanded:
                value_of[k] = v
                continue
            if k in inputs:
                continue
            xs = em.value_inputs(*v)
            keys = [_key(x) for x in xs]
            inputs[k] = keys
            stack.append((v, k, True))
            stack.extend((x, xk, False) for x, xk in zip(reversed(xs), reversed(keys)) if xk not in inputs)
    return value_of, inputs


def _cut(owned: list, cost: dict) -> dict:
    """Stage number by key: consecutive runs of about STAGE_COST operations."""
    stage_of, stage, total = {}, 0, 0
    for k in owned:
        c = cost[k]
        if total and total + c > STAGE_COST:
            stage, total = stage + 1, 0
        stage_of[k] = stage
        total += c
    return stage_of


def _owned_behind(em: Emitter, keys: list, inputs: dict, value_of: dict) -> list:
    """The computed (not free) values, by key, that evaluating the values of `keys` reads,
    looking through free ones (a view of a computed value reads it)."""
    found, stack, seen = [], list(keys), set()
    while stack:
        k = stack.pop()
        if k in seen:
            continue
        seen.add(k)
        if _free(em, value_of[k][0]):
            stack.extend(inputs[k])
        else:
            found.append(k)
    return found
