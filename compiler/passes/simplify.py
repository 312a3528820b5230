"""Pass 4, simplify: constant folding, algebraic identities, common subexpressions, dead code.

Effectful ops (declared so: a collective's host call) are kept as they are: never folded (they
have no fold rule), never merged with an equal node; one whose result nothing uses is dead code.

Runs after broadcasting resolution, so a constant operand arrives as `expand(const)` and is
folded into a constant of the full shape first. Dead code needs no rule of its own: the
rebuilt graph holds only what its outputs and assigns reach.
"""
from __future__ import annotations

import math

from ..ir import Graph, Node, clone, make, rewrite
from ..ir.ops import OPS
from ..ir.registry import RuleTable


def _const_value(n: Node):
    return n.attrs["value"] if n.op == "const" else None


def _is_const(n: Node, value) -> bool:
    v = _const_value(n)
    return v is not None and not isinstance(v, bool) and v == value


def _is_unit(op: str, x: Node, unit) -> bool:
    """Whether `x` is the constant `unit` of `op`. A float zero only with the sign that leaves
    every x as it is, -0.0 included: x + (-0.0) and x - (+0.0) (-0.0 + 0.0 is +0.0)."""
    if not _is_const(x, unit):
        return False
    if unit == 0 and x.dtype.is_floating_point:
        negative = math.copysign(1.0, _const_value(x)) < 0
        return negative if op == "add" else not negative
    return True


def const_like(n: Node, value) -> Node:
    return Node("const", (), {"value": value}, n.shape, n.dtype, n.loc)


def _fold(n: Node, inputs: tuple) -> Node | None:
    """A constant for an op whose operands are all constants, computed as the kernel would
    (the op's fold rule, declared with it in ir/ops.py)."""
    if not inputs or any(x.op != "const" for x in inputs):
        return None
    rule = OPS[n.op].fold
    if rule is None:
        return None
    value = rule(n.dtype, [(x.attrs["value"], x.dtype) for x in inputs])
    return None if value is None else const_like(n, value)


def _identity(n: Node, inputs: tuple) -> Node | None:
    """x+0, x*1, x-0, x/1, --x, trivial movement and x**c for small c, as simpler nodes: the
    algebraic facts declared with each op (ir/ops.py: unit, commutative, involution, noop,
    compose) and the rewrites registered for it (`REWRITES`)."""
    same = lambda x: tuple(x.shape) == tuple(n.shape) and x.dtype is n.dtype   # noqa: E731
    d = OPS[n.op]
    if d.unit is not None:
        a, b = inputs
        if _is_unit(n.op, b, d.unit) and same(a):
            return a
        if d.commutative and _is_unit(n.op, a, d.unit) and same(b):
            return b
    if d.involution and inputs[0].op == n.op:
        return inputs[0].inputs[0]
    if d.kind == "where" and inputs[1] is inputs[2]:
        return inputs[1]
    if d.noop is not None and same(inputs[0]) and d.noop(n.attrs):
        return inputs[0]
    if d.compose is not None and inputs[0].op == n.op:
        return make(n.op, [inputs[0].inputs[0]], d.compose(inputs[0].attrs, n.attrs), n.loc)
    rewrite_rule = REWRITES.get(n.op)
    return rewrite_rule(n, inputs) if rewrite_rule is not None else None


#: op -> `fn(node, inputs) -> Node | None`: a strength reduction of the op into cheaper ones
#: (facts that are not a unit, involution, no-op or composition of the declaration)
REWRITES = RuleTable("rewrites")


@REWRITES("pow")
def _pow(n: Node, inputs: tuple) -> Node | None:
    if n.dtype.is_floating_point and inputs[1].op == "const":
        return _pow_by_constant(n, inputs[0], inputs[1].attrs["value"])
    return None


def _pow_by_constant(n: Node, x: Node, c) -> Node | None:
    if c == 1:
        return x
    if c == 0:
        return const_like(n, 1.0)
    if c == 2:
        return make("mul", [x, x], loc=n.loc)
    if c == 3:
        return make("mul", [make("mul", [x, x], loc=n.loc), x], loc=n.loc)
    if c == -1:
        return make("recip", [x], loc=n.loc)
    if c == 0.5:
        return make("sqrt", [x], loc=n.loc)
    return None


def _transposed_product(n: Node, inputs: tuple, users: dict) -> Node | None:
    """(A @ B)^T as B^T @ A^T: the operands' transposes are free strided reads for the matmul,
    so the product comes out in the layout wanted instead of being copied into it (weight
    gradients of `x @ W.T` are the common case). Only when nothing else uses A @ B."""
    if n.op != "permute" or inputs[0].op != "matmul" or users.get(id(n.inputs[0]), 0) != 1:
        return None
    perm, rank = tuple(n.attrs["perm"]), len(n.shape)
    if perm != tuple(range(rank - 2)) + (rank - 1, rank - 2):
        return None
    a, b = inputs[0].inputs
    swap = lambda x: make("permute", [x], {"perm": perm}, n.loc)
    return make("matmul", [swap(b), swap(a)], loc=inputs[0].loc)


def simplify(graph: Graph) -> Graph:
    table: dict[tuple, Node] = {}
    users: dict[int, int] = {}
    for node in graph.nodes():
        for x in node.inputs:
            users[id(x)] = users.get(id(x), 0) + 1
    for root in graph.roots():
        users[id(root)] = users.get(id(root), 0) + 1

    def canonical(node: Node) -> Node:
        key = (node.sig, tuple(id(x) for x in node.inputs))
        return table.setdefault(key, node)

    def step(n: Node, inputs: tuple) -> Node:
        out = _transposed_product(n, inputs, users) or clone(n, inputs)
        for rule in (_fold, _identity):
            better = rule(out, out.inputs)
            while better is not None and better is not out:
                out = better
                better = rule(out, out.inputs) if out.op not in ("input", "param") else None
        if out.op in ("input", "param") or OPS[out.op].effectful:
            return out     # an effectful node (a collective) is never merged with an equal one
        return canonical(out)

    return rewrite(graph, step)  # bottom-up, so a fold is seen by its consumers at once
