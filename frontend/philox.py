"""The Philox-4x32-10 stream behind fusegrad's random numbers, below Tensor.

The generator is (seed, offset); drawing n numbers takes counters offset .. offset+n-1 and
advances the offset. Eager factories (`rand`, `randn`, ...) and the in-place fills
(`uniform_`, ...) compute the stream with numpy here; inside kernels the IR `rand` op
computes the same bits (codegen/emit.py), so a value drawn in a fused dropout mask equals
the one numpy would have drawn at that counter.

The generator's (seed, offset) words are a Storage (a traced function captures it as state
and advances it in place); random.py, above Tensor, wraps it in a tensor for traced code
and holds the lazy draws (`rand_tensor`). `fusegrad.random` re-exports this module's API.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .realize import realize
from .storage import Storage
from .tensor_base import leaf_node

_M = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
_W = (np.uint64(0x9E3779B9), np.uint64(0xBB67AE85))
_LOW = np.uint64(0xFFFFFFFF)
_DEFAULT_SEED = 67280421310721


class Generator:
    """(seed, offset) of the Philox stream, held in a small int64 storage so that a traced
    function captures it as state and advances it in place on every call."""

    def __init__(self, seed: int = _DEFAULT_SEED) -> None:
        self._storage: Storage | None = None
        self.state_tensor: Any = None       # the storage as a Tensor, made by random.state_of for traces
        self.manual_seed(seed)

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            words = np.zeros(2, np.int64)
            self._storage = Storage(leaf_node(words), buffer=words)
            self._storage.state = True
        return self._storage

    def _words(self) -> np.ndarray:
        storage = self.storage
        realize([storage])
        return storage.buffer

    def manual_seed(self, seed: int) -> "Generator":
        words = self._words()
        words[0] = np.uint64(int(seed) & ((1 << 64) - 1)).astype(np.int64)
        words[1] = 0
        return self

    @property
    def seed(self) -> int:
        return int(np.int64(self._words()[0]).astype(np.uint64))

    @property
    def offset(self) -> int:
        return int(self._words()[1])

    def initial_seed(self) -> int:
        return self.seed

    def take(self, n: int) -> tuple[int, int]:
        """(seed, first counter) for n numbers, advancing the stream past them."""
        words = self._words()
        start = int(words[1])
        words[1] += int(n)
        return self.seed, start

    def get_state(self) -> Any:
        """The state as PyTorch gives it: a uint8 tensor, here the 16 bytes of (seed, offset)."""
        return as_state_tensor[0](self._words().copy().view(np.uint8))

    def set_state(self, new_state: Any) -> Generator:
        """Restore a state from `get_state()` (a uint8 tensor or array of 16 bytes)."""
        state = np.asarray(new_state)
        if state.dtype != np.uint8 or state.size != 16:
            raise RuntimeError(f"RNG state must be a torch.ByteTensor of 16 bytes (fusegrad's Philox seed and "
                               f"offset), got {state.size} values of {state.dtype}")
        self._words()[:] = state.reshape(-1).copy().view(np.int64)
        return self


# random.py (above Tensor) sets this to wrap get_state()'s bytes in a uint8 Tensor
as_state_tensor: list[Callable[[np.ndarray], Any]] = [lambda state: state]


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    return default_generator.manual_seed(seed)


def randint_args(args: tuple, low: Any, high: Any, size: Any) -> tuple[int, int, tuple[int, ...]]:
    """(low, high, size) of PyTorch's randint(high, size) / randint(low, high, size), each
    argument given by position or keyword, checked as PyTorch checks them."""
    given = {k: v for k, v in (("low", low), ("high", high), ("size", size)) if v is not None}
    slots = ("low", "high", "size") if len(args) + len(given) >= 3 else ("high", "size")
    free = [k for k in slots if k not in given]
    if len(args) > len(free) or len(args) + len(given) < 2:
        raise TypeError(f"randint() received an invalid combination of arguments - got {len(args)} "
                        "positional arguments; expected (high, size) or (low, high, size)")
    given.update(zip(free, args))
    missing = [k for k in slots if k not in given]
    if missing:
        raise TypeError(f"randint() missing required argument '{missing[0]}'")
    for position, name in enumerate(slots, 1):
        _check_randint_arg(name, position, given[name])
    lo, hi = int(given.get("low", 0)), int(given["high"])
    if lo >= hi:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={lo} >= to={hi}")
    return lo, hi, tuple(given["size"])


def _check_randint_arg(name: str, position: int, value: object) -> None:
    is_int = lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool)
    ok = all(map(is_int, value)) if name == "size" and isinstance(value, (tuple, list)) else \
        name != "size" and is_int(value)
    if not ok:
        want = "tuple of ints" if name == "size" else "int"
        raise TypeError(f"randint(): argument '{name}' (position {position}) must be {want}, "
                        f"not {type(value).__name__}")


def seed() -> int:
    return default_generator.manual_seed(time.time_ns()).seed


def initial_seed() -> int:
    return default_generator.seed


def philox_words(seed: int, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first two output words of Philox-4x32-10 for counters start .. start+n-1."""
    with np.errstate(over="ignore"):
        ctr = np.arange(n, dtype=np.uint64) + np.uint64(start)
        c0, c1 = ctr & _LOW, ctr >> np.uint64(32)
        c2 = np.zeros(n, np.uint64)
        c3 = np.zeros(n, np.uint64)
        k0, k1 = np.uint64(seed) & _LOW, np.uint64(seed >> 32) & _LOW
        for r in range(10):
            p0, p1 = c0 * _M[0], c2 * _M[1]
            c0, c1, c2, c3 = (p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & _LOW, (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & _LOW
            if r < 9:
                k0, k1 = (k0 + _W[0]) & _LOW, (k1 + _W[1]) & _LOW
    return c0, c1


_DIGITS = {np.dtype(np.float32): 24, np.dtype(np.float16): 11}


def uniform(n: int, dtype: Any, generator: Generator | None = None, digits: int | None = None) -> np.ndarray:
    """n uniform numbers in [0, 1) of a float numpy dtype, from the generator's stream: from
    one 32-bit word, `digits` bits of it (float32: 24, float16: 11, bfloat16 asks for 8),
    from two for float64; the IR's rand makes the same numbers."""
    seed_, start = (generator or default_generator).take(n)
    w0, w1 = philox_words(seed_, start, n)
    digits = digits or _DIGITS.get(np.dtype(dtype))
    if digits is not None:
        return ((w0 >> np.uint64(32 - digits)).astype(np.float32) * np.float32(2.0 ** -digits)).astype(dtype)
    bits = ((w0 << np.uint64(32)) | w1) >> np.uint64(11)
    return bits.astype(np.float64) * 2.0 ** -53


def normal(n: int, dtype: Any, generator: Generator | None = None) -> np.ndarray:
    """n standard normal numbers (Box-Muller on pairs of uniforms)."""
    u = uniform(2 * ((n + 1) // 2), np.float64, generator)
    u1, u2 = u[0::2], u[1::2]
    r = np.sqrt(-2.0 * np.log1p(-u1))
    z = np.concatenate([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)])[:n]
    return z.astype(dtype)
