"""CPU backend: a scheduled graph becomes one LLVM module with one entry point.

Each kernel is a function `void kN(ptr table, i64 part, i64 nparts)`: it loads its buffer
pointers from the program's buffer table and runs its share `part` of `nparts` of the work.
Its body is a separate function taking the pointers as `noalias` arguments, so LLVM's
vectorizer knows buffers do not overlap. The entry point

    i64 fg_main(ptr table, i64 nthreads)

runs every kernel in order: large ones through libgomp's `GOMP_parallel` (reached through
function-pointer globals the runtime fills in, so a machine without libgomp still runs, on
one thread), small ones directly. It returns 0, or the error code a failed check wrote into
the error word (table slot 0), stopping before the kernels after the failing one.
"""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass

from llvmlite import ir

from ..ir import dtypes
from ..passes.fuse import Kernel, matmul_operand, movement_base
from ..passes.schedule import Schedule
from . import gemm
from .emit import Emitter, Space, VirtualPad, path_view
from .llvm_util import F64, I32, I64, PTR, VOID, Loop, const, elem_ptr, i64, intrinsic, load_value, reg_type, store_value

PARALLEL_MIN_ELEMENTS = 1 << 16     # below this, fork/join costs more than a second core gives
SUM_BLOCK = 1024                    # float32 sums: blocks of this length are added in float64
ENTRY = "fg_main"
GOMP_GLOBALS = ("fg_gomp_parallel", "fg_omp_thread_num", "fg_omp_num_threads")


@dataclass
class KernelCode:
    name: str
    parallel: bool
    fallible: bool


def emit_module(sched: Schedule, name: str, checks: list) -> tuple[str, list]:
    """LLVM IR text of the whole program and the per-kernel facts the runtime needs."""
    with recursion_for(sched):
        return _emit_module(sched, name, checks)


@contextlib.contextmanager
def recursion_for(sched: Schedule):
    """The Emitter evaluates expressions recursively; let deep fused chains (thousands of ops
    in one loop) through. Python 3.11+ frames do not use the C stack, so this is safe."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 8 * sum(len(k.nodes) for k in sched.kernels) + 2000))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def _emit_module(sched: Schedule, name: str, checks: list) -> tuple[str, list]:
    module = ir.Module(name=name)
    for g in GOMP_GLOBALS:
        var = ir.GlobalVariable(module, PTR, g)
        var.initializer = ir.Constant(PTR, None)   # external: the runtime writes the address
    codes = [emit_kernel(module, sched, k, checks) for k in sched.kernels if has_output(k)]
    emit_entry(module, codes)
    return str(module), codes


# ---------------------------------------------------------------- kernel functions

def has_output(k: Kernel) -> bool:
    """Whether the kernel writes anything (a reduction over zero elements still writes its identity)."""
    return any(_numel(n.shape) for n, _ in k.stores)


def emit_kernel(module: ir.Module, sched: Schedule, k: Kernel, checks: list) -> KernelCode:
    if k.kind == "matmul":
        return emit_matmul_kernel(module, sched, k, checks)
    slots = _kernel_slots(sched, k)
    body_ty = ir.FunctionType(VOID, [PTR] * (len(slots) + 1) + [I64, I64])
    body = ir.Function(module, body_ty, f"{k.name}.body")
    body.linkage = "internal"
    for a in body.args[:len(slots)]:
        a.add_attribute("noalias")
    b = ir.IRBuilder(body.append_basic_block("entry"))
    ptr_of_slot = dict(zip(slots, body.args))
    pointers = {id(x): ptr_of_slot[sched.read_slot[id(movement_base(x)[0])]]
                for x in k.loads if id(movement_base(x)[0]) in sched.read_slot}
    pointers.update({id(x): ptr_of_slot[sched.read_slot[id(x)]] for x in k.loads if id(x) in sched.read_slot})
    em = Emitter(b, k, pointers, body.args[len(slots)], checks)
    stores = [(n, ptr_of_slot[s]) for n, s in k.stores]
    part, nparts = body.args[-2], body.args[-1]
    drive = {"elementwise": drive_elementwise, "reduce": drive_reduce, "scatter": drive_scatter}[k.kind]
    parallel = drive(em, k, stores, part, nparts)
    b.ret_void()

    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, I64, I64]), k.name)
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    table, p, n = fn.args
    args = [b.load(elem_ptr(b, table, s, PTR), typ=PTR) for s in slots]
    err = b.load(elem_ptr(b, table, 0, PTR), typ=PTR)
    b.call(body, args + [err, p, n])
    b.ret_void()
    if parallel:
        emit_omp_wrapper(module, fn)
    return KernelCode(k.name, parallel, k.name in sched.fallible)


def _kernel_slots(sched: Schedule, k: Kernel) -> list:
    """The distinct table slots a kernel touches (one pointer per buffer, even if read and written)."""
    slots = []
    for x in k.loads:
        base = movement_base(x)[0]
        s = sched.read_slot.get(id(x), sched.read_slot.get(id(base)))
        if s is not None and s not in slots:
            slots.append(s)
    for _, s in k.stores:
        if s not in slots:
            slots.append(s)
    return slots


def emit_omp_wrapper(module: ir.Module, fn: ir.Function) -> None:
    """`kN.omp(ptr table)`: the kernel's share for the calling OpenMP thread."""
    w = ir.Function(module, ir.FunctionType(VOID, [PTR]), f"{fn.name}.omp")
    w.linkage = "internal"
    b = ir.IRBuilder(w.append_basic_block("entry"))
    getter = ir.FunctionType(I32, [])
    tid = b.call(_function_pointer(b, module, "fg_omp_thread_num", getter), [])
    nt = b.call(_function_pointer(b, module, "fg_omp_num_threads", getter), [])
    b.call(fn, [w.args[0], b.sext(tid, I64), b.sext(nt, I64)])
    b.ret_void()


