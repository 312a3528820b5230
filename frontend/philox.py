"""The Philox-4x32-10 stream behind fusegrad's random numbers, below Tensor.

The generator is (seed, offset); drawing n numbers takes counters offset .. offset+n-1 and
advances the offset. Eager factories (`rand`, `randn`, ...) and the in-place fills
(`uniform_`, ...) draw the stream here with native, size-generic fills
(codegen/random_fill.py: compiled once per machine, split across threads); inside kernels
the IR `rand` op computes the same bits (codegen/emit.py), so a value drawn in a fused
dropout mask equals the one an eager draw gives at that counter. `philox_words` is the
stream in numpy, the reference both are tested against.

The generator's (seed, offset) words are a Storage (a traced function captures it as state
and advances it in place); random.py, above Tensor, wraps it in a tensor for traced code
and holds the lazy draws (`rand_tensor`). `fusegrad.random` re-exports this module's API.
"""
from __future__ import annotations

import ctypes
import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .compiler.codegen import random_fill
from .realize import realize
from .runtime import library
from .runtime.buffers import address, aligned_empty
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
    """The first two output words of Philox-4x32-10 for counters start .. start+n-1, in numpy
    (the reference the native fills and the IR's rand are tested against; small draws)."""
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
_FILL = library.signature(
    None, [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint64, ctypes.c_int64,
           ctypes.c_double, ctypes.c_double, ctypes.c_int64])


def _fill(kind: str, n: int, dtype: Any, generator: Generator | None, a: float = 0.0, b: float = 1.0,
          digits: int = 0, out: np.ndarray | None = None) -> np.ndarray:
    """n numbers of the stream (random_fill.py's `kind`), drawn natively into `out` (a
    contiguous float32/float64 array of n numbers) or a new aligned array: float32 when
    `dtype` is float32, else float64 (numpy casts to the rest)."""
    if out is None:
        out = aligned_empty((n,), np.float32 if np.dtype(dtype) == np.float32 else np.float64)
    elif out.size != n or not out.flags.c_contiguous or out.dtype not in (np.float32, np.float64):
        raise ValueError(f"random fill: out must be {n} contiguous float32/float64 numbers")
    fn = _fill_function(kind, "f32" if out.dtype == np.float32 else "f64")
    seed_, start = (generator or default_generator).take(n)
    where = address(out)
    count = (n + 1) // 2 if kind == "normal" else n
    library.run_split(lambda lo, hi: fn(where, lo, hi, n, seed_, start, a, b, digits), count)
    return out if out.dtype == np.dtype(dtype) else out.astype(dtype)


@functools.cache
def _fill_function(kind: str, out_type: str) -> Any:
    """The native fill (compiled once per machine, then loaded from the object cache)."""
    text = random_fill.module_text(kind, out_type)
    return library.load(text).function(random_fill.function_name(kind, out_type), _FILL)


def uniform(n: int, dtype: Any, generator: Generator | None = None, digits: int | None = None) -> np.ndarray:
    """n uniform numbers in [0, 1) of a float numpy dtype, from the generator's stream: from
    one 32-bit word, `digits` bits of it (float32: 24, float16: 11, bfloat16 asks for 8),
    from two for float64; the IR's rand makes the same numbers."""
    digits = digits or _DIGITS.get(np.dtype(dtype))
    if digits is not None:
        return _fill("bits", n, np.float32, generator, digits=digits).astype(dtype, copy=False)
    return _fill("uniform", n, dtype, generator)


def uniform_between(n: int, low: float, high: float, dtype: Any, generator: Generator | None = None,
                    out: np.ndarray | None = None) -> np.ndarray:
    """n numbers low + (high - low) u, u the 53-bit uniforms of `uniform(n, float64)`, computed
    in float64 and rounded once to `dtype` (uniform_ and the nn.init functions)."""
    return _fill("uniform", n, dtype, generator, float(low), float(high), out=out)


def normal(n: int, dtype: Any, generator: Generator | None = None, mean: float = 0.0,
           std: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
    """n numbers mean + std z, z standard normals by Box-Muller on pairs of 53-bit uniforms (the
    first ceil(n/2) from the cosines, the rest from the sines), in float64 rounded once."""
    return _fill("normal", n, dtype, generator, float(mean), float(std), out=out)
