"""`F.interpolate` ('nearest', 'nearest-exact', 'linear', 'bilinear', 'trilinear', 'bicubic',
'area'; align_corners; size or scale_factor), as PyTorch computes it.

Resampling is separable: each spatial axis in turn is a gather of source rows (index_select
with int64 indices worked out on the host from the static sizes, in PyTorch's arithmetic and
precision) and, for the linear modes, a blend of two gathered rows with per-row weights. So
the result fuses, compiles and differentiates (the gradient scatters back through the
gathers) without a rule of its own. 'bicubic' blends four gathered rows with Keys' cubic
weights (A = -0.75), the rows clamped at the borders, as PyTorch's kernel. 'area' is
adaptive average pooling to the output size, one axis at a time (PyTorch's definition).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import indexing, ops
from ..creation import tensor as _tensor
from .convolution import adaptive_avg_along

if TYPE_CHECKING:
    from ..tensor import Tensor

_LINEAR = {"linear": 3, "bilinear": 4, "trilinear": 5, "bicubic": 4}     # interpolating modes: input rank
CUBIC_A = -0.75


def _spatial(value: Any, k: int, name: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != k:
            raise ValueError(f"Input and {name} must have the same number of spatial dimensions, but got input with "
                             f"spatial dimensions of {k} and {name} of {list(value)}. Please provide input tensor in "
                             f"(N, C, d1, d2, ...,dK) format and {name} in (o1, o2, ...,oK) format.")
        return list(value)
    return [value] * k


def _output_sizes(input: Tensor, size: Any, scale_factor: Any, recompute: Any) -> tuple[list[int], list]:
    """Output sizes and the scales PyTorch's kernels use (None: in/out)."""
    shape = tuple(input.shape)
    k = len(shape) - 2
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        if isinstance(size, (list, tuple)) and len(size) != k:
            raise ValueError(f"Input and output must have the same number of spatial dimensions, but got input with "
                             f"spatial dimensions of {list(shape[2:])} and output size of {list(size)}. Please "
                             f"provide input tensor in (N, C, d1, d2, ...,dK) format and output size in "
                             f"(o1, o2, ...,oK) format.")
        sizes = [int(s) for s in _spatial(size, k, "output size")]
        return sizes, [None] * k
    if scale_factor is None:
        raise ValueError("either size or scale_factor should be defined")
    if isinstance(scale_factor, (list, tuple)) and len(scale_factor) != k:
        raise ValueError(f"Input and scale_factor must have the same number of spatial dimensions, but got input "
                         f"with spatial dimensions of {list(shape[2:])} and scale_factor of shape "
                         f"{list(scale_factor)}. Please provide input tensor in (N, C, d1, d2, ...,dK) format and "
                         f"scale_factor in (s1, s2, ...,sK) format.")
    factors = [float(f) for f in _spatial(scale_factor, k, "scale_factor")]
    sizes = [int(math.floor(float(n) * f)) for n, f in zip(shape[2:], factors)]
    return sizes, ([None] * k if recompute else factors)


def _nearest_index(n_in: int, n_out: int, scale: float | None, exact: bool = False) -> np.ndarray:
    """PyTorch's nearest_idx: floor(dst * scale) in float32, clamped to the last source row
    ('nearest-exact': floor((dst + 0.5) * scale), the nearest source centre)."""
    if n_out == n_in:
        return np.arange(n_out, dtype=np.int64)
    if n_out == 2 * n_in:
        return np.arange(n_out, dtype=np.int64) >> 1
    s = np.float32(1.0 / scale if scale is not None and scale > 0 else n_in / n_out)
    dst = np.arange(n_out, dtype=np.float32)
    src = np.floor((dst + np.float32(0.5) if exact else dst) * s).astype(np.int64)
    return np.minimum(src, n_in - 1)


def _linear_weights(n_in: int, n_out: int, scale: float | None, align_corners: bool,
                    np_dtype: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i0, i1, lambda1) per output row, as PyTorch's area_pixel_compute_source_index."""
    dst = np.arange(n_out).astype(np_dtype)
    if align_corners:
        s = np_dtype((n_in - 1) / (n_out - 1)) if n_out > 1 else np_dtype(0)
        src = s * dst
    else:
        s = np_dtype(1.0 / scale if scale is not None and scale > 0 else n_in / n_out)
        src = np.maximum(s * (dst + np_dtype(0.5)) - np_dtype(0.5), np_dtype(0))
    i0 = src.astype(np.int64)
    i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
    lam = (src - i0.astype(np_dtype)).astype(np_dtype)
    return i0, i1, lam


