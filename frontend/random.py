"""Random numbers: one counter-based Philox-4x32-10 stream for eager and compiled code.

The generator is (seed, offset); drawing n numbers takes counters offset .. offset+n-1 and
advances the offset. Eager factories (`rand`, `randn`, ...) compute the stream with numpy
here; inside kernels the IR `rand` op computes the same bits (codegen/emit.py), so a value
drawn in a fused dropout mask equals the one numpy would have drawn at that counter.
"""
from __future__ import annotations

import numpy as np

_M = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
_W = (np.uint64(0x9E3779B9), np.uint64(0xBB67AE85))
_LOW = np.uint64(0xFFFFFFFF)
_DEFAULT_SEED = 67280421310721


class Generator:
    def __init__(self, seed: int = _DEFAULT_SEED):
        self.manual_seed(seed)

    def manual_seed(self, seed: int) -> "Generator":
        self.seed = int(seed) & ((1 << 64) - 1)
        self.offset = 0
        return self

    def initial_seed(self) -> int:
        return self.seed

    def take(self, n: int) -> tuple[int, int]:
        """(seed, first counter) for n numbers, advancing the stream past them."""
        start = self.offset
        self.offset += int(n)
        return self.seed, start

    def get_state(self):
        return np.array([self.seed, self.offset], dtype=np.uint64)

    def set_state(self, state) -> None:
        self.seed, self.offset = int(state[0]), int(state[1])


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    return default_generator.manual_seed(seed)


def seed() -> int:
    import time
    return default_generator.manual_seed(time.time_ns()).seed


def initial_seed() -> int:
    return default_generator.seed


def philox_words(seed: int, start: int, n: int):
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


def uniform(n: int, dtype, generator: Generator | None = None) -> np.ndarray:
    """n uniform numbers in [0, 1) of a float numpy dtype, from the generator's stream."""
    seed_, start = (generator or default_generator).take(n)
    w0, w1 = philox_words(seed_, start, n)
    if np.dtype(dtype) == np.float32:
        return ((w0 >> np.uint64(8)).astype(np.float32) * np.float32(2.0 ** -24))
    bits = ((w0 << np.uint64(32)) | w1) >> np.uint64(11)
    return bits.astype(np.float64) * 2.0 ** -53


def normal(n: int, dtype, generator: Generator | None = None) -> np.ndarray:
    """n standard normal numbers (Box-Muller on pairs of uniforms)."""
    u = uniform(2 * ((n + 1) // 2), np.float64, generator)
    u1, u2 = u[0::2], u[1::2]
    r = np.sqrt(-2.0 * np.log1p(-u1))
    z = np.concatenate([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)])[:n]
    return z.astype(dtype)
