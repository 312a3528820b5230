"""The values of a kernel's nodes as LLVM IR, shared by the CPU and GPU backends.

A backend builds the loops (or thread indexing) of a kernel and gives the Emitter the current
index of each iteration space; the Emitter then produces any node's value there:

- `Space`: an iteration space: the root shape its views are written against, the order in
  which loops visit its dims, and the current index values;
- `value(node, path, space)`: the node evaluated at the space's index, where `path` is the
  chain of movement ops between the kernel's root and the node. Movement ops never compute:
  they become the path, and a load applies the path's views (view.py) to find its address;
- values are memoized per loop scope (`push`/`pop`), so a node used twice in one loop body is
  computed once, and values of an outer scope are reused inside inner loops.

Reductions are computed by the backend's loop drivers; their finished values are handed to
the Emitter in `acc`, keyed by node, as are matmul accumulators for epilogues.

Each primitive's lowering is registered here against its declaration (ir/registry.py `CPU`,
at the end of this module): an `ElementwiseRule` for elementwise ops, an `IndexRule` for
sources, movement and gather (its value at an index, and the views it reads), a
`ReductionRule` for reductions (how the loop drivers combine two values; `combine` and
`reduction_identity` look them up), `planned(...)` for the other kinds the loop drivers
generate. The Emitter looks a node's rule up in its target's table (`RULES`; the GPU's is `PTX`).
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from ..ir import Node, dtypes
from ..ir.ops import OPS
from ..ir.registry import CPU, ElementwiseRule, IndexRule, Marker, ReductionRule, planned
from ..passes.fuse import Kernel
from ..view import ViewStack, row_major_strides
from . import mathlib
from .llvm_util import (
    F32,
    F64,
    I1,
    I32,
    I64,
    binary_helper,
    const,
    elem_ptr,
    i64,
    intrinsic,
    load_value,
    reg_type,
    round_to,
    store_value,
)

ERR_INDEX, ERR_ZERO_DIV, ERR_NEG_POW = 1, 2, 3
ERR_HOST = 4        # a host call (a collective) failed: runtime/hostcalls.py holds why
MAX_INLINE_MATH = 16    # a kernel evaluating more math functions calls them out of line
VIEW_OPS = ("reshape", "permute", "expand", "slice", "window")   # values that are their input's, moved


class Checks(list):
    """The runtime checks of a program (or of one kernel): (error code, message, source line)
    per check id, the id being the position; `nodes[i]` is the node that check i tests."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[Node] = []

    def add(self, code: int, message: str, node: Node) -> int:
        """Record a check on `node`; its id."""
        self.append((code, message, node.loc))
        self.nodes.append(node)
        return len(self) - 1


@dataclass
class Space:
    shape: tuple            # the shape views are written against (natural dim order)
    index: list             # current index value per dim of `shape` (i64), in natural order


class VirtualPad:
    """Concat input i seen as that input padded to the concat's shape (a path element)."""
    op = "pad"

    def __init__(self, concat: Node, i: int):
        axis = concat.attrs["axis"]
        before = sum(x.shape[axis] for x in concat.inputs[:i])
        after = concat.shape[axis] - before - concat.inputs[i].shape[axis]
        rank = len(concat.shape)
        self.attrs = {"low": tuple(before if d == axis else 0 for d in range(rank)),
                      "high": tuple(after if d == axis else 0 for d in range(rank))}


def out_of_line_math(kernel: Kernel) -> bool:
    """Whether `kernel` calls its math functions (exp, tanh, ...) out of line (mathlib's
    vector variants keep its loop vectorized): an elementwise kernel with more than
    MAX_INLINE_MATH of them. LLVM optimises every inlined copy, some 50 instructions, anew: a
    fused chain of a thousand tanh would take it half a minute, out of line a fraction of a
    second. (Not in a reduction: the vectorizer would interleave its reassociable sum
    differently around calls, and the sum's last bits would change.)"""
    if kernel.kind != "elementwise":
        return False
    count = sum(1 for n in kernel.nodes if n.op in mathlib.MATH_FUNCTIONS and n.dtype.is_floating_point)
    return count > MAX_INLINE_MATH


