"""CPU backend, kernels: each kernel of a schedule becomes an LLVM module of its own.

A kernel's module is emitted once per structural key (codegen/kernel_key.py) and compiled
once per key (runtime/cpu.py caches its object by that key): identical kernels in a program,
in other programs or in the unrolled steps of one share it. Nothing in it names the program:
its functions, each `void fgk_<key>[.phase](ptr args, i64 part, i64 nparts)`, take the
kernel's buffers as arguments, `args[0]` the error word and `args[1..]` its buffers in
`kernel_key`'s order (then the host-call pointers the kernel needs, `host_calls`), and run
their share `part` of `nparts` of the work. The phase functions are the module's only
external symbols. Each loads the pointers and calls a body taking them as `noalias`
arguments, so LLVM's vectorizer knows buffers do not overlap. The runner (codegen/
cpu_runner.py) calls them as the program's plan says.

A GEMM's micro-kernel is not in its kernel's module but in one of its own (`SharedModule`,
keyed and named by its text), which the module declares and calls: the GEMMs of a program
that differ in shape only share it, and it compiles once (codegen/gemm.py).

A check that fails writes its code and the kernel's own check id into the error word; the
runner adds the kernel's first check id in the program (`KernelModuleCode.checks` holds each
check with the number of its node, so a program reusing the code reports its own lines).

Host calls: a collective (`all_reduce`) is a kernel of its own that calls the host through
the pointer passed after its buffers (the table slot of `fg_host_all_reduce`, program.py's
HOST_CALLS, which the runtime fills in, runtime/hostcalls.py):

    i64 fg_host_all_reduce(ptr in, ptr out, i64 count, i32 dtype_code, i32 op_code, i32 group)

`dtype_code` indexes HOST_DTYPES, `op_code` ALL_REDUCE_OPS (ir/ops.py). It returns 0, or
not 0 for a failure, which the kernel records as a check (ERR_HOST) in the error word, so the
entry point stops there and the runtime raises the host's error. The call is made between
kernels, on the thread running the entry point: the kernels after it wait for it.

A large row reduction with few rows (a full reduction such as `x.sum()` or a mean squared
error has one) gives threads too few rows to share, so each row is split among them
instead, in phases that run one after the other (`Phase`), so no kernel needs a barrier:

    .pass<i>    parallel: each part reduces its chunk of every row for reduction i into its
                partial, in a module global (.partials<i>: a count, then MAX_PARTS slots
                per row), writing the row outputs that pass makes ready;
    .finish     combines the partials in part order (deterministic for a thread count),
                writes the outputs at the row's index (part 0) and the row outputs that need
                every reduction (in parallel, over the same chunks, when there are any).

Later phases combine the partials of earlier reductions themselves, in the same order. The
globals are per loaded program (every use of the module in it runs one after the other), and
a program runs one call at a time (runtime/cpu.py).
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from llvmlite import ir

from ..ir import dtypes, fmt_type
from ..ir.ops import ALL_REDUCE_OPS
from ..passes.fuse import Kernel, host_view, matmul_read
from ..passes.schedule import Schedule
from ..program import HOST_CALLS
from . import gemm, staging
from .emit import ERR_HOST, Checks, Emitter, Space, combine, reduction_identity
from .kernel_key import KeyedKernel
from .kernel_plan import RowPlan, collapsed_shape, contiguous, node_pointers, numel, row_plan
from .llvm_util import (
    I1,
    I8,
    I32,
    I64,
    PTR,
    VOID,
    Loop,
    close_nest,
    elem_ptr,
    i64,
    intrinsic,
    load_value,
    nest,
    store_value,
)
from .row_loops import (
    SUM_BLOCK,
    accumulator_type,
    combine_partials,
    finish,
    full_ranges,
    one_row,
    row_index,
    row_partial,
    write_row,
)

PARALLEL_MIN_ELEMENTS = 1 << 16     # below this, fork/join costs more than a second core gives
SPLIT_MAX_ROWS = 8                  # row reductions with at most this many rows split each row instead
SPLIT_MIN_EXTENT = 64               # split a row along its outermost reduced dim at least this long
MAX_PARTS = 256                     # threads a split row reduction uses at most (its partial slots)
LIGHT_MAX_ELEMENTS = 16             # kernels over at most this many elements: the light LLVM pipeline
SYMBOL_PREFIX = "fgk_"              # a kernel module's functions: fgk_<key>[.phase]
HOST_ALL_REDUCE_GLOBAL = HOST_CALLS[0]        # the all_reduce host call (module doc), set by the runtime
HOST_DTYPES = tuple(d.name for d in dtypes.ALL)  # dtype codes of host calls (runtime/hostcalls.py has the same)


@dataclass(frozen=True)
class Phase:
    function: str          # `void f(ptr args, i64 part, i64 nparts)`, exported by the kernel's module
    parallel: bool         # run on every thread (through GOMP) when threads are available


@dataclass(frozen=True)
class KernelModuleCode:
    """A kernel's module and what the runner needs to call it: shared by every kernel
    with its structural key."""
    key: str
    symbol: str
    source: str            # LLVM IR text
    phases: tuple          # Phase, in order
    checks: tuple          # (error code, message, node number) per kernel check id
    max_parts: int = 0     # the most threads a parallel phase may use (0: any number)
    host_calls: tuple = ()     # names (program.HOST_CALLS) of the host calls after the buffers in `args`
    pipeline: str = "O3"   # the LLVM pipeline that optimises it (program.LLVM_PIPELINES; llvm_pipeline)
    shared: tuple = ()     # SharedModule of each function it calls in a module of its own

    @property
    def parallel(self) -> bool:
        return any(p.parallel for p in self.phases)

    @property
    def fallible(self) -> bool:
        return bool(self.checks)


def symbol_of(key: str) -> str:
    return SYMBOL_PREFIX + key[:32]


def emit_kernel_module(sched: Schedule, k: Kernel, keyed: KeyedKernel) -> KernelModuleCode:
    """The module of kernel `k` (module doc), its functions named after its key."""
    symbol = symbol_of(keyed.key)
    module = ir.Module(name=symbol)
    checks = Checks()
    shared: list = []
    phases, max_parts, host_calls = emit_kernel(module, sched, k, keyed, checks, symbol, shared)
    numbered = tuple((code, message, keyed.number[id(n)]) for (code, message, _), n in zip(checks, checks.nodes))
    return KernelModuleCode(keyed.key, symbol, str(module), tuple(phases), numbered, max_parts, host_calls,
                            llvm_pipeline(k), tuple(shared))


@dataclass(frozen=True)
class SharedModule:
    """A function that kernel modules call and do not define (a GEMM micro-kernel), in a module
    of its own keyed and named by its text: compiled once for every kernel calling it."""
    key: str               # hex digest of its text
    symbol: str            # the function's name: SYMBOL_PREFIX and the key
    source: str            # LLVM IR text


def share_into(shared: list) -> gemm.Share:
    """gemm's `share`: appends the SharedModule of a module's text to `shared`, returns its symbol."""
    def share(text: str, placeholder: str) -> str:
        key = hashlib.sha256(text.encode()).hexdigest()
        symbol = symbol_of(key)
        shared.append(SharedModule(key, symbol, text.replace(f'@"{placeholder}"', f'@"{symbol}"')))
        return symbol
    return share


def llvm_pipeline(k: Kernel) -> str:
    """The LLVM pipeline for kernel `k`'s module (program.LLVM_PIPELINES): "light" (no loop
    unrolling or vectorization) for an elementwise or scatter kernel over at most
    LIGHT_MAX_ELEMENTS elements, one or two vectors' worth, where vectorizing has nothing to
    gain while unrolling and vectorizing its small constant loops costs most of its compile
    time; "O3" for every other: GEMMs, reductions (whose reassociable sums the vectorizer
    interleaves: light, their last bits would change), and elementwise kernels of more
    elements (at 128, light made the linear-regression step's [100, 1] kernels slow enough to
    take 5,000 repeated steps from 0.83 to 1.55 ms)."""
    light = k.kind in ("elementwise", "scatter") and numel(k.space) <= LIGHT_MAX_ELEMENTS
    return "light" if light else "O3"


# ---------------------------------------------------------------- kernel functions

def emit_kernel(module: ir.Module, sched: Schedule, k: Kernel, keyed: KeyedKernel, checks: Checks,
                name: str, shared: list) -> tuple[list, int, tuple]:
    """The kernel's functions in `module`: (phases, max_parts, host_calls); the modules of
    functions it calls that `module` does not define are appended to `shared`."""
    if k.kind == "matmul":
        return [emit_matmul_kernel(module, sched, k, keyed, checks, name, shared)], 0, ()
    if k.kind == "collective":
        return [emit_host_all_reduce(module, sched, k, keyed, checks, name)], 0, (HOST_ALL_REDUCE_GLOBAL,)
    if k.kind == "reduce" and k.order == "row" and split_dim(row_plan(k, k.stores)) is not None:
        return emit_split_rows(module, sched, k, keyed, checks, name), MAX_PARTS, ()
    drive = {"elementwise": drive_elementwise, "reduce": drive_reduce, "scatter": drive_scatter}[k.kind]
    fn, parallel = kernel_function(module, sched, k, keyed, checks, name, drive)
    return [Phase(fn.name, parallel)], 0, ()


def kernel_function(module: ir.Module, sched: Schedule, k: Kernel, keyed: KeyedKernel, checks: Checks,
                    name: str, drive):
    """`name(args, part, nparts)` and its body `name.body(ptr..., err, part, nparts)`, which
    `drive(em, k, stores, part, nparts)` fills in; returns the function and what drive returned."""
    slots = keyed.slots
    body_ty = ir.FunctionType(VOID, [PTR] * (len(slots) + 1) + [I64, I64])
    body = ir.Function(module, body_ty, f"{name}.body")
    body.linkage = "internal"
    for a in body.args[:len(slots)]:
        a.add_attribute("noalias")
    b = ir.IRBuilder(body.append_basic_block("entry"))
    ptr_of_slot = dict(zip(slots, body.args))
    em = Emitter(b, k, node_pointers(sched, k, ptr_of_slot), body.args[len(slots)], checks)
    stores = [(n, ptr_of_slot[s]) for n, s in k.stores]
    part, nparts = body.args[-2], body.args[-1]
    result = drive(em, k, stores, part, nparts)
    b.ret_void()

    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, I64, I64]), name)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    args, p, n = fn.args
    pointers = [b.load(elem_ptr(b, args, keyed.argument(s), PTR), typ=PTR) for s in slots]
    err = b.load(elem_ptr(b, args, 0, PTR), typ=PTR)
    b.call(body, pointers + [err] + _share(result, p, n))
    b.ret_void()
    return fn, result


def _share(parallel: bool, part, nparts) -> list:
    """The part a phase function hands its body: its own, or all of the work (part 0 of 1) for
    a phase that never runs on several threads, which lets LLVM fold the loop bounds."""
    return [part, nparts] if parallel else [i64(0), i64(1)]


def _export(module: ir.Module, name: str, impl: ir.Function, parallel: bool) -> ir.Function:
    """`name(args, part, nparts)`, exported, calling the internal `impl` with its share."""
    impl.linkage = "internal"
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, I64, I64]), name)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    args, part, nparts = fn.args
    b.call(impl, [args] + _share(parallel, part, nparts))
    b.ret_void()
    return fn


# ---------------------------------------------------------------- loop drivers

def _part_range(b, extent: int, part, nparts):
    lo = b.sdiv(b.mul(i64(extent), part), nparts)
    hi = b.sdiv(b.mul(i64(extent), b.add(part, i64(1))), nparts)
    return lo, hi


def drive_elementwise(em: Emitter, k: Kernel, stores, part, nparts) -> bool:
    """One loop nest over the collapsed shape storing every root; a long kernel's innermost
    loop goes by tiles, a loop per stage of its values inside each (staging.py)."""
    b = em.b
    shape = collapsed_shape(em, k)
    ranges = [(0, d) for d in shape]
    parallel = numel(shape) >= PARALLEL_MIN_ELEMENTS and shape and shape[0] >= 2
    if parallel:
        ranges[0] = _part_range(b, shape[0], part, nparts)
    stages = staging.plan(em, [n for n, _ in stores]) if shape else None
    if stages is not None:
        staging.emit(em, stores, shape, ranges, stages)
        return bool(parallel)
    loops = nest(b, ranges)
    space = Space(shape, [lp.index for lp in loops])
    for n, ptr in stores:
        em.store(n, em.value(n, (), space), ptr, space)
    close_nest(loops)
    return bool(parallel)


def drive_reduce(em: Emitter, k: Kernel, stores, part, nparts) -> bool:
    return (drive_reduce_rows if k.order == "row" else drive_reduce_columns)(em, k, stores, part, nparts)


def drive_reduce_rows(em: Emitter, k: Kernel, stores, part, nparts) -> bool:
    """For each outer index: one pass over the row per reduction, then the outputs."""
    b = em.b
    S = k.space
    plan = row_plan(k, stores)
    ranges = [(0, S[d]) for d in plan.outer_dims]
    parallel = bool(plan.outer_dims) and numel(S) >= PARALLEL_MIN_ELEMENTS and S[plan.outer_dims[0]] >= 2
    if parallel:
        ranges[0] = _part_range(b, S[plan.outer_dims[0]], part, nparts)
    outer = nest(b, ranges)
    outer_index = [i64(0)] * len(S)
    for d, lp in zip(plan.outer_dims, outer):
        outer_index[d] = lp.index
    one_row(em, k, plan, outer_index)
    close_nest(outer)
    return parallel


# ---------------------------------------------------------------- split rows (few long rows)

def split_dim(plan: RowPlan) -> int | None:
    """The reduced dim along which threads split every row of a large row reduction with
    few rows (None: split rows, or stay on one thread): the outermost reduced dim of at
    least SPLIT_MIN_EXTENT, else the longest."""
    S = plan.space
    if numel(S) < PARALLEL_MIN_ELEMENTS or plan.rows > SPLIT_MAX_ROWS or not plan.inner_dims:
        return None
    long_dims = [d for d in plan.inner_dims if S[d] >= SPLIT_MIN_EXTENT]
    d = long_dims[0] if long_dims else max(plan.inner_dims, key=lambda d: S[d])
    return d if S[d] >= 2 else None


def emit_split_rows(module: ir.Module, sched: Schedule, k: Kernel, keyed: KeyedKernel, checks: Checks,
                    name: str) -> list:
    """A pass function per reduction (parallel), then a finish function (see the module doc)."""
    plan = row_plan(k, k.stores)
    partials = [_partials_global(module, f"{name}.partials{i}", plan.rows) for i in range(len(k.reduces))]
    phases = []
    for i in range(len(k.reduces)):
        drive = functools.partial(drive_split_pass, reduction=i, partials=partials)
        fn, _ = kernel_function(module, sched, k, keyed, checks, f"{name}.pass{i}", drive)
        phases.append(Phase(fn.name, True))
    drive = functools.partial(drive_split_finish, partials=partials)
    fn, _ = kernel_function(module, sched, k, keyed, checks, f"{name}.finish", drive)
    phases.append(Phase(fn.name, bool(plan.late)))
    return phases


def _partials_global(module: ir.Module, name: str, rows: int) -> ir.GlobalVariable:
    """Scratch for one reduction's partials: slot 0 holds how many parts wrote them, then
    MAX_PARTS slots per row (8 bytes: room for any accumulator type)."""
    slots = ir.ArrayType(I64, 1 + rows * MAX_PARTS)
    var = ir.GlobalVariable(module, slots, name)
    var.linkage = "internal"
    var.initializer = ir.Constant(slots, None)
    var.align = 64
    var.type = PTR                      # llvmlite types globals by their contents
    return var


def _partial_slot(b: ir.IRBuilder, partials, row, part):
    return elem_ptr(b, partials, b.add(b.mul(row, i64(MAX_PARTS)), b.add(part, i64(1))), I64)


def drive_split_pass(em: Emitter, k: Kernel, stores, part, nparts, reduction: int, partials: list) -> bool:
    """Pass `reduction` of a split row reduction: for every row, this part's partial over its
    chunk of the row, with the values of the earlier reductions combined from theirs."""
    b = em.b
    plan = row_plan(k, stores)
    with b.if_then(b.icmp_signed("==", part, i64(0))):
        b.store(nparts, elem_ptr(b, partials[reduction], 0, I64))
    ranges = _chunk_ranges(b, plan, part, nparts)
    rows = Loop(b, 0, plan.rows, name="row")
    outer_index = row_index(em, plan, rows.index)
    em.push()
    _combine_into(em, k.reduces[:reduction], partials, rows.index)
    acc = row_partial(em, k.reduces[reduction], plan, ranges, outer_index, plan.passes[reduction])
    b.store(acc, _partial_slot(b, partials[reduction], rows.index, part))
    em.pop()
    rows.close()
    return True


def drive_split_finish(em: Emitter, k: Kernel, stores, part, nparts, partials: list) -> bool:
    """For every row: combine every reduction's partials, write the outputs at the row's
    index (part 0) and this part's chunk of the row outputs that need every reduction."""
    b = em.b
    plan = row_plan(k, stores)
    ranges = _chunk_ranges(b, plan, part, nparts) if plan.late else None
    rows = Loop(b, 0, plan.rows, name="row")
    outer_index = row_index(em, plan, rows.index)
    em.push()
    _combine_into(em, k.reduces, partials, rows.index)
    if plan.outer_stores:
        with b.if_then(b.icmp_signed("==", part, i64(0))):
            space = Space(plan.outer_shape, outer_index)
            em.push()
            for n, p in plan.outer_stores:
                em.store(n, em.value(n, (), space), p, space)
            em.pop()
    if plan.late:
        write_row(em, plan, ranges, outer_index, plan.late)
    em.pop()
    rows.close()
    return bool(plan.late)


