"""Shape ops: views that share storage, and the movement ops that copy.

A view is a tensor holding its base tensor and a chain of movement primitives; its value is
the chain applied to the base's current value, so in-place updates of either side are seen
by the other (in-place.py writes back through the chain). As in PyTorch, `view` fails where
the result would not be expressible with strides, and `reshape` copies there instead.

Like the other op modules, this one imports only the layers below Tensor (tensor_base.py,
prims.py, where views are built through their base: `make_view`); `ShapeMethods`, at the
end, holds Tensor's shape methods, which tensor.py composes into Tensor. The functions take
TensorBase operands and return Tensors; where one returns its operand unchanged, that is a
Tensor whenever a caller has one (the `type: ignore[return-value]` lines).
"""
from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import dtypes as D
from .compiler.ir import ShapeError
from .prims import cast, named, prim
from .prims import layout as _layout
from .prims import make_view as make_view
from .prims import reshape_value as reshape_value
from .source import user_loc
from .tensor_base import TensorBase, normalize_dims

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


def is_contiguous(t: TensorBase) -> bool:
    v = _layout(t).single
    return v is not None and v.is_contiguous


def view(t: TensorBase, *shape: Any) -> Tensor:     # ints, one sequence of ints, or a dtype
    if len(shape) == 1 and not isinstance(shape[0], (builtins.int, tuple, list)):
        return cast(t, shape[0])  # view(dtype): a reinterpretation PyTorch allows; here a cast
    shape = infer_shape(shape, t.numel(), "view")
    if shape != tuple(t.shape) and _layout(t).reshape(shape).single is None:
        raise RuntimeError("view size is not compatible with input tensor's size and stride (at least one "
                           "dimension spans across two contiguous subspaces). Use .reshape(...) instead.")
    return make_view(t, "reshape", {"shape": shape}, "ViewBackward0")


def reshape(t: TensorBase, *shape: int | Sequence[int]) -> Tensor:
    return reshape_value(t, infer_shape(shape, t.numel(), "reshape"))


def flatten(t: TensorBase, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    if t.dim() == 0:
        return reshape_value(t, (1,))
    s, e = normalize_dims(t, start_dim, "flatten")[0], normalize_dims(t, end_dim, "flatten")[0]
    shape = tuple(t.shape)
    return reshape_value(t, shape[:s] + (_numel(shape[s:e + 1]),) + shape[e + 1:])


def permute(t: TensorBase, *dims: int | Sequence[int]) -> Tensor:
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if len(dims) != t.dim():
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
                           f"length of the desired ordering of dimensions i.e. input.dim() = {t.dim()} is not "
                           f"equal to len(dims) = {len(dims)}")
    perm = tuple(normalize_dims(t, d, "permute")[0] for d in dims)
    return make_view(t, "permute", {"perm": perm}, "PermuteBackward0")


def transpose(t: TensorBase, dim0: int, dim1: int) -> Tensor:
    if t.dim() == 0:
        return t  # type: ignore[return-value]
    a, b = (normalize_dims(t, d, "transpose")[0] for d in (dim0, dim1))
    perm = list(range(t.dim()))
    perm[a], perm[b] = perm[b], perm[a]
    return make_view(t, "permute", {"perm": tuple(perm)}, "TransposeBackward0")


def t_(t: TensorBase) -> Tensor:
    if t.dim() > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {t.dim()}D")
    return t if t.dim() < 2 else make_view(t, "permute", {"perm": (1, 0)}, "TBackward0")  # type: ignore[return-value]


def expand(t: TensorBase, *sizes: int | Sequence[int]) -> Tensor:
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    src = (1,) * (len(sizes) - t.dim()) + tuple(t.shape)
    shape = tuple(s if n == -1 else n for n, s in zip(sizes, src))
    if shape == tuple(t.shape):
        return t  # type: ignore[return-value]
    return make_view(t, "expand", {"shape": shape}, "ExpandBackward0")


def expand_as(t: TensorBase, other: TensorBase) -> Tensor:
    return expand(t, tuple(other.shape))


def squeeze(t: TensorBase, dim: int | Sequence[int] | None = None) -> Tensor:
    if dim is None:
        shape = tuple(d for d in t.shape if d != 1)
    else:
        dims = normalize_dims(t, dim, "squeeze")
        shape = tuple(s for d, s in enumerate(t.shape) if not (d in dims and s == 1))
    if shape == tuple(t.shape):
        return t  # type: ignore[return-value]
    return make_view(t, "reshape", {"shape": shape}, "SqueezeBackward0" if dim is None else "SqueezeBackward1")


def unsqueeze(t: TensorBase, dim: int) -> Tensor:
    rank = t.dim() + 1
    if not -rank <= dim < rank:
        normalize_dims(_Ranked(rank), dim, "unsqueeze")
    dim %= rank
    shape = tuple(t.shape[:dim]) + (1,) + tuple(t.shape[dim:])
    return make_view(t, "reshape", {"shape": shape}, "UnsqueezeBackward0")