def path_view(node_shape, path) -> ViewStack:
    """Views from the root's index to the node's row-major position, through `path`."""
    st = ViewStack.contiguous(node_shape)
    for m in reversed(path):
        st = st.apply(m.op, m.attrs)
    return st


class Emitter:
    RULES = CPU          # the lowering of each primitive for this target

    def __init__(self, b: ir.IRBuilder, kernel: Kernel, pointers: dict, error_ptr, checks: Checks):
        self.b = b
        self.kernel = kernel
        self.pointers = pointers          # node id -> pointer to its buffer
        self.error_ptr = error_ptr
        self.checks = checks              # the program's (GPU) or the kernel's (CPU) checks
        self.loaded = {id(x) for x in kernel.loads}
        self.acc: dict[int, ir.Value] = {}
        self.scopes: list[dict] = [{}]
        self.pad_cache: dict[tuple, VirtualPad] = {}
        self.out_of_line_math = out_of_line_math(kernel)

    # ------------------------------------------------------------ scopes

    def push(self):
        self.scopes.append({})

    def pop(self):
        self.scopes.pop()

    # ------------------------------------------------------------ index arithmetic

    def offset(self, st: ViewStack, space: Space, index=None):
        """(linear offset, validity or None) of `st` (written against space.shape) at the index."""
        st = st.reshape(space.shape) if tuple(st.shape) != tuple(space.shape) else st
        return self.view_offset(st, index if index is not None else space.index)

    def view_offset(self, st: ViewStack, index):
        b = self.b
        valid = None
        idx = list(index)
        for k in range(len(st.views) - 1, -1, -1):
            v = st.views[k]
            if v.mask is not None:
                for i, (lo, hi), d in zip(idx, v.mask, v.shape):
                    if (lo, hi) == (0, d):
                        continue
                    ok = b.and_(b.icmp_signed(">=", i, i64(lo)), b.icmp_signed("<", i, i64(hi)))
                    valid = ok if valid is None else b.and_(valid, ok)
            off = i64(v.offset)
            for i, stride in zip(idx, v.strides):
                if stride:
                    off = b.add(off, b.mul(i, i64(stride)) if stride != 1 else i)
            if k:
                idx = self.unravel(off, st.views[k - 1].shape)
        return off, valid

    def unravel(self, lin, shape) -> list:
        b, out = self.b, []
        for d, stride in zip(shape, row_major_strides(shape)):
            if d == 1:
                out.append(i64(0))
            else:
                q = b.udiv(lin, i64(stride)) if stride != 1 else lin
                out.append(b.urem(q, i64(d)) if stride * d != _numel(shape) else q)
        return out

    def invariant(self, n: Node) -> bool:
        """Whether `n` (a math function's result) is one value however many elements the
        kernel's loop has: a scalar in an elementwise kernel over several elements, which
        calls math out of line (mathlib's module doc). Not in a reduction, as for
        out_of_line_math."""
        return self.kernel.kind == "elementwise" and _numel(n.shape) == 1 and _numel(self.kernel.space) > 1

    # ------------------------------------------------------------ values

    def value(self, n: Node, path: tuple, space: Space) -> ir.Value:
        key = (id(n), tuple(id(m) for m in path), id(space))
        v = self._cached(key)
        if v is None:
            self._inputs_first(n, path, space)
            v = self.scopes[-1][key] = self._compute(n, path, space)
        return v

    def provide(self, n: Node, path: tuple, space: Space, v: ir.Value) -> None:
        """Make `v` the value of `n` at `path` in `space` for the current scope (a staged
        kernel's value from an earlier stage, codegen/staging.py)."""
        self.scopes[-1][(id(n), tuple(id(m) for m in path), id(space))] = v

    def _cached(self, key: tuple) -> ir.Value | None:
        for scope in reversed(self.scopes):
            if key in scope:
                return scope[key]
        return None

    def _inputs_first(self, root: Node, root_path: tuple, space: Space) -> None:
        """Compute the values `root` needs, deepest first, with a stack instead of recursion:
        a fused chain may be thousands of ops deep, and `_compute` then finds its inputs in
        the scope (no Python recursion limit to raise, no process-wide state to touch)."""
        stack: list[tuple[Node, tuple, bool]] = [(root, root_path, False)]
        while stack:
            n, path, inputs_done = stack.pop()
            key = (id(n), tuple(id(m) for m in path), id(space))
            if (n is root and path is root_path and inputs_done) or self._cached(key) is not None:
                continue
            if inputs_done:
                self.scopes[-1][key] = self._compute(n, path, space)
                continue
            stack.append((n, path, True))
            stack.extend((x, p, False) for x, p in reversed(self.value_inputs(n, path)))

    def value_inputs(self, n: Node, path: tuple) -> list[tuple[Node, tuple]]:
        """The (input, path) values that `_compute` asks for when it computes `n` at `path`."""
        if id(n) in self.acc or id(n) in self.loaded or not n.inputs:
            return []
        rule = self.RULES[n.op]
        if isinstance(rule, IndexRule):
            needs: list[tuple[Node, tuple]] = []
            rule.views(self, n, path, lambda st: None, lambda x, p: needs.append((x, p)))
            return needs
        return [(x, path) for x in n.inputs] if isinstance(rule, ElementwiseRule) else []

    def _compute(self, n: Node, path: tuple, space: Space) -> ir.Value:
        if id(n) in self.acc:
            return self.acc[id(n)]
        if id(n) in self.loaded:
            return self.load(n, path, space)
        rule = self.RULES[n.op]
        if isinstance(rule, IndexRule):
            return rule.fn(self, n, path, space)
        if not isinstance(rule, ElementwiseRule):
            what = rule.what if isinstance(rule, Marker) else "computed by the loop drivers"
            raise NotImplementedError(f"{n.op} has no value at an index ({what})")
        args = [self.value(x, path, space) for x in n.inputs]
        return self.elementwise(n, args)

    def pad(self, n: Node, path: tuple, space: Space) -> ir.Value:
        v = self.value(n.inputs[0], path + (n,), space)
        off, valid = self.offset(path_view(n.inputs[0].shape, path + (n,)), space)
        return self.b.select(valid, v, const(n.dtype, 0)) if valid is not None else v

    def load(self, n: Node, path: tuple, space: Space) -> ir.Value:
        b = self.b
        off, valid = self.offset(path_view(n.shape, path), space)
        if valid is not None:
            off = b.select(valid, off, i64(0))
        v = load_value(b, self.pointers[id(n)], off, n.dtype)
        return b.select(valid, v, const(n.dtype, 0)) if valid is not None else v

    def store(self, n: Node, v: ir.Value, ptr, space: Space, index=None):
        off, _ = self.offset(ViewStack.contiguous(n.shape), space, index)
        store_value(self.b, ptr, off, v, n.dtype)

    def linear_index(self, n: Node, path: tuple, space: Space):
        """The row-major position of `n`'s element that the current iteration needs."""
        off, _ = self.offset(path_view(n.shape, path), space)
        return off

    def iota(self, n: Node, path: tuple, space: Space) -> ir.Value:
        axis = n.attrs["axis"]
        coord = self.unravel(self.linear_index(n, path, space), n.shape)[axis]
        return self.cast_value(coord, dtypes.int64, n.dtype)

    def concat(self, n: Node, path: tuple, space: Space) -> ir.Value:
        """Each input where its padded view is valid; inputs the path never reaches are skipped
        (a slice of a concat chain reads one input of each concat, not all)."""
        result = const(n.dtype, 0)
        for i, x in enumerate(n.inputs):
            pad = self.pad_cache.setdefault((id(n), i), VirtualPad(n, i))
            st = path_view(x.shape, path + (pad,))
            if st.is_empty:
                continue
            v = self.value(x, path + (pad,), space)
            _, valid = self.offset(st, space)
            result = self.b.select(valid, v, result) if valid is not None else v
        return result

    def check(self, ok: ir.Value, code: int, message: str, node: Node) -> None:
        """Record a failed runtime check on `node` in the error word (first writer wins, no
        branch out)."""
        b = self.b
        check_id = self.checks.add(code, message, node)
        with b.if_then(b.not_(ok), likely=False):
            self.record_failure(code, check_id)

    def record_failure(self, code: int, check_id: int) -> None:
        """Write (code, check id) into the error word. A target whose threads race to write
        it overrides this (the GPU keeps the first pair with a compare-and-swap)."""
        self.b.store(i64(code), self.error_ptr)
        self.b.store(i64(check_id), elem_ptr(self.b, self.error_ptr, 1, I64))

    def gather(self, n: Node, path: tuple, space: Space) -> ir.Value:
        b = self.b
        src, index = n.inputs
        axis = n.attrs["axis"]
        out_idx = self.unravel(self.linear_index(n, path, space), n.shape)
        ix = self.cast_value(self.value(index, path, space), index.dtype, dtypes.int64)
        size = src.shape[axis]
        ok = b.and_(b.icmp_signed(">=", ix, i64(0)), b.icmp_signed("<", ix, i64(size)))
        self.check(ok, ERR_INDEX, f"gather: index out of range for dimension {axis} of size {size}", n)
        out_idx[axis] = b.select(ok, ix, i64(0))
        return self.load_at(src, out_idx)

    def load_at(self, x: Node, index: list) -> ir.Value:
        """`x` (a view of a buffer) at an explicit index vector."""
        base, chain = x, []
        while id(base) not in self.pointers:        # down the view chain to the nearest buffer
            chain.append(base)
            base = base.inputs[0]
        off, valid = self.view_offset(path_view(base.shape, tuple(chain)), index)
        if valid is not None:
            off = self.b.select(valid, off, i64(0))
        v = load_value(self.b, self.pointers[id(base)], off, base.dtype)
        return self.b.select(valid, v, const(x.dtype, 0)) if valid is not None else v

    def rand(self, n: Node, path: tuple, space: Space) -> ir.Value:
        """Philox4x32-10 of (seed, offset + position): uniform in [0, 1), same on every target."""
        b = self.b
        seed = self.load_at(n.inputs[0], [i64(0)])
        base = self.load_at(n.inputs[0], [i64(1)])
        counter = b.add(base, self.linear_index(n, path, space))
        words = philox4x32(b, counter, seed)
        if reg_type(n.dtype) is F32:    # as many bits as the dtype's significand: exact, below 1
            digits = {dtypes.float32: 24, dtypes.float16: 11, dtypes.bfloat16: 8}[n.dtype]
            bits = b.lshr(words[0], ir.Constant(I32, 32 - digits))
            return b.fmul(b.uitofp(bits, F32), ir.Constant(F32, 2.0 ** -digits))
        hi = b.zext(words[0], I64)
        lo = b.zext(words[1], I64)
        bits = b.lshr(b.or_(b.shl(hi, i64(32)), lo), i64(11))
        return b.fmul(b.uitofp(bits, F64), ir.Constant(F64, 2.0 ** -53))

    # ------------------------------------------------------------ scalar ops

    def elementwise(self, n: Node, args: list) -> ir.Value:
        return self.RULES[n.op].fn(self, n, args)

    def int_div(self, n: Node, args: list) -> ir.Value:
        """Integer division truncating toward zero, checked for a zero divisor."""
        b, dt = self.b, n.dtype
        x, y = args
        zero = const(dt, 0)
        ok = b.icmp_signed("!=", y, zero)
        self.check(ok, ERR_ZERO_DIV, "ZeroDivisionError: integer division by zero", n)
        safe = b.select(ok, y, const(dt, 1))
        if not dt.is_signed:
            return b.udiv(x, safe)
        minus_one = b.icmp_signed("==", safe, const(dt, -1))
        return b.select(minus_one, b.sub(zero, x), b.sdiv(x, b.select(minus_one, const(dt, 1), safe)))

    def int_pow(self, n: Node, args: list) -> ir.Value:
        """Integer power, checked for a negative exponent."""
        b, dt = self.b, n.dtype
        x, y = args
        if dt.is_signed:
            ok = b.icmp_signed(">=", y, const(dt, 0))
            self.check(ok, ERR_NEG_POW, "Integers to negative integer powers are not allowed.", n)
        return b.call(int_pow_function(b.module, reg_type(dt)), [x, y])

    def cast_value(self, v: ir.Value, src, dst) -> ir.Value:
        return cast(self.b, v, src, dst)