def _function_pointer(b: ir.IRBuilder, module: ir.Module, name: str, fnty: ir.FunctionType):
    """The function a pointer global holds, loaded with its type so it can be called."""
    return b.load(module.get_global(name), typ=fnty.as_pointer())


def emit_entry(module: ir.Module, codes: list) -> None:
    fn = ir.Function(module, ir.FunctionType(I64, [PTR, I64]), ENTRY)
    table, nthreads = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    err = b.load(elem_ptr(b, table, 0, PTR), typ=PTR)
    gomp = _function_pointer(b, module, "fg_gomp_parallel", ir.FunctionType(VOID, [PTR, PTR, I32, I32]))
    loaded = b.ptrtoint(gomp, I64)
    threaded = b.and_(b.icmp_signed(">", nthreads, i64(1)), b.icmp_unsigned("!=", loaded, i64(0)))
    for code in codes:
        kfn = module.get_global(code.name)
        if code.parallel:
            with b.if_else(threaded) as (then, otherwise):
                with then:
                    b.call(gomp, [module.get_global(f"{code.name}.omp"), table, b.trunc(nthreads, I32),
                                  ir.Constant(I32, 0)])
                with otherwise:
                    b.call(kfn, [table, i64(0), i64(1)])
        else:
            b.call(kfn, [table, i64(0), i64(1)])
        if code.fallible:
            failed = b.load(err, typ=I64)
            with b.if_then(b.icmp_signed("!=", failed, i64(0)), likely=False):
                b.ret(failed)
    b.ret(i64(0))


# ---------------------------------------------------------------- loop drivers

def _part_range(b, extent: int, part, nparts):
    lo = b.sdiv(b.mul(i64(extent), part), nparts)
    hi = b.sdiv(b.mul(i64(extent), b.add(part, i64(1))), nparts)
    return lo, hi


