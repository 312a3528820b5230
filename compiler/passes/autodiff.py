"""The VJP library: one vector-Jacobian product rule per primitive, and reverse mode on IR.

Not a pass of the compile pipeline (compiler/pipeline.py never runs it): gradients are
built before compilation, as ordinary IR nodes, by whoever asks for them. What is here:

- the VJP rules, registered against the op declarations (the `VJP` table of ir/registry.py;
  sources and comparisons are NOT_DIFFERENTIABLE). A rule receives the primitive's
  attributes, input values, output value and the output's cotangent, and returns one
  cotangent per input (None where none is defined). It builds them only with
  `emit(op, *values, **attrs)`, so the same rules serve every caller. Each registration says
  whether the rule reads values (`_values`) or only shapes (`_shapes`); the registry collects
  the former in `NEEDS_VALUES` (PyTorch's saved tensors; grad_fn.py frees them after backward);
- `vjp(emit, op, ...)`: the rule of one primitive applied, cotangents masked by `needs`;
- `gradients(outputs, cotangents, wrt)`: reverse mode over a DAG of IR nodes;
- `differentiate(graph, output, wrt)`: Graph -> Graph, the graph with d<output>/d<input>
  outputs added (for graphs built directly in IR, e.g. tests and tools);
- helpers shared with the frontend's in-place ops (`unbroadcast`, `unslice`, ...).

Who uses it: the frontend's backward() and autograd.grad() (frontend/autograd/engine.py)
walk PyTorch-style grad_fn records over the pending lazy nodes and call `vjp` with an
`emit` that makes IR nodes (`node_emit`) or, for `create_graph=True`, tensors that record
their own history, so gradients of gradients come from the same rules. Under
`fusegrad.compile` the same backward() runs inside the trace, so the traced graph already
holds the gradient nodes when it reaches the pipeline. Values only need `.shape` and
`.dtype`. Gradient nodes are ordinary IR: they fuse and compile with the forward pass, and
can be differentiated again.
"""
from __future__ import annotations

import math
from typing import Callable

from ..ir import Graph, make, topo_order
from ..ir.ops import OPS
from ..ir.registry import NOT_DIFFERENTIABLE, VJP, VjpRule

Emit = Callable[..., object]


# ---------------------------------------------------------------- helpers on values

def const(emit: Emit, value, like, shape=None):
    return emit("const", value=value, shape=tuple(like.shape if shape is None else shape), dtype=like.dtype)