# ---------------------------------------------------------------- scalar helpers

def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def cast(b: ir.IRBuilder, v: ir.Value, src, dst) -> ir.Value:
    """`v` of dtype `src` as dtype `dst`. A 16-bit float computed in the kernel is a float32 not
    yet rounded (it rounds when stored): a cast takes the value it stands for, rounded first
    (LLVM folds the second rounding of a loaded value away)."""
    if src is dst:
        return v
    if src.is_storage_float:
        v = round_to(b, v, src)
    to = reg_type(dst)
    if dst.is_bool:
        if src.is_floating_point:
            return b.fcmp_unordered("!=", v, ir.Constant(v.type, 0.0))
        return b.icmp_unsigned("!=", v, ir.Constant(v.type, 0))
    if src.is_floating_point:
        if dst.is_floating_point:       # 16-bit floats: float32 registers rounded to dst
            if v.type != to:
                v = b.fpext(v, to) if isinstance(to, ir.DoubleType) else b.fptrunc(v, to)
            return round_to(b, v, dst)
        wide = to if dst.is_signed else I64
        r = float_to_signed(b, v, wide)
        return r if wide is to else b.trunc(r, to)
    if dst.is_floating_point:
        return round_to(b, b.sitofp(v, to) if src.is_signed else b.uitofp(v, to), dst)
    w_src, w_dst = v.type.width, to.width
    if w_dst == w_src:
        return v
    if w_dst < w_src:
        return b.trunc(v, to)
    return b.sext(v, to) if src.is_signed else b.zext(v, to)


