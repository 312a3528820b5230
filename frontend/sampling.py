"""`multinomial`: sampling category indices from rows of weights, on the lazy random stream.

The uniforms are an IR `rand` node on the Philox stream of random.py (same numbers as
`fusegrad.rand` would draw at those counters, reproducible under `manual_seed`; inside
`@fusegrad.compile` the generator's state tensor advances in place, so every call draws anew).

- With replacement: inverse CDF. The cumulative weights c (float64, sorting.cumsum) and one
  uniform u per sample give the smallest i with c_i > u * c_last: the count of c_j <= u * c_last.
  A zero weight never is the smallest such i. O(n) per sample.
- Without replacement: the exponential-race (Gumbel top-k) trick PyTorch uses too: the k
  largest w_i / E_i with E_i ~ Exp(1) are a sample of k categories without replacement, in
  draw order (sorting.topk). Zero weights come last, in index order: asked for more samples
  than nonzero weights, recent PyTorch returns zero-weight categories too, and so does this.

Eagerly, the weights are checked as PyTorch checks them (finite, non-negative, a positive
sum), which reads their values as PyTorch's CPU kernel does; inside a trace they are not
read. Like the op modules, this one never imports Tensor (results are built through the
weights tensor).
"""
from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

import numpy as np

from . import dtypes as D
from . import inplace, philox, sorting, trace_hooks
from . import placement as _placement
from .compiler.ir import make
from .prims import cast, const, op_error, prim, reshape_value, torch_name
from .source import user_loc
from .storage import Storage
from .tensor_base import TensorBase, leaf_node

if TYPE_CHECKING:
    from .tensor import Tensor


def _leaf(like, array: np.ndarray):
    return like._wrap(Storage(leaf_node(array), buffer=array))


def uniform_like(like: Any, shape: tuple, dtype: Any, generator: Any = None) -> Any:
    """Lazy uniforms in [0, 1) of `shape` (random.rand_tensor's stream), built through `like`."""
    gen = generator or philox.default_generator
    n = int(np.prod(shape, dtype=np.int64))
    if trace_hooks.active():
        if gen.state_tensor is None:
            gen.state_tensor = like._wrap(gen.storage)
        state = gen.state_tensor
        key = state._value()[0]
        inplace.add_(state, _leaf(like, np.array([0, n], np.int64)))
    else:
        seed_, start = gen.take(n)
        key = leaf_node(np.array([seed_, start], np.uint64).view(np.int64))
    node = make("rand", (key,), {}, user_loc(), shape=tuple(shape), dtype=dtype)
    _placement.place(node, like._storage.device)      # drawn on like's device
    return like._result(node)


def _check_weights(p, rows: int, n: int) -> None:
    if trace_hooks.active():
        return
    w = np.asarray(p.detach()._host_values(), dtype=np.float64).reshape(rows, n)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise op_error(RuntimeError, "multinomial", "probability tensor contains either `inf`, `nan` or element < 0",
                       [p])
    if np.any(w.sum(axis=1) <= 0):
        raise op_error(RuntimeError, "multinomial", "invalid multinomial distribution (sum of probabilities <= 0)",
                       [p])


def multinomial(input: Any, num_samples: int, replacement: bool = False, *, generator: Any = None) -> Tensor:
    """int64 indices of `num_samples` categories drawn per row of the weights `input` (1-D or 2-D)."""
    p = input
    if not isinstance(p, TensorBase):
        raise TypeError(f"multinomial(): argument 'input' (position 1) must be Tensor, not {type(p).__name__}")
    if not isinstance(num_samples, builtins.int) or isinstance(num_samples, builtins.bool):
        raise TypeError(f"multinomial(): argument 'num_samples' (position 2) must be int, not "
                        f"{type(num_samples).__name__}")
    if p.dim() not in (1, 2):
        raise op_error(RuntimeError, "multinomial", "prob_dist must be 1 or 2 dim", [p])
    if not p.dtype.is_floating_point:
        raise op_error(RuntimeError, "multinomial", "multinomial only supports floating-point dtypes for input, "
                       f"got: {torch_name(p.dtype)}", [p])
    if num_samples <= 0:
        raise op_error(RuntimeError, "multinomial", "cannot sample n_sample <= 0 samples", [p])
    n = p.shape[-1]
    rows = p.shape[0] if p.dim() == 2 else 1
    if not replacement and num_samples > n:
        raise op_error(RuntimeError, "multinomial", "cannot sample n_sample > prob_dist.size(-1) samples without "
                       "replacement", [p])
    if n == 0:
        raise op_error(RuntimeError, "multinomial", "invalid multinomial distribution (sum of probabilities <= 0)",
                       [p])
    _check_weights(p, rows, n)
    w = reshape_value(cast(p.detach(), D.float64), (rows, n))
    dev = w._storage.device
    if replacement:
        c = sorting.cumsum(w, 1)                                           # (rows, n)
        total = prim("slice", [c], {"starts": (0, n - 1), "stops": (rows, n), "steps": (1, 1)})   # (rows, 1)
        u = uniform_like(w, (rows, num_samples), D.float64, generator)
        target = prim("mul", [u, total.expand((rows, num_samples))])
        below = prim("le", [reshape_value(c, (rows, 1, n)).expand((rows, num_samples, n)),
                            reshape_value(target, (rows, num_samples, 1)).expand((rows, num_samples, n))])
        idx = prim("sum", [cast(below, D.int64)], {"axes": (2,)})
        idx = prim("min", [reshape_value(idx, (rows, num_samples)), const(n - 1, D.int64, (), dev, like=w)])
    else:
        u = uniform_like(w, (rows, n), D.float64, generator)
        e = prim("neg", [prim("log", [prim("sub", [const(1.0, D.float64, (), dev, like=w), u])])])   # Exp(1), > 0
        keys = prim("div", [w, e])
        idx = sorting.topk(keys, num_samples, dim=1).indices
    return reshape_value(idx, (num_samples,) if p.dim() == 1 else (rows, num_samples))


class SamplingMethods(TensorBase):
    """Tensor.multinomial (tensor.py composes it into Tensor)."""

    __slots__ = ()

    def multinomial(self, num_samples: int, replacement: bool = False, *, generator: Any = None) -> Tensor:
        return multinomial(self, num_samples, replacement, generator=generator)