def _nest(b, ranges):
    """Nested loops over [(lo, hi), ...]; returns the loops (outermost first)."""
    loops = []
    for d, (lo, hi) in enumerate(ranges):
        loops.append(Loop(b, lo, hi, name=f"d{d}"))
    return loops


def _close(loops):
    for loop in reversed(loops):
        loop.close()


def drive_elementwise(em: Emitter, k: Kernel, stores, part, nparts) -> bool:
    b = em.b
    shape = collapsed_shape(em, k)
    ranges = [(0, d) for d in shape]
    parallel = _numel(shape) >= PARALLEL_MIN_ELEMENTS and shape and shape[0] >= 2
    if parallel:
        ranges[0] = _part_range(b, shape[0], part, nparts)
    loops = _nest(b, ranges)
    space = Space(shape, [lp.index for lp in loops])
    for n, ptr in stores:
        em.store(n, em.value(n, (), space), ptr, space)
    _close(loops)
    return bool(parallel)


def drive_reduce(em: Emitter, k: Kernel, stores, part, nparts) -> bool:
    return (drive_reduce_rows if k.order == "row" else drive_reduce_columns)(em, k, stores, part, nparts)


def drive_reduce_rows(em: Emitter, k: Kernel, stores, part, nparts) -> bool:
    """For each outer index: one pass over the row per reduction, then the outputs."""
    b = em.b
    S, A = k.space, k.axes
    outer_dims = [d for d in range(len(S)) if d not in A]
    inner_dims = [d for d in range(len(S)) if d in A]
    outer_shape = tuple(1 if d in A else s for d, s in enumerate(S))
    ranges = [(0, S[d]) for d in outer_dims]
    parallel = bool(outer_dims) and _numel(S) >= PARALLEL_MIN_ELEMENTS and S[outer_dims[0]] >= 2
    if parallel:
        ranges[0] = _part_range(b, S[outer_dims[0]], part, nparts)
    outer = _nest(b, ranges)
    outer_index = [i64(0)] * len(S)
    for d, lp in zip(outer_dims, outer):
        outer_index[d] = lp.index
    outer_space = Space(outer_shape, outer_index)
    reduces = k.reduces
    row_stores = [(n, p) for n, p in stores if _numel(n.shape) == _numel(S) and _numel(S) != _numel(outer_shape)]
    outer_stores = [(n, p) for n, p in stores if (n, p) not in row_stores]
    stage_of = {id(n): _stage(n, reduces, k) for n, _ in row_stores}
    em.push()
    for stage, r in enumerate(reduces):
        em.acc[id(r)] = reduce_row(em, r, S, inner_dims, outer_index,
                                   [(n, p) for n, p in row_stores if stage_of[id(n)] == stage])
    for n, p in outer_stores:
        em.store(n, em.value(n, (), outer_space), p, outer_space)
    late = [(n, p) for n, p in row_stores if stage_of[id(n)] == len(reduces)]
    if late:
        inner = _nest(b, [(0, S[d]) for d in inner_dims])
        space = _row_space(S, inner_dims, outer_index, inner)
        em.push()
        for n, p in late:
            em.store(n, em.value(n, (), space), p, space)
        em.pop()
        _close(inner)
    em.pop()
    _close(outer)
    return parallel


def _row_space(S, inner_dims, outer_index, inner_loops) -> Space:
    index = list(outer_index)
    for d, lp in zip(inner_dims, inner_loops):
        index[d] = lp.index
    return Space(tuple(S), index)