def float_to_signed(b: ir.IRBuilder, v: ir.Value, to: ir.IntType) -> ir.Value:
    """float -> signed int as PyTorch on x86 (cvttss2si): truncation toward zero, and the
    minimum integer for NaN, infinities and values out of range. A select on the range, so
    no input reaches fptosi's undefined cases; unsigned targets truncate the int64 result."""
    lo, hi = -2.0 ** (to.width - 1), 2.0 ** (to.width - 1)
    in_range = b.and_(b.fcmp_ordered(">", v, ir.Constant(v.type, lo - 1.0)),
                      b.fcmp_ordered("<", v, ir.Constant(v.type, hi)))
    return b.select(in_range, b.fptosi(v, to), ir.Constant(to, int(lo)))


def compare(b: ir.IRBuilder, op: str, x, y, dt) -> ir.Value:
    sym = {"lt": "<", "le": "<=", "eq": "==", "ne": "!="}[op]
    if dt.is_floating_point:
        return b.fcmp_unordered(sym, x, y) if op == "ne" else b.fcmp_ordered(sym, x, y)
    if dt.is_signed:
        return b.icmp_signed(sym, x, y)
    return b.icmp_unsigned(sym, x, y)


def int_pow_function(module: ir.Module, ty: ir.IntType) -> ir.Function:
    """x**y for integers by repeated squaring (y >= 0), defined once per module and type."""
    fn, new = binary_helper(module, f"fg.ipow.i{ty.width}", ty)
    if not new:
        return fn
    x, y = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    head, body, done = (fn.append_basic_block(s) for s in ("head", "body", "done"))
    entry = b.block
    y_clamped = b.select(b.icmp_signed("<", y, ir.Constant(ty, 0)), ir.Constant(ty, 0), y)
    b.branch(head)
    b.position_at_end(head)
    acc, base, exp = b.phi(ty), b.phi(ty), b.phi(ty)
    acc.add_incoming(ir.Constant(ty, 1), entry)
    base.add_incoming(x, entry)
    exp.add_incoming(y_clamped, entry)
    b.cbranch(b.icmp_signed(">", exp, ir.Constant(ty, 0)), body, done)
    b.position_at_end(body)
    odd = b.trunc(exp, I1)
    acc.add_incoming(b.select(odd, b.mul(acc, base), acc), body)
    base.add_incoming(b.mul(base, base), body)
    exp.add_incoming(b.ashr(exp, ir.Constant(ty, 1)), body)
    b.branch(head)
    b.position_at_end(done)
    b.ret(acc)
    return fn


