"""Shape ops: views that share storage, and the movement ops that copy.

A view is a tensor holding its base tensor and a chain of movement primitives; its value is
the chain applied to the base's current value, so in-place updates of either side are seen
by the other (in-place.py writes back through the chain). As in PyTorch, `view` fails where
the result would not be expressible with strides, and `reshape` copies there instead.
"""
from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import dtypes as D
from . import ops
from .compiler.ir import ShapeError
from .compiler.view import ViewStack
from .source import user_loc

if TYPE_CHECKING:
    from .tensor import Tensor


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def infer_shape(shape: Sequence[Any], numel: int, op: str) -> tuple[int, ...]:
    """PyTorch's size argument: ints or one tuple, at most one -1."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    shape = tuple(builtins.int(d) for d in shape)
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    known = _numel(d for d in shape if d != -1)
    if -1 in shape:
        if known == 0 or numel % known:
            raise ShapeError(op, f"shape '{list(shape)}' is invalid for input of size {numel}", user_loc())
        shape = tuple(numel // known if d == -1 else d for d in shape)
    if _numel(shape) != numel or any(d < 0 for d in shape):
        raise ShapeError(op, f"shape '{list(shape)}' is invalid for input of size {numel}", user_loc())
    return shape


def make_view(t: Tensor, op: str, attrs: dict, name: str | None) -> Tensor:
    """A new tensor viewing `t`'s storage through one more movement primitive."""
    base = t._base if t._base is not None else t
    return Tensor._view_of(base, t._view + ((op, attrs, name),))


def _layout(t: Tensor) -> ViewStack:
    """How `t` sits in its base's storage."""
    st = ViewStack.contiguous(t._storage.node.shape)
    for op, attrs, _ in t._view:
        st = st.apply(op, attrs)
    return st


def is_contiguous(t: Tensor) -> bool:
    v = _layout(t).single
    return v is not None and v.is_contiguous


def reshape_value(t: Tensor, shape: Sequence[int]) -> Tensor:
    """`t` as `shape`: a view where strides allow, else a lazy copy (reshape semantics)."""
    shape = tuple(shape)
    if shape == tuple(t.shape):
        return t
    if _layout(t).reshape(shape).single is not None:
        return make_view(t, "reshape", {"shape": shape}, "ViewBackward0")
    return ops.prim("reshape", [t], {"shape": shape}, name="UnsafeViewBackward0")


def view(t: Tensor, *shape: Any) -> Tensor:     # ints, one sequence of ints, or a dtype
    if len(shape) == 1 and not isinstance(shape[0], (builtins.int, tuple, list)):
        return ops.cast(t, shape[0])  # view(dtype): a reinterpretation PyTorch allows; here a cast
    shape = infer_shape(shape, t.numel(), "view")
    if shape != tuple(t.shape) and _layout(t).reshape(shape).single is None:
        raise RuntimeError("view size is not compatible with input tensor's size and stride (at least one "
                           "dimension spans across two contiguous subspaces). Use .reshape(...) instead.")
    return make_view(t, "reshape", {"shape": shape}, "ViewBackward0")


def reshape(t: Tensor, *shape: int | Sequence[int]) -> Tensor:
    return reshape_value(t, infer_shape(shape, t.numel(), "reshape"))


def flatten(t: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    if t.dim() == 0:
        return reshape_value(t, (1,))
    s, e = ops.normalize_dims(t, start_dim, "flatten")[0], ops.normalize_dims(t, end_dim, "flatten")[0]
    shape = tuple(t.shape)
    return reshape_value(t, shape[:s] + (_numel(shape[s:e + 1]),) + shape[e + 1:])


def permute(t: Tensor, *dims: int | Sequence[int]) -> Tensor:
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if len(dims) != t.dim():
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
                           f"length of the desired ordering of dimensions i.e. input.dim() = {t.dim()} is not "
                           f"equal to len(dims) = {len(dims)}")
    perm = tuple(ops.normalize_dims(t, d, "permute")[0] for d in dims)
    return make_view(t, "permute", {"perm": perm}, "PermuteBackward0")


def transpose(t: Tensor, dim0: int, dim1: int) -> Tensor:
    if t.dim() == 0:
        return t
    a, b = (ops.normalize_dims(t, d, "transpose")[0] for d in (dim0, dim1))
    perm = list(range(t.dim()))
    perm[a], perm[b] = perm[b], perm[a]
    return make_view(t, "permute", {"perm": tuple(perm)}, "TransposeBackward0")


def t_(t: Tensor) -> Tensor:
    if t.dim() > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {t.dim()}D")
    return t if t.dim() < 2 else make_view(t, "permute", {"perm": (1, 0)}, "TBackward0")


