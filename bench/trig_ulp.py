"""Accuracy of sin and cos over the whole range: max and median ulp per decade.

    python bench/trig_ulp.py [--n N] [--step-f32 D] [--step-f64 D]

For float32 over [1e-2, 1e38) and float64 over [1e-2, 1e300), each row draws N arguments
log-uniformly over its decades (D of them; defaults 1 for f32 and 10 for f64) with random
signs, evaluates fusegrad's sin and cos through the public API (`fusegrad.tensor(x).sin()`)
and reports the distance in ulp to the correctly rounded result: max and median. PyTorch's
(and numpy's own float64 sin/cos) columns are measured the same way when installed.

References: float32, numpy's float64 sin/cos of the argument rounded to float32 (correctly
rounded for all but a vanishing fraction of inputs); float64, numpy's 80-bit long double
sin/cos rounded to float64 (glibc's sinl/cosl, with full-range reduction) where long double
has a 64-bit mantissa, else mpmath when installed, else numpy's float64 (itself within 1 ulp,
so distances up to 1 more are noise).
"""
from __future__ import annotations

import argparse

import numpy as np

FUNCTIONS = ("sin", "cos")


def ulp_distance(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Representable values between got and want, in integer arithmetic (nan == nan)."""
    itype = np.int32 if got.dtype == np.float32 else np.int64
    mask = np.iinfo(itype).max

    def ordinal(v):
        bits = v.view(itype).astype(np.int64) if itype is np.int32 else v.view(itype)
        return np.where(bits < 0, -(bits & mask), bits)
    og, ow = ordinal(got), ordinal(want)
    same_side = (og >= 0) == (ow >= 0)
    dist = np.where(same_side, np.abs(og - np.where(same_side, ow, og)).astype(np.float64),
                    np.abs(og).astype(np.float64) + np.abs(ow).astype(np.float64))
    return np.where(np.isnan(got) & np.isnan(want), 0.0, dist)


def reference(name: str, x: np.ndarray) -> tuple[np.ndarray, str]:
    """The correctly rounded sin/cos of x (as described in the module docstring), and its source."""
    if x.dtype == np.float32:
        return getattr(np, name)(x.astype(np.float64)).astype(np.float32), "numpy float64"
    if np.finfo(np.longdouble).nmant >= 63:
        return getattr(np, name)(x.astype(np.longdouble)).astype(np.float64), "numpy long double"
    try:
        import mpmath
    except ImportError:
        return getattr(np, name)(x), "numpy float64 (within 1 ulp)"
    mpmath.mp.prec = 2200
    fn = getattr(mpmath, name)
    return np.array([float(fn(mpmath.mpf(float(v)))) for v in x]), "mpmath"


def samples(rng, dtype, lo_exp: int, hi_exp: int, n: int) -> np.ndarray:
    """n log-uniform arguments in [10^lo_exp, 10^hi_exp), random signs."""
    x = 10.0 ** rng.uniform(lo_exp, hi_exp, n)
    return (x * rng.choice([-1.0, 1.0], n)).astype(dtype)


def implementations() -> dict:
    """{column name: fn(name, x) -> array}: fusegrad, and the peers installed."""
    import fusegrad
    impls = {"fusegrad": lambda name, x: getattr(fusegrad.tensor(x), name)().numpy()}
    try:
        import torch
        impls["torch"] = lambda name, x: getattr(torch, name)(torch.from_numpy(x)).numpy()
    except ImportError:
        pass
    impls["numpy"] = lambda name, x: getattr(np, name)(x)
    return impls


def rows(dtype, top_exp: int, step: int, n: int, impls: dict, rng) -> tuple[list, str]:
    """Table rows, one per `step` decades of [1e-2, 10^top_exp); and the reference's source."""
    table, source = [], ""
    for lo in range(-2, top_exp, step):
        hi = min(lo + step, top_exp)
        x = samples(rng, dtype, lo, hi, n)
        cells = [f"[1e{lo}, 1e{hi})"]
        for name in FUNCTIONS:
            want, source = reference(name, x)
            for impl in impls.values():
                dist = ulp_distance(impl(name, x).astype(dtype), want.astype(dtype))
                cells.append(f"{dist.max():g} / {np.median(dist):g}")
        table.append(cells)
    return table, source


def markdown(header: list, table: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in table]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="arguments per row")
    parser.add_argument("--step-f32", type=int, default=1, help="decades per float32 row")
    parser.add_argument("--step-f64", type=int, default=10, help="decades per float64 row")
    args = parser.parse_args()
    impls = implementations()
    rng = np.random.default_rng(0)
    header = ["|x|"] + [f"{name} {impl} max / median" for name in FUNCTIONS for impl in impls]
    for dtype, top, step in ((np.float32, 38, args.step_f32), (np.float64, 300, args.step_f64)):
        table, source = rows(dtype, top, step, args.n, impls, rng)
        print(f"\n{np.dtype(dtype).name}: ulp to the correctly rounded result (reference: {source}), "
              f"{args.n} log-uniform arguments per row\n")
        print(markdown(header, table))


if __name__ == "__main__":
    main()