def reduction_identity(op: str, dt) -> ir.Constant:
    """The value reduction `op` starts from in dtype `dt`: its declared identity."""
    identity = OPS[op].identity
    if identity is None:
        raise KeyError(f"{op!r} declares no reduction identity")
    return const(dt, identity(dt))


def combine(b: ir.IRBuilder, op: str, dt, acc, v):
    """acc (op) v: the reduction's registered rule (with reassociation allowed for floats, so
    reductions vectorize). The GPU drivers combine with it too (PTX registers the same rule)."""
    rule = CPU[op]
    if not isinstance(rule, ReductionRule):
        raise KeyError(f"{op!r} has no reduction rule")
    return rule.combine(b, dt, acc, v)


_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)


def philox4x32(b: ir.IRBuilder, counter: ir.Value, seed: ir.Value) -> list:
    """Ten Philox rounds on counter (c0, c1) = the 64-bit counter, c2 = c3 = 0, key = seed."""
    lo32 = lambda v: b.trunc(v, I32)
    hi32 = lambda v: b.trunc(b.lshr(v, i64(32)), I32)
    c = [lo32(counter), hi32(counter), ir.Constant(I32, 0), ir.Constant(I32, 0)]
    k = [lo32(seed), hi32(seed)]
    for r in range(10):
        p0 = b.mul(b.zext(c[0], I64), i64(_PHILOX_M[0]))
        p1 = b.mul(b.zext(c[2], I64), i64(_PHILOX_M[1]))
        c = [b.xor(b.xor(hi32(p1), c[1]), k[0]), lo32(p1), b.xor(b.xor(hi32(p0), c[3]), k[1]), lo32(p0)]
        if r < 9:
            k = [b.add(k[0], ir.Constant(I32, _PHILOX_W[0])), b.add(k[1], ir.Constant(I32, _PHILOX_W[1]))]
    return c


