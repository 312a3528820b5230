"""Creating tensors: from data, from numpy (sharing memory), and the factory functions.

Factories fill buffers with numpy at once (a new shape costs no compilation); the random
ones draw from fusegrad's Philox stream (random.py), the same stream kernels draw from.

These functions take no tensor to build their result through, so this module sits above
tensor.py and imports Tensor (issue 12); the data conversion they share with the legacy
constructor `Tensor([1, 2])` and with indexing is in conversion.py, below Tensor.
"""
from __future__ import annotations

import builtins
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from . import dtypes as D
from . import random as _rng
from . import trace_hooks
from .conversion import aligned_copy as _aligned_copy
from .conversion import array_of as _array_of
from .conversion import check_native_byte_order as _check_native_byte_order
from .conversion import copy_as as _copy_as
from .conversion import legacy_constructor_array as legacy_constructor_array
from .conversion import no_dtype as _no_dtype
from .conversion import row_major as _row_major
from .conversion import sizes as _sizes
from .conversion import to_array as _to_array
from .prims import iota_node
from .runtime import aligned_empty
from .source import warn
from .tensor import Tensor

if TYPE_CHECKING:
    from .device import device as _device
    from .random import Generator

# What the creation functions take: a dtype is a DType or anything `dtypes.as_dtype` reads (a
# numpy dtype, a Python type, a name); a device is a device, a string ("cuda:0") or a CUDA index;
# a size is an int or a sequence of ints (also spread over the arguments: zeros(2, 3)).
DTypeLike = Union["D.DType", str, type, "np.dtype[Any]"]
DeviceLike = Union["_device", str, int]
SizeLike = Union[int, Sequence[int]]
Scalar = Union[bool, int, float]


def tensor(data: Any, dtype: DTypeLike | None = None, device: DeviceLike | None = None, requires_grad: bool = False,
           pin_memory: bool = False) -> Tensor:
    """A new tensor holding a copy of `data`: numbers, nested sequences, numpy arrays, tensors
    (fusegrad's, PyTorch's or any DLPack producer's, detached), array-likes and buffers."""
    dtype = D.as_dtype(dtype) if dtype is not None else None
    t = Tensor._from_array(_to_array(data, dtype), dtype=dtype)
    if requires_grad:
        t.requires_grad_(True)
    return _placed(t, device)


def _placed(t: Tensor, device: DeviceLike | None) -> Tensor:
    if device is None:
        return t
    return t.to(device)


def as_tensor(data: Any, dtype: DTypeLike | None = None, device: DeviceLike | None = None) -> Tensor:
    """`data` as a tensor, sharing its memory when the dtype allows (numpy arrays, DLPack
    producers such as PyTorch tensors, array-likes), else a copy as `tensor(data)` makes."""
    dt = D.as_dtype(dtype) if dtype is not None else None
    if isinstance(data, Tensor):
        return _placed(data if dt is None or dt is data.dtype else tensor(data, dtype=dt), device)
    if isinstance(data, np.ndarray):
        if dt is None or dt.np == data.dtype == dt.host:
            return _placed(from_numpy(data), device)
        return tensor(data, dtype=dt, device=device)
    if not isinstance(data, (str, bytes)) and not (hasattr(data, "__dlpack__") and _requires_grad(data)):
        foreign = _array_of(data)
        if foreign is not None:
            a, src = foreign
            if src is None and dt is None:
                raise _no_dtype(a.dtype)
            if src is not None and dt in (None, src) and not any(s < 0 or s % a.itemsize for s in a.strides):
                warning = READONLY_DLPACK_WARNING if hasattr(data, "__dlpack__") else _NOT_WRITABLE
                return _placed(sharing_memory(a, warning), device)
            return _placed(Tensor._from_array(_copy_as(a, src, dt), dtype=dt or src), device)
    return tensor(data, dtype=dt, device=device)


def _requires_grad(data: Any) -> bool:
    return getattr(data, "requires_grad", False) is True