def unbroadcast(emit: Emit, g, shape):
    """Sum `g` over the dims broadcasting added, so it has `shape` (the VJP of expand)."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = len(g.shape) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + d for d, s in enumerate(shape) if s == 1 and g.shape[lead + d] != 1)
    if axes:
        g = emit("sum", g, axes=axes)
    return emit("reshape", g, shape=shape) if tuple(g.shape) != shape else g


def expand_to(emit: Emit, g, shape):
    return g if tuple(g.shape) == tuple(shape) else emit("expand", g, shape=tuple(shape))


def transpose_last(emit: Emit, x):
    rank = len(x.shape)
    return emit("permute", x, perm=tuple(range(rank - 2)) + (rank - 1, rank - 2))


def unslice(emit: Emit, g, in_shape, starts, stops, steps):
    """`g`, the cotangent of a slice, placed back at its positions in `in_shape`, zeros elsewhere."""
    for d, step in enumerate(steps):
        if step > 1:   # interleave step-1 zeros after each element along d, then trim
            m = g.shape[d]
            shape = tuple(g.shape)
            g = emit("reshape", g, shape=shape[:d + 1] + (1,) + shape[d + 1:])
            low = (0,) * len(g.shape)
            high = tuple(step - 1 if i == d + 1 else 0 for i in range(len(g.shape)))
            g = emit("pad", g, low=low, high=high)
            g = emit("reshape", g, shape=shape[:d] + (m * step,) + shape[d + 1:])
            keep = stops[d] - starts[d]
            g = emit("slice", g, starts=(0,) * len(shape),
                     stops=tuple(keep if i == d else s for i, s in enumerate(g.shape)),
                     steps=(1,) * len(shape))
    low = tuple(starts)
    high = tuple(n - a - s for n, a, s in zip(in_shape, starts, g.shape))
    return g if not any(low) and not any(high) else emit("pad", g, low=low, high=high)


# ---------------------------------------------------------------- rules

def vjp(emit: Emit, op: str, attrs: dict, inputs: tuple, out, g, needs: tuple) -> tuple:
    """Cotangents of `inputs` for the primitive `op` whose output `out` has cotangent `g`."""
    rule = VJP[op]
    if rule is NOT_DIFFERENTIABLE:
        return (None,) * len(inputs)
    cts = rule.fn(emit, attrs, inputs, out, g)
    return tuple(c if need else None for c, need in zip(cts, needs))


def _float(x) -> bool:
    return x.dtype.is_floating_point


def _unary(fn):
    return lambda emit, attrs, inputs, out, g: (fn(emit, inputs[0], out, g),)


def _binary(fa, fb):
    def rule(emit, attrs, inputs, out, g):
        a, b = inputs
        return (unbroadcast(emit, fa(emit, a, b, out, g), a.shape) if _float(a) else None,
                unbroadcast(emit, fb(emit, a, b, out, g), b.shape) if _float(b) else None)
    return rule


def _half_split(emit, a, b, g, winner):
    """max/min: the winner takes the gradient, ties split it in half (as PyTorch)."""
    half = emit("mul", g, const(emit, 0.5, g))
    zero = const(emit, 0.0, g)
    return emit("where", emit("eq", a, b), half, emit("where", winner, g, zero))


def _pow_base(emit, a, b, out, g):
    zero_exp = emit("eq", b, const(emit, 0.0, b))
    grad = emit("mul", emit("mul", g, b), emit("pow", a, emit("sub", b, const(emit, 1.0, b))))
    return emit("where", zero_exp, const(emit, 0.0, grad), grad)


def _pow_exponent(emit, a, b, out, g):
    """g * a**b * log(a), zero where a == 0 and b >= 0 (PyTorch's convention)."""
    grad = emit("mul", emit("mul", g, out), emit("log", a))
    mask = emit("mul", emit("eq", a, const(emit, 0.0, a)), emit("le", const(emit, 0.0, b), b))
    return emit("where", mask, const(emit, 0.0, grad), grad)


def _reduce_extreme(emit, attrs, inputs, out, g):
    (x,) = inputs
    if not _float(x):
        return (None,)
    hit = emit("eq", x, expand_to(emit, out, x.shape))
    count = emit("sum", emit("cast", hit, dtype=x.dtype, shape=tuple(x.shape)), axes=attrs["axes"])
    share = emit("div", g, count)
    return (emit("where", hit, expand_to(emit, share, x.shape), const(emit, 0.0, x)),)


def _reduce_sum(emit, attrs, inputs, out, g):
    return (expand_to(emit, g, inputs[0].shape) if _float(inputs[0]) else None,)


def _reduce_prod(emit, attrs, inputs, out, g):
    """The product of the other elements, without dividing by zero (as PyTorch): out / x where
    the reduced slice has no zero; the product of the nonzeros at a slice's only zero; else 0."""
    (x,) = inputs
    if not _float(x):
        return (None,)
    axes, shape = attrs["axes"], tuple(x.shape)
    is_zero = emit("eq", x, const(emit, 0.0, x))
    safe = emit("where", is_zero, const(emit, 1.0, x), x)
    nonzero_product = expand_to(emit, emit("prod", safe, axes=axes), shape)
    zeros = expand_to(emit, emit("sum", emit("cast", is_zero, dtype=x.dtype, shape=shape), axes=axes), shape)
    only_zero = emit("mul", is_zero, emit("eq", zeros, const(emit, 1.0, x)))
    zero_free = emit("eq", zeros, const(emit, 0.0, x))
    others = emit("where", zero_free, emit("div", nonzero_product, safe),
                  emit("where", only_zero, nonzero_product, const(emit, 0.0, x)))
    return (emit("mul", expand_to(emit, g, shape), others),)


def _fmod_divisor(emit, a, b, out, g):
    """-g * trunc(a / b), the quotient rounded toward zero (PyTorch's fmod backward)."""
    q = emit("div", a, b)
    zero = const(emit, 0.0, q)
    trunc = emit("where", emit("lt", q, zero), emit("neg", emit("floor", emit("neg", q))), emit("floor", q))
    return emit("neg", emit("mul", g, trunc))


def _cast(emit, attrs, inputs, out, g):
    (x,) = inputs
    if not _float(x) or not _float(out):
        return (None,)
    return (emit("cast", g, dtype=x.dtype, shape=tuple(x.shape)),)


def _where(emit, attrs, inputs, out, g):
    c, a, b = inputs
    zero = const(emit, 0.0, g)
    return (None,
            unbroadcast(emit, emit("where", c, g, zero), a.shape) if _float(a) else None,
            unbroadcast(emit, emit("where", c, zero, g), b.shape) if _float(b) else None)


def _permute(emit, attrs, inputs, out, g):
    perm = attrs["perm"]
    inverse = tuple(sorted(range(len(perm)), key=lambda i: perm[i]))
    return (emit("permute", g, perm=inverse),)


def _slice(emit, attrs, inputs, out, g):
    return (unslice(emit, g, inputs[0].shape, attrs["starts"], attrs["stops"], attrs["steps"]),)


def _pad(emit, attrs, inputs, out, g):
    x = inputs[0]
    starts = tuple(attrs["low"])
    return (emit("slice", g, starts=starts, stops=tuple(a + n for a, n in zip(starts, x.shape)),
                 steps=(1,) * len(starts)),)


def _window(emit, attrs, inputs, out, g):
    """The windows' cotangents added back where they were read: one windowed dim at a time
    (separable), each the sum over its kernel offsets k of the slice g[..., k] placed at
    stride s from offset k*d (`unslice`: zero interleaving and padding, all views)."""
    (x,) = inputs
    kernel, strides, dilations = attrs["kernel"], attrs["strides"], attrs["dilations"]
    k = len(kernel)
    lead = len(x.shape) - k
    for i in reversed(range(k)):          # the last kernel dim of g is always the i-th one
        o_axis, k_axis = lead + i, len(g.shape) - 1
        shape = tuple(g.shape)
        count, size = shape[o_axis], x.shape[lead + i]
        in_shape = shape[:o_axis] + (size,) + shape[o_axis + 1:k_axis]
        total = None
        for j in range(kernel[i]):
            piece = emit("slice", g, starts=tuple(j if a == k_axis else 0 for a in range(len(shape))),
                         stops=tuple(j + 1 if a == k_axis else n for a, n in enumerate(shape)),
                         steps=(1,) * len(shape))
            piece = emit("reshape", piece, shape=shape[:k_axis])
            start = j * dilations[i]
            placed = unslice(emit, piece, in_shape,
                             tuple(start if a == o_axis else 0 for a in range(len(in_shape))),
                             tuple(start + (count - 1) * strides[i] + 1 if a == o_axis else n
                                   for a, n in enumerate(in_shape)),
                             tuple(strides[i] if a == o_axis else 1 for a in range(len(in_shape))))
            total = placed if total is None else emit("add", total, placed)
        g = total
    return (g,)


def _concat(emit, attrs, inputs, out, g):
    axis, offset, cts = attrs["axis"], 0, []
    for x in inputs:
        starts = tuple(offset if d == axis else 0 for d in range(len(x.shape)))
        stops = tuple(offset + x.shape[d] if d == axis else x.shape[d] for d in range(len(x.shape)))
        cts.append(emit("slice", g, starts=starts, stops=stops, steps=(1,) * len(starts)) if _float(x) else None)
        offset += x.shape[axis]
    return tuple(cts)


def _gather(emit, attrs, inputs, out, g):
    src, index = inputs
    zeros = const(emit, 0.0, src)
    return (emit("scatter_add", zeros, index, g, axis=attrs["axis"]) if _float(src) else None, None)


def _scatter_add(emit, attrs, inputs, out, g):
    base, index, src = inputs
    return (g, None, emit("gather", g, index, axis=attrs["axis"]) if _float(src) else None)


def _matmul(emit, attrs, inputs, out, g):
    a, b = inputs
    return (unbroadcast(emit, emit("matmul", g, transpose_last(emit, b)), a.shape) if _float(a) else None,
            unbroadcast(emit, emit("matmul", transpose_last(emit, a), g), b.shape) if _float(b) else None)


def _all_reduce(emit, attrs, inputs, out, g):
    """y = reduce over the processes of their x: for a sum every process's x reaches every
    process's y, so x's cotangent is the sum of all the processes' cotangents of y (one more
    all_reduce, sum); for an average, their average. max and min have no rule here."""
    reduce = attrs["reduce"]
    if reduce not in ("sum", "avg"):
        raise RuntimeError(f"all_reduce with reduce={reduce!r} is not differentiable (only 'sum' and 'avg' are)")
    return (emit("all_reduce", g, reduce=reduce, group=attrs["group"]) if _float(inputs[0]) else None,)


def _abs_grad(emit, x, out, g):
    zero = const(emit, 0.0, x)
    sign = emit("sub", emit("cast", emit("lt", zero, x), dtype=x.dtype, shape=tuple(x.shape)),
                emit("cast", emit("lt", x, zero), dtype=x.dtype, shape=tuple(x.shape)))
    return emit("mul", g, sign)


def _values(fn) -> VjpRule:
    """A VJP that reads its inputs' or output's values (PyTorch saves them for backward)."""
    return VjpRule(fn, needs_values=True)


def _shapes(fn) -> VjpRule:
    """A VJP that needs only the shapes and dtypes of its inputs and output."""
    return VjpRule(fn, needs_values=False)


for _op, _rule in {
    "neg": _shapes(_unary(lambda e, x, out, g: e("neg", g))),
    "exp": _values(_unary(lambda e, x, out, g: e("mul", g, out))),
    "log": _values(_unary(lambda e, x, out, g: e("div", g, x))),
    "sqrt": _values(_unary(lambda e, x, out, g: e("div", g, e("mul", out, const(e, 2.0, out))))),
    "recip": _values(_unary(lambda e, x, out, g: e("neg", e("mul", g, e("mul", out, out))))),
    "sin": _values(_unary(lambda e, x, out, g: e("mul", g, e("cos", x)))),
    "cos": _values(_unary(lambda e, x, out, g: e("neg", e("mul", g, e("sin", x))))),
    "tanh": _values(_unary(lambda e, x, out, g: e("mul", g, e("sub", const(e, 1.0, out), e("mul", out, out))))),
    "abs": _values(_unary(_abs_grad)),
    "erf": _values(_unary(lambda e, x, out, g: e("mul", g, e("mul", const(e, 2.0 / math.sqrt(math.pi), x),
                                                             e("exp", e("neg", e("mul", x, x))))))),
    "floor": _shapes(_unary(lambda e, x, out, g: const(e, 0.0, x))),
    "round": _shapes(_unary(lambda e, x, out, g: const(e, 0.0, x))),
    "add": _shapes(_binary(lambda e, a, b, out, g: g, lambda e, a, b, out, g: g)),
    "sub": _shapes(_binary(lambda e, a, b, out, g: g, lambda e, a, b, out, g: e("neg", g))),
    "mul": _values(_binary(lambda e, a, b, out, g: e("mul", g, b), lambda e, a, b, out, g: e("mul", g, a))),
    "div": _values(_binary(lambda e, a, b, out, g: e("div", g, b),
                           lambda e, a, b, out, g: e("neg", e("div", e("mul", g, out), b)))),
    "pow": _values(_binary(_pow_base, _pow_exponent)),
    "fmod": _values(_binary(lambda e, a, b, out, g: g, _fmod_divisor)),
    "max": _values(_binary(lambda e, a, b, out, g: _half_split(e, a, b, g, e("lt", b, a)),
                           lambda e, a, b, out, g: _half_split(e, a, b, g, e("lt", a, b)))),
    "min": _values(_binary(lambda e, a, b, out, g: _half_split(e, a, b, g, e("lt", a, b)),
                           lambda e, a, b, out, g: _half_split(e, a, b, g, e("lt", b, a)))),
    "where": _values(_where),
    "cast": _shapes(_cast),
    "sum": _shapes(_reduce_sum),
    "reduce_max": _values(_reduce_extreme),
    "reduce_min": _values(_reduce_extreme),
    "prod": _values(_reduce_prod),
    "reshape": _shapes(lambda e, attrs, inputs, out, g: (e("reshape", g, shape=tuple(inputs[0].shape)),)),
    "permute": _shapes(_permute),
    "expand": _shapes(lambda e, attrs, inputs, out, g: (unbroadcast(e, g, inputs[0].shape),)),
    "slice": _shapes(_slice),
    "pad": _shapes(_pad),
    "window": _shapes(_window),
    "concat": _shapes(_concat),
    "gather": _values(_gather),            # reads the index
    "scatter_add": _values(_scatter_add),  # reads the index
    "matmul": _values(_matmul),
    "all_reduce": _shapes(_all_reduce),
}.items():
    VJP.register(_op, _rule)

for _op in ("input", "param", "const", "iota", "rand", "lt", "le", "eq", "ne"):
    VJP.register(_op, NOT_DIFFERENTIABLE)


# ---------------------------------------------------------------- the graph pass

def node_emit(loc=None) -> Emit:
    """`emit` that builds plain IR nodes (sources and casts declare their type)."""
    def emit(op, *inputs, **attrs):
        shape, dtype = attrs.pop("shape", None), attrs.pop("dtype", None)
        if OPS[op].kind in ("source", "cast"):     # they declare their type at the node
            return make(op, inputs, attrs, loc, shape=shape, dtype=dtype)
        if shape is not None:
            attrs["shape"] = shape
        return make(op, inputs, attrs, loc)
    return emit


def gradients(outputs: list, cotangents: list, wrt: list, emit: Emit | None = None) -> list:
    """d(outputs . cotangents)/d(wrt) over the node DAG, every float edge differentiable."""
    emit = emit or node_emit()
    order = topo_order(outputs)
    ct: dict[int, object] = {}
    for o, c in zip(outputs, cotangents):
        ct[id(o)] = c if id(o) not in ct else emit("add", ct[id(o)], c)
    reach = {id(w) for w in wrt}
    for n in order:   # which nodes lie on a path from wrt
        if any(id(x) in reach for x in n.inputs):
            reach.add(id(n))
    for n in reversed(order):
        g = ct.get(id(n))
        if g is None or not n.inputs:
            continue
        needs = tuple(id(x) in reach and x.dtype.is_floating_point for x in n.inputs)
        for x, c in zip(n.inputs, vjp(emit, n.op, n.attrs, n.inputs, n, g, needs)):
            if c is not None:
                ct[id(x)] = c if id(x) not in ct else emit("add", ct[id(x)], c)
    return [ct.get(id(w)) if id(w) in ct else const(emit, 0.0, w) for w in wrt]


def differentiate(graph: Graph, output: str, wrt=None) -> Graph:
    """The graph with outputs `d<output>/d<name>` added for each input or param in `wrt`
    (default: all float inputs and params). `output` must be a one-element float value."""
    y = graph.outputs[output]
    wrt = wrt if wrt is not None else [x for x in graph.inputs + graph.params if x.dtype.is_floating_point]
    emit = node_emit(y.loc)
    seed = const(emit, 1.0, y)
    grads = gradients([y], [seed], wrt, emit)
    outputs = dict(graph.outputs)
    for w, gnode in zip(wrt, grads):
        outputs[f"d{output}_d{w.attrs['name'].replace('.', '_')}"] = gnode
    return graph.with_roots(outputs, graph.assigns)