# ---------------------------------------------------------------- lowerings, one per primitive

def cpu_elementwise(*ops: str):
    """Register `fn(emitter, node, args)` as the CPU lowering of each elementwise op in `ops`."""
    def deco(fn):
        for op in ops:
            CPU.register(op, ElementwiseRule(fn))
        return fn
    return deco


def cpu_at_index(*ops: str, views):
    """Register `fn(emitter, node, path, space)` as the CPU lowering of each op in `ops`;
    `views(emitter, node, path, add_view, visit)` tells the kernel planner what it indexes
    (see IndexRule): `add_view(viewstack)` for each view it reads memory or masks through,
    `visit(input, path)` for each input value it computes, in the order `fn` does."""
    def deco(fn):
        for op in ops:
            CPU.register(op, IndexRule(fn, views))
        return fn
    return deco


def cpu_reduction(*ops: str, widen_float32: bool = False):
    """Register `fn(builder, dtype, acc, v)` as the combine rule of each reduction in `ops`."""
    def deco(fn):
        for op in ops:
            CPU.register(op, ReductionRule(fn, widen_float32))
        return fn
    return deco


def _method(name: str):
    """The Emitter's method `name` as an index rule (looked up on the emitter, so a target's
    Emitter subclass may override it)."""
    return lambda em, n, path, space: getattr(em, name)(n, path, space)