def from_numpy(a: np.ndarray) -> Tensor:
    """A tensor sharing `a`'s memory: writes through either are seen by the other."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(a).__name__})")
    _check_native_byte_order(a)
    D.from_numpy(a.dtype)   # TypeError for unsupported dtypes
    _check_strides(a)
    return sharing_memory(a, _NOT_WRITABLE)


def sharing_memory(a: np.ndarray, readonly_warning: str) -> Tensor:
    """A tensor over the memory of `a` (dtype checked, strides non-negative whole elements; a
    uint16 array is bfloat16's bits), marked exported: writes through either side are seen by the
    other. A read-only `a` warns `readonly_warning`; a write through the tensor copies first."""
    t = _sharing(a)
    t._storage.exported = True
    if not a.flags.writeable:
        warn(readonly_warning)
        t._storage.readonly = True
    return t


_NOT_WRITABLE = ("The given NumPy array is not writable, and PyTorch does not support non-writable tensors. This "
                 "means writing to this tensor will result in undefined behavior. You may want to copy the array to "
                 "protect its data or make it writable before converting it to a tensor. (fusegrad: a write "
                 "through the tensor copies the data first, and leaves the array unchanged.)")
READONLY_DLPACK_WARNING = ("The DLPack producer marked its data read-only: fusegrad shares it for reading, and a "
                           "write through the tensor copies the data first, leaving the producer's unchanged.")


def _check_strides(a: np.ndarray) -> None:
    """PyTorch's errors for strides a tensor cannot have: negative, or not whole elements."""
    if any(s < 0 for s in a.strides):
        raise ValueError("At least one stride in the given numpy array is negative, and tensors with negative "
                         "strides are not currently supported. (You can probably work around this by making a "
                         "copy of your array  with array.copy().) ")
    if any(s % a.itemsize for s in a.strides):
        raise ValueError("given numpy array strides not a multiple of the element byte size. Copy the numpy "
                         "array to reallocate the memory.")


def _sharing(a: np.ndarray) -> Tensor:
    """A tensor over `a`'s memory: the array itself when contiguous, else a view of the memory
    around it (`strided_view`); a copy, with a warning, for layouts no view can express."""
    if a.flags.c_contiguous:
        return Tensor._from_array(a)
    if a.flags.f_contiguous and a.ndim > 1:
        return Tensor._from_array(a.T).permute(tuple(reversed(range(a.ndim))))
    if a.size == 0:
        return Tensor._from_array(_aligned_copy(a))
    t = strided_view(a)
    if t is None:
        warn(f"from_numpy: fusegrad cannot share the memory of an array with strides {a.strides}; "
             "the tensor is a copy")
        return Tensor._from_array(_aligned_copy(a))
    return t


# ---------------------------------------------------------------- strided numpy arrays

def _own_memory(memory: np.ndarray, lo: int, hi: int) -> Tensor:
    """A tensor whose storage is memory[lo:hi] itself."""
    return Tensor._from_array(memory[lo:hi])


def strided_view(a: np.ndarray, piece: Callable[[np.ndarray, int, int], Tensor] = _own_memory) -> Tensor | None:
    """`a` as a view (reshape, slices, permute, expand) of a contiguous run of the memory it lies
    in, or None. The run is an array `a` is a view of, read as a row-major "frame": that array's
    shape, else one built from a's strides; each dim of `a` is a strided slice of one frame dim.
    `piece(memory, lo, hi)` makes the 1-D tensor over memory[lo:hi] that the view is built on
    (by default a new storage over that memory; a checkpoint's loader passes a slice of the
    tensor already loaded over it, so that views of one storage share it)."""
    dims = sorted((d for d in range(a.ndim) if a.shape[d] > 1 and a.strides[d]), key=lambda d: -a.strides[d])
    steps = [a.strides[d] // a.itemsize for d in dims]
    sizes = [a.shape[d] for d in dims]
    for owner in _contiguous_owners(a):
        memory = owner.reshape(-1).view(np.uint8).view(a.dtype)
        offset = (a.ctypes.data - owner.ctypes.data) // a.itemsize
        for frame in _frames(owner, memory, a, steps, sizes):
            picks = _place(frame, offset, sizes, steps)
            if picks is not None:
                return _frame_view(memory, frame, picks, a, dims, piece)
    return None


def _contiguous_owners(a: np.ndarray) -> Iterator[np.ndarray]:
    """The arrays `a` is a view of, innermost first, that are contiguous runs of whole elements
    before it (through the non-array holders that as_strided and broadcast_to put between)."""
    owner = a.base
    while owner is not None:
        if isinstance(owner, np.ndarray):
            gap = a.ctypes.data - owner.ctypes.data
            if owner.flags.c_contiguous and not owner.nbytes % a.itemsize and gap >= 0 and not gap % a.itemsize:
                yield owner
        owner = getattr(owner, "base", None)


def _frames(owner: np.ndarray, memory: np.ndarray, a: np.ndarray, steps: list[int],
            sizes: list[int]) -> Iterator[tuple[int, ...]]:
    """Candidate frame shapes over `memory`: the owner's own shape, then row-major frames whose
    dim strides divide a's strides (a few dozen at most; the first that fits is used)."""
    if owner.itemsize == a.itemsize and owner.ndim > 1:
        yield tuple(owner.shape)
    for strides in itertools.islice(_frame_strides(steps, sizes, len(steps) - 1, (), [_MAX_VISITS]), _MAX_FRAMES):
        inner = tuple(x // y for x, y in zip(strides, strides[1:])) + ((strides[-1],) if strides[-1] > 1 else ())
        yield (memory.size // strides[0],) + inner


_MAX_FRAMES = 64
_MAX_VISITS = 4096     # candidates looked at, at most (overlapping strides could make the search long)


def _frame_strides(steps: list[int], sizes: list[int], j: int,
                   inner: tuple[int, ...], budget: list[int]) -> Iterator[tuple[int, ...]]:
    """Frame dim strides for a's dims j, j-1, ... (outermost last chosen): each divides a's
    stride there, is a multiple of the next inner one, and leaves room for the inner dim's extent."""
    if j < 0:
        yield inner
        return
    for t in _divisors(steps[j]):
        budget[0] -= 1
        if budget[0] < 0:
            return
        if inner and (t % inner[0] or t // inner[0] <= (sizes[j + 1] - 1) * (steps[j + 1] // inner[0])):
            continue
        yield from _frame_strides(steps, sizes, j - 1, (t,) + inner, budget)


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _place(frame: tuple[int, ...], offset: int, sizes: list[int],
           steps: list[int]) -> list[tuple[int, int, int]] | None:
    """Per frame dim, (start, count, step) of a's elements, or None when a's dims (sorted by
    stride) do not fall on distinct frame dims inside the frame."""
    strides = _row_major(frame)
    if offset >= math.prod(frame):
        return None
    starts = [offset // s % n if d else offset // s for d, (s, n) in enumerate(zip(strides, frame))]
    picks = [(start, 1, 1) for start in starts]
    d = 0
    for size, step in zip(sizes, steps):
        while d < len(frame) and (strides[d] > step or step % strides[d]):
            d += 1
        if d == len(frame):
            return None
        k = step // strides[d]
        if starts[d] + (size - 1) * k >= frame[d]:
            return None
        picks[d] = (starts[d], size, k)
        d += 1
    return picks


def _frame_view(memory: np.ndarray, frame: tuple[int, ...],
                picks: list[tuple[int, int, int]], a: np.ndarray,
                dims: list[int], piece: Callable[[np.ndarray, int, int], Tensor]) -> Tensor:
    """The tensor: the frame rows that `a` touches are the storage, sliced and arranged as `a`."""
    first, rows, _ = picks[0]
    rows = (rows - 1) * picks[0][2] + 1
    row = math.prod(frame[1:])
    base = piece(memory, first * row, (first + rows) * row)
    picks = [(0, n, k) if d == 0 else (start, n, k) for d, (start, n, k) in enumerate(picks)]
    v = base.view((rows,) + tuple(frame[1:]))[tuple(slice(start, start + (n - 1) * k + 1, k) for start, n, k in picks)]
    v = v.view(tuple(n for _, n, _ in picks if n > 1))
    order = sorted(range(len(dims)), key=lambda i: dims[i])      # frame order -> a's dim order
    if order != list(range(len(dims))):
        v = v.permute(tuple(order))
    kept = tuple(a.shape[d] if d in dims else 1 for d in range(a.ndim))
    if tuple(v.shape) != kept:
        v = v.view(kept)
    return v.expand(a.shape) if kept != a.shape else v


def _typed_constructor(dtype: D.DType, name: str) -> Callable[..., Tensor]:
    def make_tensor(*args: Any, device: DeviceLike | None = None) -> Tensor:
        return _placed(Tensor._from_array(legacy_constructor_array(args, dtype)), device)
    make_tensor.__name__ = name
    return make_tensor


FloatTensor = _typed_constructor(D.float32, "FloatTensor")
DoubleTensor = _typed_constructor(D.float64, "DoubleTensor")
LongTensor = _typed_constructor(D.int64, "LongTensor")
IntTensor = _typed_constructor(D.int32, "IntTensor")
ByteTensor = _typed_constructor(D.uint8, "ByteTensor")
BoolTensor = _typed_constructor(D.bool_, "BoolTensor")


def _filled(size: Sequence[Any], value: Scalar | None, dtype: DTypeLike | None, device: DeviceLike | None,
            requires_grad: bool) -> Tensor:
    """A new tensor of `value` everywhere (None: uninitialised memory, as PyTorch's empty: its
    first write, usually an init function's, is what touches the pages)."""
    dt = D.as_dtype(dtype) if dtype is not None else D.get_default_dtype()
    a = aligned_empty(_sizes(size), dt.np)
    if value is not None:
        a.fill(D.to_storage(value, dt) if dt.is_storage_float else value)
    t = Tensor._from_array(a, dtype=dt)
    if requires_grad:
        t.requires_grad_(True)
    return _placed(t, device)


def zeros(*size: SizeLike, dtype: DTypeLike | None = None, device: DeviceLike | None = None,
          requires_grad: bool = False) -> Tensor:
    return _filled(size, 0, dtype, device, requires_grad)


def ones(*size: SizeLike, dtype: DTypeLike | None = None, device: DeviceLike | None = None,
         requires_grad: bool = False) -> Tensor:
    return _filled(size, 1, dtype, device, requires_grad)


def empty(*size: SizeLike, dtype: DTypeLike | None = None, device: DeviceLike | None = None,
          requires_grad: bool = False) -> Tensor:
    return _filled(size, None, dtype, device, requires_grad)


def full(size: SizeLike, fill_value: Scalar, dtype: DTypeLike | None = None, device: DeviceLike | None = None,
         requires_grad: bool = False) -> Tensor:
    if dtype is None:
        dtype = D.scalar_dtype(fill_value)
    return _filled((size,) if isinstance(size, builtins.int) else tuple(size), fill_value, dtype, device,
                   requires_grad)


def _like(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def like(t: Tensor, dtype: DTypeLike | None = None, device: DeviceLike | None = None, requires_grad: bool = False,
             **kw: Any) -> Tensor:
        return fn(tuple(t.shape), dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad, **kw)
    return like


zeros_like, ones_like, empty_like = _like(zeros), _like(ones), _like(empty)


def full_like(t: Tensor, fill_value: Scalar, dtype: DTypeLike | None = None, device: DeviceLike | None = None,
              requires_grad: bool = False) -> Tensor:
    return full(tuple(t.shape), fill_value, dtype=dtype or t.dtype, device=device, requires_grad=requires_grad)


def _random(size: Sequence[Any], dtype: DTypeLike | None, device: DeviceLike | None, requires_grad: bool,
            generator: Generator | None, draw: Callable[..., np.ndarray]) -> Tensor:
    dt = D.as_dtype(dtype) if dtype is not None else D.get_default_dtype()
    shape = _sizes(size)
    if trace_hooks.active():    # inside @compile: new numbers on every call
        lazy = _rng.rand_tensor if draw is _rng.uniform else _rng.randn_tensor
        return lazy(shape, dt, generator)
    values = draw(math.prod(shape), dt.host, generator, **_digits(dt, draw)).reshape(shape)
    if values.dtype != dt.np or dt.is_storage_float:     # the draws are aligned and fresh: kept as they are
        values = _aligned_copy(values, dt)
    t = Tensor._from_array(values, dtype=dt)
    if requires_grad:
        t.requires_grad_(True)
    return _placed(t, device)


def _digits(dt: D.DType, draw: Callable[..., np.ndarray]) -> dict:
    """Uniform draws of a 16-bit float keep as many bits as its significand (exact, below 1),
    as the IR's rand does; bfloat16's are drawn as float32 values."""
    return {"digits": 8} if dt is D.bfloat16 and draw is _rng.uniform else {}


def rand(*size: SizeLike, dtype: DTypeLike | None = None, device: DeviceLike | None = None,
         requires_grad: bool = False, generator: Generator | None = None) -> Tensor:
    return _random(size, dtype, device, requires_grad, generator, _rng.uniform)


def randn(*size: SizeLike, dtype: DTypeLike | None = None, device: DeviceLike | None = None,
          requires_grad: bool = False, generator: Generator | None = None) -> Tensor:
    return _random(size, dtype, device, requires_grad, generator, _rng.normal)


def rand_like(t: Tensor, dtype: DTypeLike | None = None, device: DeviceLike | None = None) -> Tensor:
    return rand(tuple(t.shape), dtype=dtype or t.dtype, device=device)


def randn_like(t: Tensor, dtype: DTypeLike | None = None, device: DeviceLike | None = None) -> Tensor:
    return randn(tuple(t.shape), dtype=dtype or t.dtype, device=device)


def randint(*args: Any, low: int | None = None, high: int | None = None, size: SizeLike | None = None,
            dtype: DTypeLike | None = None, device: DeviceLike | None = None, requires_grad: bool = False,
            generator: Generator | None = None) -> Tensor:
    """PyTorch's randint(high, size) and randint(low, high, size): integers in [low, high),
    int64 unless `dtype` says otherwise."""
    low, high, size = _rng.randint_args(args, low, high, size)
    shape = _sizes((size,))
    dt = D.as_dtype(dtype) if dtype else D.int64
    if requires_grad and not dt.is_floating_point:
        raise RuntimeError("Only Tensors of floating point and complex dtype can require gradients")
    u = _rng.uniform(math.prod(shape), np.float64, generator)
    values = (low + np.floor(u * (high - low))).astype(np.int64).reshape(shape)
    t = Tensor._from_array(_aligned_copy(values, dt), dtype=dt)
    if requires_grad:
        t.requires_grad_(True)
    return _placed(t, device)


def randperm(n: int, dtype: DTypeLike | None = None, device: DeviceLike | None = None,
             generator: Generator | None = None) -> Tensor:
    keys = _rng.uniform(n, np.float64, generator)
    dt = D.as_dtype(dtype) if dtype else D.int64
    return _placed(Tensor._from_array(_aligned_copy(np.argsort(keys, kind="stable"), dt), dtype=dt), device)


def normal(mean: Tensor | float = 0.0, std: Tensor | float = 1.0, size: Sequence[int] | None = None,
           generator: Generator | None = None, dtype: DTypeLike | None = None,
           device: DeviceLike | None = None) -> Tensor:
    m: Any = mean      # Any: Tensor's operators forward untyped arguments
    s: Any = std
    if isinstance(m, Tensor) or isinstance(s, Tensor):
        shape = (m if isinstance(m, Tensor) else s).shape
        return m + s * randn(tuple(shape), generator=generator)
    return m + s * randn(*(size or ()), dtype=dtype, device=device, generator=generator)


def arange(start: Scalar | Tensor, end: Scalar | Tensor | None = None, step: Scalar | Tensor = 1,
           dtype: DTypeLike | None = None, device: DeviceLike | None = None, requires_grad: bool = False) -> Tensor:
    if end is None:
        start, end = 0, start
    values = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if dtype is None:
        dtype = D.get_default_dtype() if any(isinstance(v, builtins.float) for v in values) else D.int64
    dt = D.as_dtype(dtype)
    start, end, step = values
    n = builtins.max(0, math.ceil((end - start) / step))
    a = np.arange(n, dtype=np.float64) * step + start if dt.is_floating_point else \
        np.arange(n, dtype=np.int64) * builtins.int(step) + builtins.int(start)
    t = Tensor._from_array(_aligned_copy(a, dt), dtype=dt)
    if requires_grad:
        t.requires_grad_(True)
    return _placed(t, device)


def linspace(start: float, end: float, steps: int, dtype: DTypeLike | None = None, device: DeviceLike | None = None,
             requires_grad: bool = False) -> Tensor:
    """PyTorch's linspace: the first half counts up from start, the second down from end."""
    dt = D.as_dtype(dtype) if dtype is not None else D.get_default_dtype()
    if dt.is_storage_float:
        values = _linspace_16(start, end, steps, dt)
    else:
        work = dt.np if dt.is_floating_point else np.dtype(np.float64)
        i = np.arange(steps, dtype=work)
        if steps == 1:
            values = np.array([start], dtype=work)
        else:
            step = (work.type(end) - work.type(start)) / work.type(steps - 1)
            half = steps // 2
            values = np.where(i < half, work.type(start) + step * i, work.type(end) - step * (steps - 1 - i))
    t = Tensor._from_array(_aligned_copy(values, dt), dtype=dt)
    if requires_grad:
        t.requires_grad_(True)
    return _placed(t, device)


def _linspace_16(start: float, end: float, steps: int, dt: D.DType) -> np.ndarray:
    """linspace in a 16-bit dtype's own arithmetic, as PyTorch's kernel: every operation on
    float32 values rounded to the dtype, integer counts converted to it before they multiply."""
    def r(v: Any) -> np.ndarray:
        return D.round_to(v, dt)
    if steps == 1:
        return r(np.float32(start)).reshape(1)
    i = np.arange(steps, dtype=np.int64)
    lo, hi = r(np.float32(start)), r(np.float32(end))
    step = r(r(hi - lo) / r(np.float32(steps - 1)))
    return np.where(i < steps // 2, r(lo + r(step * r(i))), r(hi - r(step * r(steps - 1 - i))))


def eye(n: int, m: int | None = None, dtype: DTypeLike | None = None, device: DeviceLike | None = None,
        requires_grad: bool = False) -> Tensor:
    dt = D.as_dtype(dtype) if dtype is not None else D.get_default_dtype()
    t = Tensor._from_array(_aligned_copy(np.eye(n, m if m is not None else n), dt), dtype=dt)
    if requires_grad:
        t.requires_grad_(True)
    return _placed(t, device)


def iota(shape: Sequence[int], axis: int, dtype: D.DType | None = None, device: Any = None) -> Tensor:
    """Lazy index values along `axis` (an IR iota node: free inside a fused kernel), computed
    on `device` (a device object, None: the CPU)."""
    return Tensor._from_value(iota_node(shape, axis, dtype or D.int64, device))


def manual_seed(seed: int) -> Generator:
    return _rng.manual_seed(seed)

