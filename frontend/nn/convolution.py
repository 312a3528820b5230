"""Convolution and pooling, as PyTorch's F.conv1d, F.conv2d, F.conv_transpose2d, F.max_pool1d,
F.max_pool2d, F.avg_pool2d and F.adaptive_avg_pool2d.

All of them read their input through one primitive, `window` (compiler/ir/ops.py): the view
x[..., H, W] -> [..., OH, OW, KH, KW] of its sliding windows, index arithmetic that fuses into
whatever consumes it (compiler/view.py). Padding is the `pad` view (zeros; -inf for max
pooling by a `where` against a padded mask).

- a convolution is a contraction of the window view with the weight: the windows, laid out
  as the rows of a [N*OH*OW, C/g*KH*KW] matrix (one per group), times the weight as a
  [C/g*KH*KW, OC/g] matrix, one `matmul` the compiler lowers to its GEMM kernels, with the
  bias (and any activation that follows) fused as the GEMM's epilogue. Its gradients come
  from the primitives' VJPs: the weight gradient is a matmul of the cotangent with the
  windows, the input gradient a matmul followed by the window VJP (each input element adds
  up the windows that read it: col2im, one fused kernel);
- a transposed convolution is exactly that input gradient of a convolution: a matmul of the
  input with the weight, then the window VJP onto the (dilated) output grid;
- pooling is a reduction over the window axes, fused with the producers of its input (the
  ReLU before a max pool is computed inside the pooling kernel). Max pooling sends the
  gradient to the first maximum of each window (PyTorch's argmax) and can return its index;
  average pooling divides by a count that is itself a fused window sum of a padded mask.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import dtypes as D
from .. import ops
from ..autograd.grad_mode import no_grad
from ..compiler.ir.ops import window_out_sizes
from ..compiler.passes.autodiff import vjp
from ..creation import iota
from ..shape_ops import cat

if TYPE_CHECKING:
    from ..tensor import Tensor

def _ntuple(value: Any, n: int, name: str, op: str) -> tuple[int, ...]:
    """An int or a sequence of n ints as a tuple of n ints (PyTorch's _ntuple, with its error)."""
    if isinstance(value, int):
        return (value,) * n
    values = tuple(int(v) for v in value)
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise RuntimeError(f"expected {name} to be a single integer value or a list of {n} values to match the "
                           f"{op} dimensions, but got {name}={list(values)}")
    return values


def _size(t: Tensor) -> list[int]:
    return list(t.shape)


def _window(x: Tensor, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]) -> Tensor:
    """x[..., H..] -> [..., O.., K..]: the windows of the trailing len(kernel) dims (a view)."""
    return ops.prim("window", [x], {"kernel": tuple(kernel), "strides": tuple(strides),
                                    "dilations": tuple(dilations)})


def _pad(x: Tensor, low: Sequence[int], high: Sequence[int]) -> Tensor:
    """x with zeros before (low) and after (high) each of its trailing len(low) dims (a view)."""
    lead = x.dim() - len(low)
    if not any(low) and not any(high):
        return x
    return ops.prim("pad", [x], {"low": (0,) * lead + tuple(low), "high": (0,) * lead + tuple(high)})


def _ones(shape: Sequence[int], dtype: Any, device: Any) -> Tensor:
    """Lazy ones of `shape` (a broadcast constant, no buffer): computed inside the kernel that reads them."""
    one = ops.eq(iota((1,) * len(shape), 0, D.int64, device), 0)
    return (one if dtype.is_bool else one.to(dtype)).expand(tuple(shape))


def _unbatched(input: Tensor, nd: int, op: str) -> bool:
    """Whether `input` is an unbatched (C, spatial...) tensor; RuntimeError unless it is that or batched."""
    if input.dim() not in (nd + 1, nd + 2):
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {op}, but got input "
                           f"of size: {_size(input)}")
    return input.dim() == nd + 1


# ---------------------------------------------------------------- convolution