def expand(t: Tensor, *sizes: int | Sequence[int]) -> Tensor:
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    src = (1,) * (len(sizes) - t.dim()) + tuple(t.shape)
    shape = tuple(s if n == -1 else n for n, s in zip(sizes, src))
    if shape == tuple(t.shape):
        return t
    return make_view(t, "expand", {"shape": shape}, "ExpandBackward0")


def expand_as(t: Tensor, other: Tensor) -> Tensor:
    return expand(t, tuple(other.shape))


def squeeze(t: Tensor, dim: int | Sequence[int] | None = None) -> Tensor:
    if dim is None:
        shape = tuple(d for d in t.shape if d != 1)
    else:
        dims = ops.normalize_dims(t, dim, "squeeze")
        shape = tuple(s for d, s in enumerate(t.shape) if not (d in dims and s == 1))
    if shape == tuple(t.shape):
        return t
    return make_view(t, "reshape", {"shape": shape}, "SqueezeBackward0" if dim is None else "SqueezeBackward1")


def unsqueeze(t: Tensor, dim: int) -> Tensor:
    rank = t.dim() + 1
    if not -rank <= dim < rank:
        ops.normalize_dims(_Ranked(rank), dim, "unsqueeze")
    dim %= rank
    shape = tuple(t.shape[:dim]) + (1,) + tuple(t.shape[dim:])
    return make_view(t, "reshape", {"shape": shape}, "UnsqueezeBackward0")


class _Ranked:
    def __init__(self, rank: int) -> None:
        self.rank = rank

    def dim(self) -> int:
        return self.rank


def narrow(t: Tensor, dim: int, start: int, length: int) -> Tensor:
    (axis,) = ops.normalize_dims(t, dim, "narrow")
    return slice_dims(t, {axis: (start, start + length, 1)}, "SliceBackward0")


def slice_dims(t: Tensor, ranges: dict, name: str) -> Tensor:
    """A view keeping, per dim, the range (start, stop, step) given in `ranges`."""
    starts = tuple(ranges.get(d, (0, s, 1))[0] for d, s in enumerate(t.shape))
    stops = tuple(ranges.get(d, (0, s, 1))[1] for d, s in enumerate(t.shape))
    steps = tuple(ranges.get(d, (0, s, 1))[2] for d, s in enumerate(t.shape))
    if starts == (0,) * t.dim() and stops == tuple(t.shape) and steps == (1,) * t.dim():
        return t
    return make_view(t, "slice", {"starts": starts, "stops": stops, "steps": steps}, name)


def contiguous(t: Tensor) -> Tensor:
    return t if is_contiguous(t) else clone(t)


def clone(t: Tensor) -> Tensor:
    """A new storage holding `t`'s current value (an identity primitive; no data moves until
    it is realized, and simplify removes it from kernels)."""
    return ops.prim("reshape", [t], {"shape": tuple(t.shape)}, name="CloneBackward0")


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    tensors = [x for x in tensors if not (x.dim() == 1 and x.shape[0] == 0)] or list(tensors)[:1]
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    if len(tensors) == 1:
        return clone(tensors[0])
    dt = D.result_type(*tensors)
    axis = ops.normalize_dims(tensors[0], dim, "cat")[0]
    for i, x in enumerate(tensors[1:], 1):
        if x.dim() != tensors[0].dim():
            raise RuntimeError(f"Tensors must have same number of dimensions: got {tensors[0].dim()} and {x.dim()}")
        for d in range(x.dim()):
            if d != axis and x.shape[d] != tensors[0].shape[d]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {axis}. Expected size "
                                   f"{tensors[0].shape[d]} but got size {x.shape[d]} for tensor number {i} in the "
                                   "list.")
    return ops.prim("concat", [ops.cast(x, dt) for x in tensors], {"axis": axis}, name="CatBackward0")


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, x in enumerate(tensors[1:], 1):
        if tuple(x.shape) != tuple(tensors[0].shape):
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(tensors[0].shape)} at "
                               f"entry 0 and {list(x.shape)} at entry {i}")
    rank = tensors[0].dim() + 1
    axis = dim % rank if -rank <= dim < rank else ops.normalize_dims(_Ranked(rank), dim, "stack")[0]
    return ops.named(cat([unsqueeze(x, axis) for x in tensors], axis), "StackBackward0")


def gather_along(x: Tensor, axis: int, index: Tensor) -> Tensor:
    return ops.prim("gather", [x, index], {"axis": axis}, name="GatherBackward0")


from .tensor import Tensor  # noqa: E402
