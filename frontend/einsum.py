"""`einsum`, PyTorch's: subscripts of letters (a-z, A-Z) and one ellipsis per operand,
implicit output (ellipsis dims, then the letters seen once, sorted) or explicit (`->`).

It is lowered to the primitives the rest of the frontend uses, so autograd and `@compile`
need nothing of their own:
- a letter repeated within one operand takes that operand's diagonal (a strided slice of the
  two dims flattened);
- a letter that no other operand and not the output has is summed out at once;
- operands are combined left to right: a pair sharing letters to sum out is one (batched)
  `matmul`, the operands permuted and reshaped to (batch, rows, contracted) and (batch,
  contracted, cols); a pair with none is a broadcast multiply (outer products), which fuses;
- the result is permuted to the output's order.
Size-1 dims broadcast against the same letter's other sizes, as PyTorch's.

Like the other op modules, this one imports only the layers below Tensor.
"""
from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import ops, shape_ops
from .prims import op_error
from .prims import torch_name as _torch_name
from .tensor_base import TensorBase

if TYPE_CHECKING:
    from .tensor import Tensor

Label = Any     # a letter, or ("...", k): the k-th ellipsis dim counted from the right


def _error(message: str, operands: Sequence[TensorBase]) -> Exception:
    return op_error(RuntimeError, "einsum", f"einsum(): {message}", list(operands))


def _parse_term(term: str, index: int, operand: TensorBase, operands: Sequence[TensorBase]) -> list[Label]:
    """The labels of one operand's dims (its ellipsis expanded to its dims)."""
    if term.count("...") > 1 or term.replace("...", "").count("."):
        raise _error(f"found '.' for operand {index} that is not part of any ellipsis", operands)
    head, ellipsis, tail = term.partition("...")
    for c in head + tail:
        if not c.isascii() or not c.isalpha():
            raise _error(f"invalid subscript given at index {term.index(c)} in the equation string, subscripts must "
                         "be in [a-zA-Z]", operands)
    letters = len(head) + len(tail)
    if not ellipsis:
        if letters != operand.dim():
            raise _error(f"the number of subscripts in the equation ({letters}) does not match the number of "
                         f"dimensions ({operand.dim()}) for operand {index} and no ellipsis was given", operands)
        return list(head)
    if letters > operand.dim():
        raise _error(f"the number of subscripts in the equation ({letters}) is more than the number of dimensions "
                     f"({operand.dim()}) for operand {index}", operands)
    extra = operand.dim() - letters
    return list(head) + [("...", extra - i) for i in range(extra)] + list(tail)


def einsum(equation: str, *operands: Any) -> Tensor:
    """Sum of products of the operands' elements over the subscripts the output lacks."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise RuntimeError("einsum(): must provide at least one operand")
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) > len(operands):
        raise _error("fewer operands were provided than specified in the equation", operands)
    if len(terms) < len(operands):
        raise _error("more operands were provided than specified in the equation", operands)
    for i, t in enumerate(operands[1:], 1):
        if t.dtype is not operands[0].dtype:
            raise _error(f"expected scalar type {_torch_name(operands[0].dtype)} but found {_torch_name(t.dtype)} "
                         f"for operand {i}", operands)
    labels = [_parse_term(term, i, t, operands) for i, (term, t) in enumerate(zip(terms, operands))]
    ellipsis = builtins.max((builtins.sum(1 for x in ls if isinstance(x, tuple)) for ls in labels), default=0)
    ell_labels: list[Label] = [("...", ellipsis - i) for i in range(ellipsis)]
    if arrow:
        out = _output_labels(rhs, labels, ell_labels, operands)
    else:
        counts: dict[str, int] = {}
        for ls in labels:
            for x in ls:
                if isinstance(x, str):
                    counts[x] = counts.get(x, 0) + 1
        out = ell_labels + sorted(x for x, n in counts.items() if n == 1)
    sizes = _sizes(labels, operands)

    values = [_diagonals(t, ls) for t, ls in zip(operands, labels)]
    current, cur_labels = values[0]
    for k in range(1, len(values) + 1):
        after = set(out)                # labels needed once operands 0..k are combined
        for _, ls in values[k + 1:]:
            after.update(ls)
        if k == len(values):
            current, cur_labels = _sum_out(current, cur_labels, after)
            break
        other, other_labels = values[k]
        current, cur_labels = _sum_out(current, cur_labels, after | set(other_labels))
        other, other_labels = _sum_out(other, other_labels, after | set(cur_labels))
        current, cur_labels = _combine(current, cur_labels, other, other_labels, after, sizes)
    perm = [cur_labels.index(x) for x in out]
    if perm != list(range(len(perm))):
        current = shape_ops.permute(current, perm)
    elif current is operands[0]:
        current = shape_ops.clone(current)
    return current


def _output_labels(rhs: str, labels: list[list[Label]], ell_labels: list[Label],
                   operands: Sequence[TensorBase]) -> list[Label]:
    seen = {x for ls in labels for x in ls}
    head, ellipsis, tail = rhs.partition("...")
    if "." in head + tail:
        raise _error("found '.' for output but it is not part of any ellipsis", operands)
    out: list[Label] = []
    for c in head + tail:
        if not c.isascii() or not c.isalpha():
            raise _error(f"invalid subscript given at index {rhs.index(c)} in the equation string, subscripts must "
                         "be in [a-zA-Z]", operands)
        if c not in seen:
            raise _error(f"output subscript {c} does not appear in the equation for any input operand", operands)
        if c in out:
            raise _error(f"output subscript {c} appears more than once in the output", operands)
        out.append(c)
    if ellipsis:
        return list(head) + ell_labels + list(tail)
    return out


def _sizes(labels: list[list[Label]], operands: Sequence[TensorBase]) -> dict:
    """Each label's size: equal wherever it occurs, or 1 (broadcast)."""
    sizes: dict = {}
    for i, (ls, t) in enumerate(zip(labels, operands)):
        seen_here: dict = {}
        for x, n in zip(ls, t.shape):
            if isinstance(x, str) and x in seen_here and seen_here[x] != n:
                raise _error(f"subscript {x} is repeated for operand {i} but the sizes don't match, "
                             f"{seen_here[x]} != {n}", operands)
            seen_here[x] = n
            old = sizes.get(x)
            if old is None or old == 1:
                sizes[x] = n
            elif n != 1 and n != old:
                name = "..." if isinstance(x, tuple) else x
                raise _error(f"subscript {name} has size {n} for operand {i} which does not broadcast with "
                             f"previously seen size {old}", operands)
    return sizes


