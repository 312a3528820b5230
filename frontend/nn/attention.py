"""Attention, as PyTorch's `torch.nn.functional.scaled_dot_product_attention`, and the small
tensor helpers the attention, transformer and recurrent layers share.

`scaled_dot_product_attention` is a composition of tensor ops, so autograd and `@compile` need
nothing of their own. Its semantics are PyTorch 2.13's:

- a boolean `attn_mask` says where to attend (True), a float one is added to the scores; both
  broadcast against (..., L, S);
- `is_causal` masks the scores above the diagonal, aligned at the top left as PyTorch's
  (query i attends keys 0..i, also when L != S); it is built from two `iota`s compared, free
  inside the fused kernel (no host work, nothing to upload);
- a row whose scores are all -inf after masking (every key masked) gives 0, not the NaN of a
  plain softmax: PyTorch's `_safe_softmax`, which every CPU backend of 2.13 applies. Its
  gradient is 0 too;
- `is_causal` with an `attn_mask` raises, as PyTorch's documentation and its math backend do.

`functional.py` re-exports it as `F.scaled_dot_product_attention`; this module therefore
imports nothing of `functional` (the frontend has no import cycles): dropout on the attention
weights draws its mask from the same lazy Philox stream as `F.dropout`.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .. import dtypes as D
from ..autograd.grad_mode import no_grad
from ..creation import iota
from ..ops import amax, eq, exp, where
from ..ops import sum as _sum
from ..random import rand_tensor

if TYPE_CHECKING:
    from ..tensor import Tensor

_C_NAMES = {"float32": "float", "float64": "double", "int64": "long", "int32": "int", "bool": "bool",
            "uint8": "unsigned char", "float16": "c10::Half", "bfloat16": "c10::BFloat16"}


def _c_name(dtype: D.DType) -> str:
    """A dtype as PyTorch's C++ errors name it (float, double, long, ...)."""
    return _C_NAMES.get(dtype.name, dtype.name)


def _device_of(t: Tensor) -> object:
    """`t`'s device as the lazy layer places values (None for the CPU)."""
    return None if t.device.type == "cpu" else t.device


# ---------------------------------------------------------------- tensor helpers


def _causal_mask(rows: int, cols: int, device: object = None) -> Tensor:
    """(rows, cols) bool, True on and below the diagonal (query i attends keys 0..i): two iotas
    compared, no host work."""
    return iota((rows, cols), 0, D.int64, device) >= iota((rows, cols), 1, D.int64, device)


def _repeat_heads(t: Tensor, repeats: int) -> Tensor:
    """Each head (dim -3) of `t` repeated `repeats` times in place (grouped-query attention)."""
    return t if repeats == 1 else t.repeat_interleave(repeats, dim=-3)


def _safe_softmax(scores: Tensor) -> Tensor:
    """Softmax over the last dim, 0 for a row that is all -inf (PyTorch's _safe_softmax): the
    max is taken as 0 there and the sum as 1, so neither the value nor the gradient is NaN."""
    top = amax(scores, -1, keepdim=True).detach()
    top = where(eq(top, -math.inf), 0.0, top)
    e = exp(scores - top)
    total = _sum(e, -1, keepdim=True)
    return e / where(eq(total, 0.0), 1.0, total)


def _dropout_weights(weights: Tensor, p: float) -> Tensor:
    """Zero each weight with probability p, scale the rest by 1 / (1 - p) (F.dropout in
    training mode; the mask from the lazy Philox stream, drawn inside the fused kernel)."""
    if p == 0.0:
        return weights
    with no_grad():
        if p >= 1.0:
            keep = weights * 0.0
        else:
            u = rand_tensor(tuple(weights.shape), weights.dtype)
            keep = where(u < 1.0 - p, 1.0 / (1.0 - p), 0.0)
    return weights * keep


# ---------------------------------------------------------------- attention


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(query @ key^T * scale + mask) @ value over shapes (..., L, E), (..., S, E),
    (..., S, Ev): PyTorch's, with dropout_p applied to the attention weights (always, as
    PyTorch's functional form: pass 0.0 in evaluation)."""
    if query.dim() < 2 or key.dim() < 2 or value.dim() < 2:
        raise RuntimeError("Expected query, key, and value to all be  at least 2 dimensional, but got query.dim: "
                           f"{query.dim()} key.dim: {key.dim()} and value.dim: {value.dim()} instead.")
    if not (query.dtype is key.dtype is value.dtype):
        raise RuntimeError("Expected query, key, and value to have the same dtype, but got query.dtype: "
                           f"{_c_name(query.dtype)} key.dtype: {_c_name(key.dtype)} and value.dtype: "
                           f"{_c_name(value.dtype)} instead.")
    if not query.dtype.is_floating_point:
        raise RuntimeError(f"scaled_dot_product_attention: expected a floating point query, got "
                           f"{_c_name(query.dtype)}")
    if attn_mask is not None and attn_mask.dtype is not D.bool_ and not attn_mask.dtype.is_floating_point:
        raise RuntimeError("Expected attn_mask dtype to be bool or float or to match query dtype, but got "
                           f"attn_mask.dtype: {_c_name(attn_mask.dtype)} and  query.dtype: "
                           f"{_c_name(query.dtype)} instead.")
    if is_causal and attn_mask is not None:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {dropout_p}")
    if enable_gqa and query.dim() >= 3 and key.dim() >= 3:
        q_heads, kv_heads = query.shape[-3], key.shape[-3]
        if kv_heads == 0 or q_heads % kv_heads != 0 or value.shape[-3] != kv_heads:
            raise RuntimeError("Number of heads in key and value must divide the number of heads in query")
        key, value = _repeat_heads(key, q_heads // kv_heads), _repeat_heads(value, q_heads // kv_heads)
    length, source = query.shape[-2], key.shape[-2]
    factor = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * factor
    if is_causal:
        scores = where(_causal_mask(length, source, _device_of(query)), scores, -math.inf)
    elif attn_mask is not None:
        if attn_mask.dtype is D.bool_:
            scores = where(attn_mask, scores, -math.inf)
        else:
            scores = scores + attn_mask.to(query.dtype)
    weights = _dropout_weights(_safe_softmax(scores), dropout_p)
    return weights @ value