def _chunk_ranges(b: ir.IRBuilder, plan: RowPlan, part, nparts) -> list:
    """[lo, hi) per reduced dim for this part: its contiguous chunk of the split dim (whole
    SUM_BLOCKs when that dim is innermost, so a float32 sum blocks as on one thread), all
    of the other reduced dims."""
    d = split_dim(plan)
    assert d is not None, "only a split row reduction is chunked"
    extent = plan.space[d]
    grain = SUM_BLOCK if d == plan.inner_dims[-1] else 1
    lo, hi = _part_range(b, -(-extent // grain), part, nparts)
    if grain > 1:
        lo, hi = (intrinsic(b, "llvm.smin", [I64], [b.mul(x, i64(grain)), i64(extent)]) for x in (lo, hi))
    ranges = full_ranges(plan)
    ranges[plan.inner_dims.index(d)] = (lo, hi)
    return ranges


def _combine_into(em: Emitter, reduces, partials: list, row) -> None:
    """em.acc[r] for each reduction: its partials of `row`, combined in part order."""
    b = em.b
    for r, var in zip(reduces, partials):
        ty = accumulator_type(r)
        count = b.load(elem_ptr(b, var, 0, I64), typ=I64)
        first = b.load(_partial_slot(b, var, row, i64(0)), typ=ty)
        lp = Loop(b, 1, count, [first], name="part")
        value = b.load(_partial_slot(b, var, row, lp.index), typ=ty)
        (acc,) = lp.close([combine_partials(b, r, lp.carried[0], value)])
        em.acc[id(r)] = finish(b, r, acc)


def drive_reduce_columns(em: Emitter, k: Kernel, stores, part, nparts) -> bool:
    """Reduced axes not innermost: accumulate into the output in memory order, so the inner
    loop runs along contiguous kept elements (a column sum of a matrix, say)."""
    b = em.b
    S, A = k.space, k.axes
    (r,) = k.reduces
    out_shape = tuple(1 if d in A else s for d, s in enumerate(S))
    (node, out), rest = stores[0], stores[1:]
    split = len(S) - 1                      # the innermost dim is kept: threads own column ranges
    parallel = numel(S) >= PARALLEL_MIN_ELEMENTS and S[split] >= 2
    lo_hi = _part_range(b, S[split], part, nparts) if parallel else (i64(0), i64(S[split]))
    init_ranges = [(0, d) for d in out_shape]
    init_ranges[split] = lo_hi
    loops = nest(b, init_ranges)
    init_space = Space(out_shape, [lp.index for lp in loops])
    em.store(node, reduction_identity(r.op, r.dtype), out, init_space)
    close_nest(loops)
    ranges = [(0, d) for d in S]
    ranges[split] = lo_hi
    loops = nest(b, ranges)
    space = Space(tuple(S), [lp.index for lp in loops])
    out_index = [i64(0) if d in A else lp.index for d, lp in enumerate(loops)]
    out_space = Space(out_shape, out_index)
    em.push()
    v = em.value(r.inputs[0], (), space)
    off, _ = em.offset(contiguous(out_shape), out_space)
    store_value(b, out, off, combine(b, r.op, r.dtype, load_value(b, out, off, r.dtype), v), r.dtype)
    em.pop()
    close_nest(loops)
    _copy_out(em, node, out, rest, out_shape, lo_hi, split)
    return parallel


def _copy_out(em, node, src, rest, shape, lo_hi, split):
    """Write a finished output to its other destinations (an output that is also assigned)."""
    if not rest:
        return
    b = em.b
    ranges = [(0, d) for d in shape]
    ranges[split] = lo_hi
    loops = nest(b, ranges)
    space = Space(tuple(shape), [lp.index for lp in loops])
    off, _ = em.offset(contiguous(shape), space)
    v = load_value(b, src, off, node.dtype)
    for _, p in rest:
        store_value(b, p, off, v, node.dtype)
    close_nest(loops)


def emit_matmul_kernel(module: ir.Module, sched: Schedule, k: Kernel, keyed: KeyedKernel, checks: Checks,
                       name: str, shared: list) -> Phase:
    """`name(args, part, nparts)` calls the GEMM generator's function on the kernel's arguments
    (its `table`); the kernel's root, if it is not the matmul itself, becomes the epilogue. The
    micro-kernel's module goes to `shared`."""
    mm = k.anchor
    assert mm is not None, "a matmul kernel is anchored at its matmul"
    (root, out_slot), rest = k.stores[0], k.stores[1:]
    operands = [matmul_read(x, sched.read_slot) for x in mm.inputs]
    argument = lambda x: keyed.argument(sched.slot_of(x))
    batch = numel(mm.shape[:-2])
    m, n = mm.shape[-2], mm.shape[-1]
    spec = gemm.GemmSpec(
        dtype=mm.dtype.short, batch=batch, m=m, n=n, k=mm.inputs[0].shape[-1],
        a=operands[0].strides, b=operands[1].strides, c=(m * n, n, 1),
        a_slot=argument(mm.inputs[0]), b_slot=argument(mm.inputs[1]), c_slot=keyed.argument(out_slot),
        a_offset=operands[0].offset, b_offset=operands[1].offset)
    batch_shape = tuple(mm.shape[:-2])

    def epilogue(eb, args, batch_idx, row, col, acc):
        pointers = {}
        # in the key's order (the fuser's may differ between kernels of one key); keyed by the
        # load only: a materialized view (the matmul's reshaped operand, say) shares its
        # movement base with views the epilogue reads from the base's own buffer, so keying
        # by the base would mix the two up
        for x in sorted(k.loads, key=lambda x: keyed.number[id(x)]):
            pointers[id(x)] = eb.load(elem_ptr(eb, args, argument(x), PTR), typ=PTR)
        em = Emitter(eb, k, pointers, eb.load(elem_ptr(eb, args, 0, PTR), typ=PTR), checks)
        em.acc[id(mm)] = acc
        index = em.unravel(batch_idx, batch_shape) if batch_shape else []
        return em.value(root, (), Space(tuple(mm.shape), index + [row, col]))

    if rest:
        raise NotImplementedError("a matmul kernel writes one buffer")  # fusion keeps it so
    parallel = mm.dtype.is_floating_point and batch * m * n * spec.k >= PARALLEL_MIN_ELEMENTS * 16
    product = gemm.define_gemm(module, f"{name}.gemm", spec, epilogue if root is not mm else None,
                               share=share_into(shared))
    return Phase(_export(module, name, product, parallel).name, parallel)


def drive_scatter(em: Emitter, k: Kernel, stores, part, nparts) -> bool:
    """out = base; then out[index[i] along axis] += src[i] for every i, on one thread."""
    b = em.b
    sc = k.anchor
    assert sc is not None, "a scatter kernel is anchored at its scatter_add"
    base, index, src = sc.inputs
    axis = sc.attrs["axis"]
    (node, out), rest = stores[0], stores[1:]
    loops = nest(b, [(0, d) for d in sc.shape])
    space = Space(tuple(sc.shape), [lp.index for lp in loops])
    em.push()
    em.store(node, em.value(base, (), space), out, space)
    em.pop()
    close_nest(loops)
    loops = nest(b, [(0, d) for d in index.shape])
    space = Space(tuple(index.shape), [lp.index for lp in loops])
    em.push()
    ix = em.cast_value(em.value(index, (), space), index.dtype, dtypes.int64)
    v = em.value(src, (), space)
    size = sc.shape[axis]
    ok = b.and_(b.icmp_signed(">=", ix, i64(0)), b.icmp_signed("<", ix, i64(size)))
    em.check(ok, 1, f"scatter_add: index out of range for dimension {axis} of size {size}", sc)
    target = list(space.index)
    target[axis] = b.select(ok, ix, i64(0))
    off, _ = em.view_offset(contiguous(sc.shape), target)
    with b.if_then(ok):
        store_value(b, out, off, combine(b, "sum", sc.dtype, load_value(b, out, off, sc.dtype), v), sc.dtype)
    em.pop()
    close_nest(loops)
    _copy_out(em, node, out, rest, tuple(sc.shape), (i64(0), i64(sc.shape[0] if sc.shape else 1)), 0)
    return False


# ---------------------------------------------------------------- host calls

def emit_host_all_reduce(module: ir.Module, sched: Schedule, k: Kernel, keyed: KeyedKernel, checks: Checks,
                         name: str) -> Phase:
    """`name(args, part, nparts)`: one call through the host-call pointer after the buffers
    in `args` (module doc) from the operand's buffer into the first destination, then copies
    to any further destination (an output that is also assigned). A null pointer or a
    non-zero result records the kernel's check (ERR_HOST) and writes nothing more."""
    node = k.anchor
    assert node is not None and node.op == "all_reduce", "a collective kernel is anchored at its all_reduce"
    (x,) = node.inputs
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, I64, I64]), name)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    args = fn.args[0]
    argument = lambda position: b.load(elem_ptr(b, args, position, PTR), typ=PTR)
    count, offset = numel(x.shape), 0        # read from the operand's own buffer, or ...
    if id(x) not in sched.read_slot:         # ... in place: a contiguous run of its movement base's
        view = host_view(x)
        assert view is not None, "fusion gives a collective's operand a buffer unless it is a contiguous view"
        offset = view[0]
    src = argument(keyed.argument(sched.slot_of(x)))
    if offset:
        src = elem_ptr(b, src, offset * x.dtype.itemsize, I8)
    (_, out_slot), rest = k.stores[0], k.stores[1:]
    dst = argument(keyed.argument(out_slot))
    err = argument(0)
    check_id = checks.add(ERR_HOST, f"{node.op}({fmt_type(x.shape, x.dtype)}, reduce={node.attrs['reduce']!r}, "
                                    f"group={node.attrs['group']}) failed in its host call", node)
    fnty = ir.FunctionType(I64, [PTR, PTR, I64, I32, I32, I32])
    host_fn = b.load(elem_ptr(b, args, len(keyed.slots) + 1, PTR), typ=fnty.as_pointer(), name=HOST_ALL_REDUCE_GLOBAL)
    call, fail, done = (fn.append_basic_block(name) for name in ("call", "fail", "done"))
    b.cbranch(b.icmp_unsigned("==", b.ptrtoint(host_fn, I64), i64(0)), fail, call)
    b.position_at_end(call)
    result = b.call(host_fn, [src, dst, i64(count), ir.Constant(I32, HOST_DTYPES.index(x.dtype.name)),
                              ir.Constant(I32, ALL_REDUCE_OPS.index(node.attrs["reduce"])),
                              ir.Constant(I32, node.attrs["group"])])
    b.cbranch(b.icmp_signed("!=", result, i64(0)), fail, done)
    b.position_at_end(fail)
    b.store(i64(ERR_HOST), err)
    b.store(i64(check_id), elem_ptr(b, err, 1, I64))
    b.ret_void()
    b.position_at_end(done)
    if rest:
        memcpy = _memcpy(module)
        nbytes = i64(numel(node.shape) * node.dtype.itemsize)
        for _, slot in rest:
            b.call(memcpy, [argument(keyed.argument(slot)), dst, nbytes, ir.Constant(I1, 0)])
    b.ret_void()
    return Phase(fn.name, False)


def _memcpy(module: ir.Module) -> ir.Function:
    name = "llvm.memcpy.p0.p0.i64"
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(VOID, [PTR, PTR, I64, I1]), name)
    return fn