def _stage(n, reduces, k) -> int:
    """The first row pass in which output `n` can be written: after every reduction it needs."""
    order = {id(r): i for i, r in enumerate(reduces)}
    inside = {id(x) for x in k.nodes}
    need, stack, seen = -1, [n], set()
    while stack:
        x = stack.pop()
        if id(x) in seen or id(x) not in inside:
            continue
        seen.add(id(x))
        if id(x) in order and x is not n:
            need = max(need, order[id(x)])
            continue
        stack.extend(x.inputs)
    return need + 1


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
            space = _row_space(S, inner_dims, outer_index, inner)
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
    """Innermost dim of a float32 sum: float32 partial sums of SUM_BLOCK elements (vectorized),
    added into a float64 total, so a sum of 10^7 values is accurate to about 1e-7."""
    b = em.b
    d = inner_dims[-1]
    n = S[d]
    blocks = Loop(b, 0, (n + SUM_BLOCK - 1) // SUM_BLOCK, [acc64], name="blk")
    start = b.mul(blocks.index, i64(SUM_BLOCK))
    stop = intrinsic(b, "llvm.smin", [I64], [b.add(start, i64(SUM_BLOCK)), i64(n)])
    lp = Loop(b, start, stop, [ir.Constant(reg_type(r.dtype), 0.0)], name="elt")
    space = _row_space(S, inner_dims, outer_index, outer_loops + [lp])
    em.push()
    v = em.value(r.inputs[0], (), space)
    for node, p in stores:
        em.store(node, em.value(node, (), space), p, space)
    part = combine(b, "sum", r.dtype, lp.carried[0], v)
    em.pop()
    block_sum = lp.close([part])[0]
    total = b.fadd(blocks.carried[0], b.fpext(block_sum, F64))
    return blocks.close([total])[0]


def drive_reduce_columns(em: Emitter, k: Kernel, stores, part, nparts) -> bool:
    """Reduced axes not innermost: accumulate into the output in memory order, so the inner
    loop runs along contiguous kept elements (a column sum of a matrix, say)."""
    b = em.b
    S, A = k.space, k.axes
    (r,) = k.reduces
    out_shape = tuple(1 if d in A else s for d, s in enumerate(S))
    (node, out), rest = stores[0], stores[1:]
    split = len(S) - 1                      # the innermost dim is kept: threads own column ranges
    parallel = _numel(S) >= PARALLEL_MIN_ELEMENTS and S[split] >= 2
    lo_hi = _part_range(b, S[split], part, nparts) if parallel else (i64(0), i64(S[split]))
    init_ranges = [(0, d) for d in out_shape]
    init_ranges[split] = lo_hi
    loops = _nest(b, init_ranges)
    init_space = Space(out_shape, [lp.index for lp in loops])
    em.store(node, reduction_identity(r.op, r.dtype), out, init_space)
    _close(loops)
    ranges = [(0, d) for d in S]
    ranges[split] = lo_hi
    loops = _nest(b, ranges)
    space = Space(tuple(S), [lp.index for lp in loops])
    out_index = [i64(0) if d in A else lp.index for d, lp in enumerate(loops)]
    out_space = Space(out_shape, out_index)
    em.push()
    v = em.value(r.inputs[0], (), space)
    off, _ = em.offset(_contig(out_shape), out_space)
    store_value(b, out, off, combine(b, r.op, r.dtype, load_value(b, out, off, r.dtype), v), r.dtype)
    em.pop()
    _close(loops)
    _copy_out(em, node, out, rest, out_shape, lo_hi, split)
    return parallel


def _copy_out(em, node, src, rest, shape, lo_hi, split):
    """Write a finished output to its other destinations (an output that is also assigned)."""
    if not rest:
        return
    b = em.b
    ranges = [(0, d) for d in shape]
    ranges[split] = lo_hi
    loops = _nest(b, ranges)
    space = Space(tuple(shape), [lp.index for lp in loops])
    off, _ = em.offset(_contig(shape), space)
    v = load_value(b, src, off, node.dtype)
    for _, p in rest:
        store_value(b, p, off, v, node.dtype)
    _close(loops)


def emit_matmul_kernel(module: ir.Module, sched: Schedule, k: Kernel, checks: list) -> KernelCode:
    """`kN(table, part, nparts)` calls the GEMM generator's function on the program table
    directly; the kernel's root, if it is not the matmul itself, becomes the epilogue."""
    mm = k.anchor
    (root, out_slot), rest = k.stores[0], k.stores[1:]
    operands = [matmul_operand(x) for x in mm.inputs]
    slot = lambda x: sched.read_slot.get(id(x), sched.read_slot.get(id(movement_base(x)[0])))
    batch = _numel(mm.shape[:-2])
    m, n = mm.shape[-2], mm.shape[-1]
    spec = gemm.GemmSpec(
        dtype=mm.dtype.short, batch=batch, m=m, n=n, k=mm.inputs[0].shape[-1],
        a=operands[0].strides, b=operands[1].strides, c=(m * n, n, 1),
        a_slot=slot(mm.inputs[0]), b_slot=slot(mm.inputs[1]), c_slot=out_slot,
        a_offset=operands[0].offset, b_offset=operands[1].offset)
    batch_shape = tuple(mm.shape[:-2])

    def epilogue(eb, table, batch_idx, row, col, acc):
        pointers = {}
        for x in k.loads:
            s = slot(x)
            base = movement_base(x)[0]
            ptr = eb.load(elem_ptr(eb, table, s, PTR), typ=PTR)
            pointers[id(x)] = pointers[id(base)] = ptr
        em = Emitter(eb, k, pointers, eb.load(elem_ptr(eb, table, 0, PTR), typ=PTR), checks)
        em.acc[id(mm)] = acc
        index = em.unravel(batch_idx, batch_shape) if batch_shape else []
        return em.value(root, (), Space(tuple(mm.shape), index + [row, col]))

    fn = gemm.define_gemm(module, k.name, spec, epilogue if root is not mm else None)
    fn.linkage = "internal"
    if rest:
        raise NotImplementedError("a matmul kernel writes one buffer")  # fusion keeps it so
    if mm.dtype.is_floating_point and batch * m * n * spec.k >= PARALLEL_MIN_ELEMENTS * 16:
        emit_omp_wrapper(module, fn)
        return KernelCode(k.name, True, False)
    return KernelCode(k.name, False, False)


def drive_scatter(em: Emitter, k: Kernel, stores, part, nparts) -> bool:
    """out = base; then out[index[i] along axis] += src[i] for every i, on one thread."""
    b = em.b
    sc = k.anchor
    base, index, src = sc.inputs
    axis = sc.attrs["axis"]
    (node, out), rest = stores[0], stores[1:]
    loops = _nest(b, [(0, d) for d in sc.shape])
    space = Space(tuple(sc.shape), [lp.index for lp in loops])
    em.push()
    em.store(node, em.value(base, (), space), out, space)
    em.pop()
    _close(loops)
    loops = _nest(b, [(0, d) for d in index.shape])
    space = Space(tuple(index.shape), [lp.index for lp in loops])
    em.push()
    ix = em.cast_value(em.value(index, (), space), index.dtype, dtypes.int64)
    v = em.value(src, (), space)
    size = sc.shape[axis]
    ok = b.and_(b.icmp_signed(">=", ix, i64(0)), b.icmp_signed("<", ix, i64(size)))
    em.check(ok, 1, f"scatter_add: index out of range for dimension {axis} of size {size}", sc.loc)
    target = list(space.index)
    target[axis] = b.select(ok, ix, i64(0))
    off, _ = em.view_offset(_contig(sc.shape), target)
    with b.if_then(ok):
        store_value(b, out, off, combine(b, "sum", sc.dtype, load_value(b, out, off, sc.dtype), v), sc.dtype)
    em.pop()
    _close(loops)
    _copy_out(em, node, out, rest, tuple(sc.shape), (i64(0), i64(sc.shape[0] if sc.shape else 1)), 0)
    return False


# ---------------------------------------------------------------- reductions

def reduction_identity(op: str, dt) -> ir.Constant:
    if op == "sum":
        return const(dt, 0)
    if op == "prod":
        return const(dt, 1)
    big = op == "reduce_min"
    if dt.is_floating_point:
        return const(dt, float("inf") if big else float("-inf"))
    if dt.is_bool:
        return const(dt, 1 if big else 0)
    bits = reg_type(dt).width
    if dt.is_signed:
        return const(dt, (1 << (bits - 1)) - 1 if big else -(1 << (bits - 1)))
    return const(dt, (1 << bits) - 1 if big else 0)


def combine(b: ir.IRBuilder, op: str, dt, acc, v):
    """acc (op) v, with reassociation allowed for floats so reductions vectorize."""
    fast = ("reassoc", "nsz")
    if dt.is_floating_point:
        if op == "sum":
            return b.fadd(acc, v, flags=fast)
        if op == "prod":
            return b.fmul(acc, v, flags=fast)
        return intrinsic(b, "llvm.maximum" if op == "reduce_max" else "llvm.minimum", [acc.type], [acc, v])
    if dt.is_bool:
        return (b.or_ if op in ("sum", "reduce_max") else b.and_)(acc, v)
    if op == "sum":
        return b.add(acc, v)
    if op == "prod":
        return b.mul(acc, v)
    name = {"reduce_max": "smax", "reduce_min": "smin"}[op] if dt.is_signed else \
        {"reduce_max": "umax", "reduce_min": "umin"}[op]
    return intrinsic(b, f"llvm.{name}", [acc.type], [acc, v])


# ---------------------------------------------------------------- dim collapsing

def collapsed_shape(em: Emitter, k: Kernel) -> tuple:
    """The fewest loop dims for an elementwise kernel: merge neighbouring dims wherever every
    view the kernel reads or writes walks them as one contiguous run (10M elements in any
    shape become one flat loop the vectorizer handles)."""
    root = tuple(k.space)
    views = [_contig(root)]
    for n, _ in k.stores:
        _collect_views(em, n, (), views, set(), root)
    keep = [d for d in range(len(root)) if root[d] != 1]
    if not keep:
        return ()
    tops = []
    for st in views:
        st = st.reshape(root) if tuple(st.shape) != root else st
        tops.append(st.views[-1])
    groups = [[keep[0]]]
    for d in keep[1:]:
        prev = groups[-1][-1]
        if all(_mergeable(v, prev, d, root) for v in tops):
            groups[-1].append(d)
        else:
            groups.append([d])
    return tuple(_numel([root[d] for d in g]) for g in groups)


def _mergeable(v, a: int, b: int, shape) -> bool:
    full = lambda d: v.mask is None or v.mask[d] == (0, shape[d])
    return full(a) and full(b) and v.strides[a] == v.strides[b] * shape[b]


def _collect_views(em: Emitter, n, path: tuple, out: list, seen: set, root_shape) -> None:
    """Every view through which the kernel indexes memory or masks values, as `value` will."""
    key = (id(n), tuple(id(m) for m in path))
    if key in seen:
        return
    seen.add(key)
    if id(n) in em.loaded or n.op in ("input", "param") or n.op in ("iota", "rand") or n.kind == "gather":
        out.append(path_view(n.shape, path))
        if n.kind == "gather":
            _collect_views(em, n.inputs[1], path, out, seen, root_shape)
        return
    if n.op == "pad":
        out.append(path_view(n.inputs[0].shape, path + (n,)))
    if n.op == "concat":
        for i, x in enumerate(n.inputs):
            pad = em.pad_cache.setdefault((id(n), i), VirtualPad(n, i))
            out.append(path_view(x.shape, path + (pad,)))
            _collect_views(em, x, path + (pad,), out, seen, root_shape)
        return
    sub = path + (n,) if n.kind == "movement" else path
    for x in n.inputs:
        _collect_views(em, x, sub, out, seen, root_shape)


def _contig(shape):
    from ..view import ViewStack
    return ViewStack.contiguous(shape)


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