def _cubic_weights(n_in: int, n_out: int, scale: float | None, align_corners: bool,
                   np_dtype: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Four (source row, weight) pairs per output row, as PyTorch's bicubic kernel: rows
    floor(src) - 1 ... floor(src) + 2 clamped to the input, Keys' weights of the fraction."""
    dst = np.arange(n_out).astype(np_dtype)
    if align_corners:
        src = (np_dtype((n_in - 1) / (n_out - 1)) if n_out > 1 else np_dtype(0)) * dst
    else:
        s = np_dtype(1.0 / scale if scale is not None and scale > 0 else n_in / n_out)
        src = s * (dst + np_dtype(0.5)) - np_dtype(0.5)        # not clamped at 0, unlike linear
    base = np.floor(src)
    t = (src - base).astype(np_dtype)
    a = np_dtype(CUBIC_A)

    def near(x):            # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):             # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    one = np_dtype(1)
    weights = [far(t + one), near(t), near(one - t), far(one - t + one)]
    rows = [np.clip(base.astype(np.int64) + k - 1, 0, n_in - 1) for k in range(4)]
    return rows, [w.astype(np_dtype) for w in weights]


def _along(v: np.ndarray, axis: int, rank: int) -> np.ndarray:
    return v.reshape([-1 if d == axis else 1 for d in range(rank)])


def interpolate(input: Tensor, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False) -> Tensor:
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: "
                             "linear | bilinear | bicubic | trilinear")
    elif mode not in _LINEAR:
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.dim()}D) "
                                  f"for the modes: nearest | linear | bilinear | bicubic | trilinear | area | "
                                  f"nearest-exact (got {mode})")
    if antialias:
        raise NotImplementedError("fusegrad: interpolate(antialias=True) is not supported")
    if input.dim() not in (3, 4, 5):
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.dim()}D) "
                                  f"for the modes: nearest | linear | bilinear | bicubic | trilinear | area | "
                                  f"nearest-exact (got {mode})")
    if mode in _LINEAR and input.dim() != _LINEAR[mode]:
        need = _LINEAR[mode]
        raise NotImplementedError(f"Got {input.dim()}D input, but {mode} mode needs {need}D input")
    sizes, scales = _output_sizes(input, size, scale_factor, recompute_scale_factor)
    rank = input.dim()
    if mode in _LINEAR and not input.dtype.is_floating_point:
        raise NotImplementedError(f"\"upsample_{mode}{rank - 2}d_out_frame\" not implemented for "
                                  f"'{ops._torch_name(input.dtype)}'")
    if mode == "area" and not input.dtype.is_floating_point:
        raise NotImplementedError(f"\"adaptive_avg_pool{rank - 2}d\" not implemented for "
                                  f"'{ops._torch_name(input.dtype)}'")
    out = input
    for k, (n_out, scale) in enumerate(zip(sizes, scales)):
        axis = k + 2
        n_in = input.shape[axis]
        if n_out <= 0 or n_in <= 0:
            raise RuntimeError(f"Input and output sizes should be greater than 0, but got input ({n_in}) and "
                               f"output ({n_out})")
        if mode == "area":
            out = adaptive_avg_along(out, axis, n_out)
            continue
        if mode in ("nearest", "nearest-exact"):
            idx = _nearest_index(n_in, n_out, scale, exact=mode == "nearest-exact")
            if not np.array_equal(idx, np.arange(n_in)) or n_out != n_in:
                out = indexing.index_select(out, axis, _tensor(idx, device=input.device))
            continue
        if mode == "bicubic":
            rows, weights = _cubic_weights(n_in, n_out, scale, bool(align_corners), np.dtype(input.dtype.np).type)
            terms = [ops.mul(indexing.index_select(out, axis, _tensor(r, device=input.device)),
                             _tensor(_along(w, axis, rank), device=input.device)) for r, w in zip(rows, weights)]
            out = ops.add(ops.add(terms[0], terms[1]), ops.add(terms[2], terms[3]))
            continue
        i0, i1, lam = _linear_weights(n_in, n_out, scale, bool(align_corners), np.dtype(input.dtype.np).type)
        x0 = indexing.index_select(out, axis, _tensor(i0, device=input.device))
        x1 = indexing.index_select(out, axis, _tensor(i1, device=input.device))
        l1 = _tensor(_along(lam, axis, rank), device=input.device)
        l0 = _tensor(_along((1 - lam).astype(lam.dtype), axis, rank), device=input.device)
        out = ops.add(ops.mul(x0, l0), ops.mul(x1, l1))
    if out is input or out._base is not None:      # a fresh value (not a view), to carry the grad_fn name
        out = ops.prim("reshape", [out], {"shape": tuple(out.shape)})
    name = {"nearest": "UpsampleNearest", "nearest-exact": "UpsampleNearestExact", "linear": "UpsampleLinear",
            "bilinear": "UpsampleBilinear", "trilinear": "UpsampleTrilinear", "bicubic": "UpsampleBicubic",
            "area": "AdaptiveAvgPool"}[mode]
    return ops.named(out, f"{name}{rank - 2}DBackward0")
