"""Random numbers: one counter-based Philox-4x32-10 stream for eager and compiled code.

The generator is (seed, offset); drawing n numbers takes counters offset .. offset+n-1 and
advances the offset. Eager factories (`rand`, `randn`, ...) draw the stream with native fills
(philox.py, below Tensor, where the generator and the stream live); inside kernels the IR
`rand` op computes the same bits (codegen/emit.py), so a value drawn in a fused dropout mask
equals the one an eager draw gives at that counter. This module, above tensor.py, makes
those lazy draws (`rand_tensor`): they take no tensor to build their result through.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import ops, trace_hooks
from . import philox as _philox
from .compiler.ir import make
from .philox import Generator as Generator
from .philox import default_generator as default_generator
from .philox import initial_seed as initial_seed
from .philox import manual_seed as manual_seed
from .philox import normal as normal
from .philox import philox_words as philox_words
from .philox import randint_args as randint_args
from .philox import seed as seed
from .philox import uniform as uniform
from .runtime import aligned_empty
from .source import user_loc
from .tensor import Tensor

if TYPE_CHECKING:
    from .compiler.ir.dtypes import DType


def _state_tensor(state: np.ndarray) -> Tensor:
    out = aligned_empty(state.shape, np.uint8)
    out[:] = state
    return Tensor._from_array(out)


_philox.as_state_tensor[0] = _state_tensor


def get_rng_state() -> Tensor:
    """The default generator's state: a uint8 tensor (for checkpoints; `set_rng_state` restores it)."""
    return default_generator.get_state()


def set_rng_state(new_state: Tensor) -> None:
    default_generator.set_state(new_state)


def state_of(gen: Generator) -> Tensor:
    """The generator's (seed, offset) storage as a tensor (one per generator: a trace captures
    it as state and advances it in place)."""
    if gen.state_tensor is None:
        gen.state_tensor = Tensor._new(gen.storage)
    return gen.state_tensor


def rand_tensor(shape: Sequence[int], dtype: DType, generator: Generator | None = None) -> Tensor:
    """Lazy uniform numbers in [0, 1): an IR `rand` node, fused into whatever consumes it.

    Eagerly, the key is a fresh (seed, offset) buffer and the generator advances at once;
    inside a trace the key is the generator's state tensor itself, advanced in place, so
    every call of the compiled function draws new numbers."""
    gen = generator or default_generator
    n = int(np.prod(shape, dtype=np.int64))
    if trace_hooks.active():
        state = state_of(gen)
        key = state._value()[0]
        state.add_(Tensor._from_array(np.array([0, n], np.int64)))
    else:
        seed_, start = gen.take(n)
        key = Tensor._from_array(np.array([seed_, start], np.uint64).view(np.int64))._value()[0]
    return Tensor._from_value(make("rand", (key,), {}, user_loc(), shape=tuple(shape), dtype=dtype))


def randn_tensor(shape: Sequence[int], dtype: DType, generator: Generator | None = None) -> Tensor:
    """Lazy standard normals by Box-Muller on two lazy uniforms (for traced code)."""
    u1, u2 = rand_tensor(shape, dtype, generator), rand_tensor(shape, dtype, generator)
    r = ops.sqrt(ops.mul(ops.log(ops.sub(1.0, u1)), -2.0))
    return ops.mul(r, ops.cos(ops.mul(u2, 2 * np.pi)))