def _conv_padding(padding: Any, nd: int, kernel: tuple, dilation: tuple, stride: tuple,
                  op: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(low, high) zero padding per spatial dim for PyTorch's padding argument: ints, 'valid'
    or 'same' (the odd element of an even total goes after, as PyTorch's)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * nd, (0,) * nd
        if padding != "same":
            raise RuntimeError(f"Invalid padding string: '{padding}'")
        if any(s != 1 for s in stride):
            raise RuntimeError("padding='same' is not supported for strided convolutions")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple(t // 2 for t in total), tuple(t - t // 2 for t in total)
    pad = _ntuple(padding, nd, "padding", op)
    if any(p < 0 for p in pad):
        raise RuntimeError("negative padding is not supported")
    return pad, pad


def _check_conv_args(input: Tensor, weight: Tensor, bias: Tensor | None, groups: int, nd: int,
                     transposed: bool) -> None:
    if weight.dim() != nd + 2:
        raise RuntimeError(f"Expected {nd + 2}-dimensional weight for {nd + 2}-dimensional input {_size(input)}, "
                           f"but got {weight.dim()}-dimensional weight of size {_size(weight)} instead")
    if groups < 1:
        raise RuntimeError("non-positive groups is not supported")
    if weight.shape[0] % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
                           f"but got weight of size [{_size(weight)}] instead")
    channels = weight.shape[0] if transposed else weight.shape[1] * groups
    if input.shape[1] != channels:
        what = f"Given transposed=1, weight of size {_size(weight)}" if transposed else \
            f"Given groups={groups}, weight of size {_size(weight)}"
        raise RuntimeError(f"{what}, expected input{_size(input)} to have {channels} channels, but got "
                           f"{input.shape[1]} channels instead")
    out_channels = weight.shape[1] * groups if transposed else weight.shape[0]
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != out_channels):
        raise RuntimeError(f"Given weight of size {_size(weight)}, expected bias to be 1-dimensional with "
                           f"{out_channels} elements, but got bias of size {_size(bias)} instead")


def _check_stride_dilation(stride: tuple, dilation: tuple) -> None:
    if any(s < 1 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(d < 1 for d in dilation):
        raise RuntimeError("dilation should be greater than zero")


def _convnd(input: Tensor, weight: Tensor, bias: Tensor | None, stride: Any, padding: Any, dilation: Any,
            groups: int, nd: int, op: str) -> Tensor:
    unbatched = _unbatched(input, nd, op)
    x = input.unsqueeze(0) if unbatched else input
    _check_conv_args(x, weight, bias, groups, nd, transposed=False)
    kernel = tuple(weight.shape[2:])
    stride, dilation = _ntuple(stride, nd, "stride", op), _ntuple(dilation, nd, "dilation", op)
    _check_stride_dilation(stride, dilation)
    low, high = _conv_padding(padding, nd, kernel, dilation, stride, op)
    spatial = tuple(x.shape[2:])
    padded = tuple(h + a + b for h, a, b in zip(spatial, low, high))
    if any(p < d * (k - 1) + 1 for p, k, d in zip(padded, kernel, dilation)):
        raise RuntimeError(f"Calculated padded input size per channel: ({' x '.join(map(str, padded))}). Kernel "
                           f"size: ({' x '.join(str(d * (k - 1) + 1) for k, d in zip(kernel, dilation))}). Kernel "
                           f"size can't be greater than actual input size")
    n, c = x.shape[0], x.shape[1]
    oc = weight.shape[0]
    out_sizes = window_out_sizes(padded, kernel, stride, dilation)
    rows = n * math.prod(out_sizes)
    cg, ocg, taps = c // groups, oc // groups, math.prod(kernel)
    windows = _window(_pad(x, low, high), kernel, stride, dilation)        # [N, C, O.., K..]
    # the windows as matrix rows: [G, N*O.., C/g*K..]
    windows = windows.reshape((n, groups, cg) + out_sizes + kernel)
    out_axes = tuple(range(3, 3 + nd))
    k_axes = tuple(range(3 + nd, 3 + 2 * nd))
    cols = windows.permute((1, 0) + out_axes + (2,) + k_axes).reshape(groups, rows, cg * taps)
    w = weight.reshape(groups, ocg, cg * taps).transpose(1, 2)            # [G, C/g*K.., OC/g]
    if groups == 1:
        cols, w = cols.reshape(rows, cg * taps), w.reshape(cg * taps, ocg)
    out = cols @ w                                                       # [G, N*O.., OC/g]
    if bias is not None:
        out = out + (bias if groups == 1 else bias.reshape(groups, 1, ocg))
    # back to [N, OC, O..]
    out = out.reshape((groups, n) + out_sizes + (ocg,))
    out = out.permute((1, 0, 2 + nd) + tuple(range(2, 2 + nd))).reshape((n, oc) + out_sizes)
    if unbatched:
        out = out.squeeze(0)
    return ops.named(out, "ConvolutionBackward0")


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
    """1-D convolution of (N, C, L) or (C, L) input with (OC, C/groups, K) weight, as PyTorch's."""
    return _convnd(input, weight, bias, stride, padding, dilation, groups, 1, "conv1d")


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
    """2-D convolution of (N, C, H, W) or (C, H, W) input with (OC, C/groups, KH, KW) weight, as
    PyTorch's (padding: ints, 'valid' or 'same')."""
    return _convnd(input, weight, bias, stride, padding, dilation, groups, 2, "conv2d")


def _tensor_emit(op: str, *inputs: Any, **attrs: Any) -> Any:
    """A VJP rule's `emit` building differentiable tensors (movement ops and add only)."""
    return ops.prim(op, list(inputs), attrs)


class _Shaped:
    """A shape posing as a value for a VJP rule that reads only shapes."""

    def __init__(self, shape: Sequence[int], dtype: Any):
        self.shape, self.dtype = tuple(shape), dtype


def _conv_transposend(input: Tensor, weight: Tensor, bias: Tensor | None, stride: Any, padding: Any,
                      output_padding: Any, groups: int, dilation: Any, nd: int, op: str) -> Tensor:
    unbatched = _unbatched(input, nd, op)
    x = input.unsqueeze(0) if unbatched else input
    _check_conv_args(x, weight, bias, groups, nd, transposed=True)
    kernel = tuple(weight.shape[2:])
    stride, dilation = _ntuple(stride, nd, "stride", op), _ntuple(dilation, nd, "dilation", op)
    _check_stride_dilation(stride, dilation)
    pad = _ntuple(padding, nd, "padding", op)
    out_pad = _ntuple(output_padding, nd, "output_padding", op)
    if any(p < 0 for p in pad) or any(p < 0 for p in out_pad):
        raise RuntimeError("negative padding is not supported")
    if any(p >= s and p >= d for p, s, d in zip(out_pad, stride, dilation)):
        names = "height width".split() if nd == 2 else ["width"]
        raise RuntimeError("output padding must be smaller than either stride or dilation, but got " + " ".join(
            [f"output_padding_{a}: {v}" for a, v in zip(names, out_pad)] +
            [f"stride_{a}: {v}" for a, v in zip(names, stride)] +
            [f"dilation_{a}: {v}" for a, v in zip(names, dilation)]))
    n, c = x.shape[0], x.shape[1]
    spatial = tuple(x.shape[2:])
    full = tuple((h - 1) * s + d * (k - 1) + 1 for h, s, k, d in zip(spatial, stride, kernel, dilation))
    out_sizes = tuple(f - 2 * p + o for f, p, o in zip(full, pad, out_pad))
    if any(o < 1 for o in out_sizes):
        raise RuntimeError(f"Given input size per channel: ({' x '.join(map(str, spatial))}). Calculated output "
                           f"size per channel: ({' x '.join(map(str, out_sizes))}). Output size is too small")
    cg, oc = c // groups, weight.shape[1] * groups
    ocg, taps, pixels = weight.shape[1], math.prod(kernel), math.prod(spatial)
    # each input pixel's contribution to every window position: [G, N*H.., OC/g*K..]
    rows = x.reshape((n, groups, cg, pixels)).permute(1, 0, 3, 2).reshape(groups, n * pixels, cg)
    w = weight.reshape(groups, cg, ocg * taps)
    if groups == 1:
        rows, w = rows.reshape(n * pixels, cg), w.reshape(cg, ocg * taps)
    cols = rows @ w
    cols = cols.reshape((groups, n) + spatial + (ocg,) + kernel)           # as the windows of the output
    cols = cols.permute((1, 0, 2 + nd) + tuple(range(2, 2 + nd)) + tuple(range(3 + nd, 3 + 2 * nd)))
    cols = cols.reshape((n, oc) + spatial + kernel)
    # the window VJP adds each window position back where it lies in the (uncropped) output
    attrs = {"kernel": kernel, "strides": stride, "dilations": dilation}
    (out,) = vjp(_tensor_emit, "window", attrs, (_Shaped((n, oc) + full, x.dtype),), cols, cols, (True,))
    # crop `padding` from both ends, and add output_padding zeros at the end
    starts = (0, 0) + pad
    stops = (n, oc) + tuple(min(f, p + o) for f, p, o in zip(full, pad, out_sizes))
    if any(pad) or any(a != b for a, b in zip(stops[2:], full)):
        out = ops.prim("slice", [out], {"starts": starts, "stops": stops, "steps": (1,) * (nd + 2)})
    extra = tuple(o - (b - a) for o, a, b in zip(out_sizes, pad, stops[2:]))
    out = _pad(out, (0,) * nd, extra)
    if bias is not None:
        out = out + bias.reshape((oc,) + (1,) * nd)
    if unbatched:
        out = out.squeeze(0)
    return ops.named(out, "ConvolutionBackward0")


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Tensor:
    """2-D transposed convolution (the gradient of conv2d with respect to its input) of
    (N, C, H, W) or (C, H, W) input with (C, OC/groups, KH, KW) weight, as PyTorch's."""
    return _conv_transposend(input, weight, bias, stride, padding, output_padding, groups, dilation, 2,
                             "conv_transpose2d")


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Tensor:
    return _conv_transposend(input, weight, bias, stride, padding, output_padding, groups, dilation, 1,
                             "conv_transpose1d")


# ---------------------------------------------------------------- pooling

def _pool_sizes(sizes: tuple, kernel: tuple, stride: tuple, pad: tuple, dilation: tuple, ceil_mode: bool) -> tuple:
    """PyTorch's pooling_output_shape per dim (ceil_mode: the last window must start inside
    the input or its left padding)."""
    out = []
    for h, k, s, p, d in zip(sizes, kernel, stride, pad, dilation):
        o = (h + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (o - 1) * s >= h + p:
            o -= 1
        out.append(o)
    return tuple(out)


def _pool_args(input: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any, nd: int,
               op: str) -> tuple:
    kernel = _ntuple(kernel_size, nd, "kernel_size", op)
    stride = kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) else \
        _ntuple(stride, nd, "stride", op)
    pad, dilation = _ntuple(padding, nd, "padding", op), _ntuple(dilation, nd, "dilation", op)
    if any(k < 1 for k in kernel):
        raise RuntimeError(f"{op}: kernel_size must be greater than zero, but got {list(kernel)}")
    if any(s < 1 for s in stride):
        raise RuntimeError(f"{op}: stride must be greater than zero, but got {list(stride)}")
    if any(d < 1 for d in dilation):
        raise RuntimeError(f"{op}: dilation must be greater than zero, but got {list(dilation)}")
    for p, k, d in zip(pad, kernel, dilation):
        if p < 0 or p > (d * (k - 1) + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={p}, "
                               f"kernel_size={k} and dilation={d}")
    if input.dim() not in (nd + 1, nd + 2) or input.numel() == 0:
        raise RuntimeError(f"non-empty {nd + 1}D or {nd + 2}D (batch mode) tensor expected for input")
    return kernel, stride, pad, dilation


def _pool_out_sizes(input: Tensor, kernel: tuple, stride: tuple, pad: tuple, dilation: tuple, ceil_mode: bool,
                    nd: int) -> tuple:
    sizes = tuple(input.shape[-nd:])
    out = _pool_sizes(sizes, kernel, stride, pad, dilation, ceil_mode)
    if any(o < 1 for o in out):
        lead = input.shape[-nd - 1]
        raise RuntimeError(f"Given input size: ({'x'.join(map(str, (lead,) + sizes))}). Calculated output size: "
                           f"({'x'.join(map(str, (lead,) + tuple(max(o, 0) for o in out)))}). Output size is too "
                           f"small")
    return out


def _pool_pads(sizes: tuple, out: tuple, kernel: tuple, stride: tuple, pad: tuple, dilation: tuple) -> tuple:
    """(low, high) padding so that the windows of the padded input are exactly `out` per dim
    (ceil mode's last window may reach past the right padding)."""
    high = tuple(max(0, (o - 1) * s + d * (k - 1) + 1 - h - p)
                 for h, o, k, s, p, d in zip(sizes, out, kernel, stride, pad, dilation))
    return pad, high


def _first_windows(w: Tensor, out: tuple, nd: int) -> Tensor:
    """The first `out` windows along each windowed dim of the window view `w` (a slice, when
    the padded input holds more, as it may with ceil mode's extra right padding)."""
    shape = tuple(w.shape)
    lead = len(shape) - 2 * nd
    if shape[lead:lead + nd] == out:
        return w
    stops = shape[:lead] + out + shape[lead + nd:]
    return ops.prim("slice", [w], {"starts": (0,) * len(shape), "stops": stops, "steps": (1,) * len(shape)})


def _lowest(dtype: Any) -> Any:
    if dtype.is_floating_point:
        return -math.inf
    return int(np.iinfo(dtype.np).min) if not dtype.is_bool else False


def _max_poolnd(input: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool,
                return_indices: bool, nd: int, op: str) -> Any:
    kernel, stride, pad, dilation = _pool_args(input, kernel_size, stride, padding, dilation, nd, op)
    sizes = tuple(input.shape[-nd:])
    out = _pool_out_sizes(input, kernel, stride, pad, dilation, ceil_mode, nd)
    low, high = _pool_pads(sizes, out, kernel, stride, pad, dilation)
    x = input
    if any(low) or any(high):    # pad with the lowest value: a padded mask picks x or -inf
        inside = _pad(_ones(tuple(x.shape), D.bool_, x.device), low, high)
        x = ops.where(inside, _pad(x, low, high), _lowest(x.dtype))
    w = _first_windows(_window(x, kernel, stride, dilation), out, nd)     # [..., O.., K..]
    k_axes = tuple(range(w.dim() - nd, w.dim()))
    win_shape = (1,) * (w.dim() - 2 * nd) + tuple(w.shape[w.dim() - 2 * nd:])
    # the first maximum of each window (a NaN counts as one), as PyTorch's argmax
    with no_grad():
        wd = w.detach()
        top = wd.amax(dim=k_axes, keepdim=True)
        hit = ops.logical_or(ops.eq(wd, top), ops.ne(wd, wd))
        tap = _tap_index(win_shape, kernel, x.device)
        first = ops.where(hit, tap, math.prod(kernel)).amin(dim=k_axes, keepdim=True)
        chosen = ops.eq(tap, first)
    values = ops.where(chosen, w, 0.0 if w.dtype.is_floating_point else 0).sum(dim=k_axes)
    if not w.dtype.is_floating_point:
        values = values.to(w.dtype)
    name = "MaxPool2DWithIndicesBackward0" if nd == 2 else "MaxPool1DWithIndicesBackward0"
    values = ops.named(values, name)
    if not return_indices:
        return values
    with no_grad():
        flat = _flat_input_index(win_shape, sizes, kernel, stride, pad, dilation, x.device)
        indices = ops.where(chosen, flat, 0).sum(dim=k_axes)
    return values, indices


def _tap_index(win_shape: tuple, kernel: tuple, device: Any) -> Tensor:
    """The row-major index of each window element within its window, shaped to broadcast
    against the window view."""
    nd = len(kernel)
    rank = len(win_shape)
    tap = None
    for i, k in enumerate(kernel):
        axis = rank - nd + i
        part = iota(tuple(k if a == axis else 1 for a in range(rank)), axis, D.int64, device)
        part = part * math.prod(kernel[i + 1:])
        tap = part if tap is None else tap + part
    assert tap is not None
    return tap


def _flat_input_index(win_shape: tuple, sizes: tuple, kernel: tuple, stride: tuple, pad: tuple,
                      dilation: tuple, device: Any) -> Tensor:
    """For each window element, its row-major position in the unpadded spatial input
    (PyTorch's max pooling indices)."""
    nd = len(kernel)
    rank = len(win_shape)
    flat = None
    for i in range(nd):
        o_axis, k_axis = rank - 2 * nd + i, rank - nd + i
        o = iota(tuple(win_shape[o_axis] if a == o_axis else 1 for a in range(rank)), o_axis, D.int64, device)
        k = iota(tuple(kernel[i] if a == k_axis else 1 for a in range(rank)), k_axis, D.int64, device)
        pos = o * stride[i] + k * dilation[i] - pad[i]
        pos = pos * math.prod(sizes[i + 1:])
        flat = pos if flat is None else flat + pos
    assert flat is not None
    return flat


def max_pool1d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """Max over windows of (N, C, L) or (C, L) input, as PyTorch's."""
    return _max_poolnd(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 1, "max_pool1d")


def max_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """Max over windows of (N, C, H, W) or (C, H, W) input, as PyTorch's (the gradient goes to
    each window's first maximum; return_indices: its position in the flattened H x W input)."""
    return _max_poolnd(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 2, "max_pool2d")


def max_pool1d_with_indices(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
                            dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
    return max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)


def max_pool2d_with_indices(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
                            dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
    return max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)


def _avg_poolnd(input: Tensor, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool,
                count_include_pad: bool, divisor_override: int | None, nd: int, op: str) -> Tensor:
    kernel, stride, pad, dilation = _pool_args(input, kernel_size, stride, padding, 1, nd, op)
    if not input.dtype.is_floating_point:
        raise NotImplementedError(f'"{op}" not implemented for \'{input.dtype}\'')
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    sizes = tuple(input.shape[-nd:])
    out = _pool_out_sizes(input, kernel, stride, pad, dilation, ceil_mode, nd)
    low, high = _pool_pads(sizes, out, kernel, stride, pad, dilation)
    k_axes = tuple(range(input.dim(), input.dim() + nd))
    total = _first_windows(_window(_pad(input, low, high), kernel, stride, dilation), out, nd).sum(dim=k_axes)
    if divisor_override is not None:
        result = total / divisor_override
    else:
        # the count of each window: its elements inside the input (and, with count_include_pad,
        # inside the padding, but not past it: ceil mode's overhang never counts), a window
        # sum of a padded constant that fuses into the same kernel
        counted = tuple(h + 2 * p for h, p in zip(sizes, pad)) if count_include_pad else sizes
        inner = (0,) * nd if count_include_pad else low
        outer = tuple(hi - p for hi, p in zip(high, pad)) if count_include_pad else high
        mask_shape = tuple(input.shape[:-nd]) + counted       # the input's lead dims: fuses with the sum
        mask = _pad(_ones(mask_shape, input.dtype, input.device), inner, tuple(max(o, 0) for o in outer))
        if any(o < 0 for o in outer):        # the windows reach only part of the right padding
            stops = tuple(mask.shape[:-nd]) + tuple(m + min(o, 0) for m, o in zip(mask.shape[-nd:], outer))
            mask = ops.prim("slice", [mask], {"starts": (0,) * mask.dim(), "stops": stops,
                                              "steps": (1,) * mask.dim()})
        count = _first_windows(_window(mask, kernel, stride, dilation), out, nd).sum(dim=k_axes)
        result = total / count
    name = "AvgPool2DBackward0" if nd == 2 else "AvgPool1DBackward0"
    return ops.named(result, name)


def avg_pool1d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    return _avg_poolnd(input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1, "avg_pool1d")


def avg_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean over windows of (N, C, H, W) or (C, H, W) input, as PyTorch's: padding counts in the
    divisor with count_include_pad (ceil mode's overhang never does); divisor_override replaces it."""
    return _avg_poolnd(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, 2,
                       "avg_pool2d")


def adaptive_avg_along(x: Tensor, axis: int, size: int) -> Tensor:
    """Mean over PyTorch's adaptive bins along `axis`: bin i covers [floor(i H / O), ceil((i + 1) H / O))."""
    h = x.shape[axis]
    if size == h:
        return x
    rank = x.dim()
    if h % size == 0:                        # equal bins: one window reduction
        k = h // size
        moved = x.transpose(axis, rank - 1) if axis != rank - 1 else x
        pooled = _window(moved, (k,), (k,), (1,)).mean(dim=rank)
        return pooled.transpose(axis, rank - 1) if axis != rank - 1 else pooled
    pieces = []
    for i in range(size):
        start, stop = (i * h) // size, -(-((i + 1) * h) // size)
        pieces.append(x.narrow(axis, start, stop - start).mean(dim=axis, keepdim=True))
    return cat(pieces, axis)


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """Mean over adaptive bins of (N, C, H, W) or (C, H, W) input, as PyTorch's (None in
    output_size keeps that dim)."""
    if input.dim() not in (3, 4):
        raise RuntimeError(f"adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got {_size(input)}")
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    sizes = tuple(input.shape[-2:])
    out = tuple(h if o is None else int(o) for h, o in zip(sizes, output_size))
    if len(out) != 2:
        raise RuntimeError(f"adaptive_avg_pool2d: output_size must be 2, got {len(out)}")
    if any(o < 0 for o in out):
        raise RuntimeError(f"adaptive_avg_pool2d: elements of output_size must be greater than or equal to 0 but "
                           f"received {list(out)}")
    if not input.dtype.is_floating_point:
        raise NotImplementedError(f"\"adaptive_avg_pool2d\" not implemented for '{input.dtype}'")
    y = adaptive_avg_along(input, input.dim() - 1, out[1])
    y = adaptive_avg_along(y, input.dim() - 2, out[0])
    if y is input:
        y = input * 1.0
    return ops.named(y, "AdaptiveAvgPool2DBackward0")