def _diagonals(t: Any, labels: list[Label]) -> tuple[Any, list[Label]]:
    """`t` with each repeated label's dims replaced by their diagonal (one dim, last)."""
    labels = list(labels)
    while True:
        repeated = next((x for i, x in enumerate(labels) if x in labels[:i]), None)
        if repeated is None:
            return t, labels
        a = labels.index(repeated)
        b = labels.index(repeated, a + 1)
        rest = [d for d in range(len(labels)) if d not in (a, b)]
        t = shape_ops.permute(t, rest + [a, b])
        n = t.shape[-1]
        flat = shape_ops.reshape(t, tuple(t.shape[:-2]) + (n * n,))
        t = shape_ops.slice_dims(flat, {flat.dim() - 1: (0, n * n, n + 1)}, "DiagonalBackward0")
        labels = [labels[d] for d in rest] + [repeated]


def _sum_out(t: Any, labels: list[Label], keep: set) -> tuple[Any, list[Label]]:
    """`t` summed over the labels not in `keep`."""
    axes = [d for d, x in enumerate(labels) if x not in keep]
    if not axes:
        return t, labels
    dtype = None if t.dtype.is_bool else t.dtype        # int32 stays int32, as PyTorch's
    return ops.sum(t, axes, dtype=dtype), [x for x in labels if x in keep]


def _arranged(t: Any, labels: list[Label], order: list[Label], sizes: dict, expand: bool) -> Any:
    """`t` permuted to `order` (labels it lacks become size-1 dims), its size-1 dims
    expanded to the labels' sizes where `expand`."""
    present = [x for x in order if x in labels]
    perm = [labels.index(x) for x in present]
    if perm != list(range(len(perm))):
        t = shape_ops.permute(t, perm)
    shape = tuple(t.shape[present.index(x)] if x in labels else 1 for x in order)
    t = shape_ops.reshape_value(t, shape)
    if expand:
        full = tuple(sizes[x] if x in labels else 1 for x in order)
        if full != shape:
            t = shape_ops.expand(t, full)
    return t


def _combine(a: Any, a_labels: list[Label], b: Any, b_labels: list[Label], keep: set,
             sizes: dict) -> tuple[Any, list[Label]]:
    """The product of two operands, summed over their shared labels not in `keep`."""
    shared = [x for x in a_labels if x in b_labels]
    contracted = [x for x in shared if x not in keep]
    batch = [x for x in shared if x in keep]
    left = [x for x in a_labels if x not in b_labels]
    right = [x for x in b_labels if x not in a_labels]
    out_labels = batch + left + right
    if not contracted:      # a broadcast multiply: outer products, elementwise, fuses
        return ops.mul(_arranged(a, a_labels, out_labels, sizes, False),
                       _arranged(b, b_labels, out_labels, sizes, False)), out_labels
    a2 = _arranged(a, a_labels, batch + left + contracted, sizes, True)
    b2 = _arranged(b, b_labels, batch + contracted + right, sizes, True)
    nb = [sizes[x] for x in batch]
    nl, nk, nr = (_prod(sizes[x] for x in group) for group in (left, contracted, right))
    a3 = shape_ops.reshape_value(a2, tuple(nb) + (nl, nk))
    b3 = shape_ops.reshape_value(b2, tuple(nb) + (nk, nr))
    product = ops.matmul(a3, b3)
    shape = tuple(nb) + tuple(sizes[x] for x in left) + tuple(sizes[x] for x in right)
    return shape_ops.reshape_value(product, shape), out_labels


def _prod(values: Any) -> int:
    n = 1
    for v in values:
        n *= v
    return n