def _own_view(em, n, path, add_view, visit):
    """Reads memory (or its index) through the path: loads, iota, rand."""
    add_view(path_view(n.shape, path))


def _no_views(em, n, path, add_view, visit):
    """A constant: no memory, no index."""


def _gather_views(em, n, path, add_view, visit):
    add_view(path_view(n.shape, path))
    visit(n.inputs[1], path)              # the index, at the output's position


def _pad_views(em, n, path, add_view, visit):
    add_view(path_view(n.inputs[0].shape, path + (n,)))     # the mask
    visit(n.inputs[0], path + (n,))


def _concat_views(em, n, path, add_view, visit):
    for i, x in enumerate(n.inputs):
        pad = em.pad_cache.setdefault((id(n), i), VirtualPad(n, i))
        st = path_view(x.shape, path + (pad,))
        if not st.is_empty:        # Emitter.concat skips inputs it never reads
            add_view(st)
            visit(x, path + (pad,))


def _view_views(em, n, path, add_view, visit):
    for x in n.inputs:
        visit(x, path + (n,))


cpu_at_index("input", "param", views=_own_view)(_method("load"))
cpu_at_index("const", views=_no_views)(lambda em, n, path, space: const(n.dtype, n.attrs["value"]))
cpu_at_index("iota", views=_own_view)(_method("iota"))
cpu_at_index("rand", views=_own_view)(_method("rand"))
cpu_at_index("pad", views=_pad_views)(_method("pad"))
cpu_at_index("concat", views=_concat_views)(_method("concat"))
cpu_at_index("gather", views=_gather_views)(_method("gather"))


@cpu_at_index(*VIEW_OPS, views=_view_views)
def _movement(em, n, path, space):
    return em.value(n.inputs[0], path + (n,), space)     # a view: the path, no code


# reductions: the loop drivers (cpu.py, row_loops.py; ptx.py, ptx_rows.py, nvptx.py on the GPU)
# start from the declared identity and fold values in with these; fast-math flags on floats
# let the vectorizer reassociate
_REASSOC = ("reassoc", "nsz")


@cpu_reduction("sum", widen_float32=True)       # float32 sums accumulate in float64
def _sum(b, dt, acc, v):
    if dt.is_floating_point:
        return b.fadd(acc, v, flags=_REASSOC)
    return b.or_(acc, v) if dt.is_bool else b.add(acc, v)


@cpu_reduction("prod")
def _prod(b, dt, acc, v):
    if dt.is_floating_point:
        return b.fmul(acc, v, flags=_REASSOC)
    return b.and_(acc, v) if dt.is_bool else b.mul(acc, v)


def _extreme_combine(fname: str, bool_fn: str, signed: str, unsigned: str):
    def combine(b, dt, acc, v):
        if dt.is_floating_point:
            return intrinsic(b, fname, [acc.type], [acc, v])
        if dt.is_bool:
            return getattr(b, bool_fn)(acc, v)
        return intrinsic(b, signed if dt.is_signed else unsigned, [acc.type], [acc, v])
    return combine


cpu_reduction("reduce_max")(_extreme_combine("llvm.maximum", "or_", "llvm.smax", "llvm.umax"))
cpu_reduction("reduce_min")(_extreme_combine("llvm.minimum", "and_", "llvm.smin", "llvm.umin"))