class _Ranked:
    def __init__(self, rank: int) -> None:
        self.rank = rank

    def dim(self) -> int:
        return self.rank


def narrow(t: TensorBase, dim: int, start: int, length: int) -> Tensor:
    (axis,) = normalize_dims(t, dim, "narrow")
    return slice_dims(t, {axis: (start, start + length, 1)}, "SliceBackward0")


def slice_dims(t: TensorBase, ranges: dict, name: str) -> Tensor:
    """A view keeping, per dim, the range (start, stop, step) given in `ranges`."""
    starts = tuple(ranges.get(d, (0, s, 1))[0] for d, s in enumerate(t.shape))
    stops = tuple(ranges.get(d, (0, s, 1))[1] for d, s in enumerate(t.shape))
    steps = tuple(ranges.get(d, (0, s, 1))[2] for d, s in enumerate(t.shape))
    if starts == (0,) * t.dim() and stops == tuple(t.shape) and steps == (1,) * t.dim():
        return t  # type: ignore[return-value]
    return make_view(t, "slice", {"starts": starts, "stops": stops, "steps": steps}, name)


def contiguous(t: TensorBase) -> Tensor:
    return t if is_contiguous(t) else clone(t)  # type: ignore[return-value]


def clone(t: TensorBase) -> Tensor:
    """A new storage holding `t`'s current value (an identity primitive; no data moves until
    it is realized, and simplify removes it from kernels)."""
    return prim("reshape", [t], {"shape": tuple(t.shape)}, name="CloneBackward0")


def cat(tensors: Sequence[TensorBase], dim: int = 0) -> Tensor:
    tensors = [x for x in tensors if not (x.dim() == 1 and x.shape[0] == 0)] or list(tensors)[:1]
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    if len(tensors) == 1:
        return clone(tensors[0])
    dt = D.result_type(*tensors)
    axis = normalize_dims(tensors[0], dim, "cat")[0]
    for i, x in enumerate(tensors[1:], 1):
        if x.dim() != tensors[0].dim():
            raise RuntimeError(f"Tensors must have same number of dimensions: got {tensors[0].dim()} and {x.dim()}")
        for d in range(x.dim()):
            if d != axis and x.shape[d] != tensors[0].shape[d]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {axis}. Expected size "
                                   f"{tensors[0].shape[d]} but got size {x.shape[d]} for tensor number {i} in the "
                                   "list.")
    return prim("concat", [cast(x, dt) for x in tensors], {"axis": axis}, name="CatBackward0")


def stack(tensors: Sequence[TensorBase], dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, x in enumerate(tensors[1:], 1):
        if tuple(x.shape) != tuple(tensors[0].shape):
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(tensors[0].shape)} at "
                               f"entry 0 and {list(x.shape)} at entry {i}")
    rank = tensors[0].dim() + 1
    axis = dim % rank if -rank <= dim < rank else normalize_dims(_Ranked(rank), dim, "stack")[0]
    return named(cat([unsqueeze(x, axis) for x in tensors], axis), "StackBackward0")


def gather_along(x: TensorBase, axis: int, index: TensorBase) -> Tensor:
    return prim("gather", [x, index], {"axis": axis}, name="GatherBackward0")



# ---------------------------------------------------------------- Tensor's methods

class ShapeMethods(TensorBase):
    """Tensor methods that change shape or layout."""

    __slots__ = ()

    def view(self, *shape: Any) -> Tensor:
        return view(self, *shape)

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        return reshape(self, *shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return flatten(self, start_dim, end_dim)

    def permute(self, *dims: int | Sequence[int]) -> Tensor:
        return permute(self, *dims)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        return transpose(self, dim0, dim1)

    def t(self) -> Tensor:
        return t_(self)

    def expand(self, *sizes: int | Sequence[int]) -> Tensor:
        return expand(self, *sizes)

    def expand_as(self, other: Tensor) -> Tensor:
        return expand_as(self, other)

    def squeeze(self, dim: int | Sequence[int] | None = None) -> Tensor:
        return squeeze(self, dim)

    def unsqueeze(self, dim: int) -> Tensor:
        return unsqueeze(self, dim)

    def narrow(self, dim: int, start: int, length: int) -> Tensor:
        return narrow(self, dim, start, length)

    def contiguous(self) -> Tensor:
        return contiguous(self)

    def clone(self) -> Tensor:
        return clone(self)

    def view_as(self, other: TensorBase) -> Tensor:
        return view(self, tuple(other.shape))

    def reshape_as(self, other: TensorBase) -> Tensor:
        return reshape(self, tuple(other.shape))

    def is_contiguous(self) -> bool:
        return is_contiguous(self)

    @property
    def T(self) -> Tensor:
        return permute(self, tuple(reversed(range(self.dim())))) if self.dim() >= 2 else self   # type: ignore[return-value]

    @property
    def mT(self) -> Tensor:
        return transpose(self, -2, -1)

    def gather(self, dim: int, index: Tensor) -> Tensor:
        return gather_along(self, normalize_dims(self, dim, "gather")[0], index)