CPU.register("scatter_add", planned("scatter loop (cpu.py)"))
CPU.register("matmul", planned("GEMM kernels (gemm.py) with elementwise epilogues"))
CPU.register("all_reduce", planned("a call through the fg_host_all_reduce pointer (cpu.py)"))


def _float(n: Node) -> bool:
    return n.dtype.is_floating_point


def _intrinsic(name: str):
    """An LLVM intrinsic on the float operand (sqrt, fabs, floor, ...)."""
    return lambda em, n, args: intrinsic(em.b, name, [args[0].type], args)


def _math(em, n, args):
    return mathlib.emit_math(em.b, n.op, *args, out_of_line=em.out_of_line_math,     # no libm
                             invariant=em.invariant(n))


cpu_elementwise("exp", "log", "sin", "cos", "tanh", "erf")(_math)
cpu_elementwise("sqrt")(_intrinsic("llvm.sqrt"))
cpu_elementwise("floor")(_intrinsic("llvm.floor"))
cpu_elementwise("round")(_intrinsic("llvm.roundeven"))


@cpu_elementwise("recip")
def _recip(em, n, args):
    return em.b.fdiv(ir.Constant(args[0].type, 1.0), args[0])


@cpu_elementwise("neg")
def _neg(em, n, args):
    b = em.b
    return b.fneg(args[0]) if _float(n) else b.sub(ir.Constant(args[0].type, 0), args[0])


@cpu_elementwise("abs")
def _abs(em, n, args):
    b, dt, ty = em.b, n.dtype, args[0].type
    if _float(n):
        return intrinsic(b, "llvm.fabs", [ty], args)
    return intrinsic(b, "llvm.abs", [ty], [args[0], ir.Constant(I1, 0)], ret=ty) if dt.is_signed else args[0]


@cpu_elementwise("add")
def _add(em, n, args):      # PyTorch: + on bools is "or"
    b = em.b
    return b.fadd(*args) if _float(n) else b.or_(*args) if n.dtype.is_bool else b.add(*args)


@cpu_elementwise("sub")
def _sub(em, n, args):
    return em.b.fsub(*args) if _float(n) else em.b.sub(*args)


@cpu_elementwise("mul")
def _mul(em, n, args):      # * on bools is "and"
    b = em.b
    return b.fmul(*args) if _float(n) else b.and_(*args) if n.dtype.is_bool else b.mul(*args)


@cpu_elementwise("div")
def _div(em, n, args):
    return em.b.fdiv(*args) if _float(n) else em.int_div(n, args)


@cpu_elementwise("pow")
def _pow(em, n, args):
    if not _float(n):
        return em.int_pow(n, args)
    return mathlib.emit_math(em.b, "pow", *args, out_of_line=em.out_of_line_math, invariant=em.invariant(n))


@cpu_elementwise("fmod")
def _fmod(em, n, args):
    return em.b.frem(*args)


def _extreme(fname: str, bool_fn: str, signed: str, unsigned: str):
    def lower(em, n, args):
        b, dt = em.b, n.dtype
        if _float(n):
            return intrinsic(b, fname, [args[0].type], args)
        if dt.is_bool:
            return getattr(b, bool_fn)(*args)
        return intrinsic(b, signed if dt.is_signed else unsigned, [args[0].type], args)
    return lower


cpu_elementwise("max")(_extreme("llvm.maximum", "or_", "llvm.smax", "llvm.umax"))
cpu_elementwise("min")(_extreme("llvm.minimum", "and_", "llvm.smin", "llvm.umin"))


@cpu_elementwise("lt", "le", "eq", "ne")
def _compare(em, n, args):
    return compare(em.b, n.op, args[0], args[1], n.inputs[0].dtype)


@cpu_elementwise("where")
def _where(em, n, args):
    return em.b.select(*args)


@cpu_elementwise("cast")
def _cast(em, n, args):
    return em.cast_value(args[0], n.inputs[0].dtype, n.dtype)
