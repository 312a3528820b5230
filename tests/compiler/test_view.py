"""View algebra: random chains of movement ops agree with numpy's."""
import itertools

import numpy as np

from fusegrad.compiler.view import ViewStack


def _evaluate(st, base):
    flat, out = base.reshape(-1), np.zeros(st.shape)
    for idx in itertools.product(*[range(d) for d in st.shape]):
        cur, ok = list(idx), True
        for k in range(len(st.views) - 1, -1, -1):
            v = st.views[k]
            if v.mask and not all(lo <= i < hi for i, (lo, hi) in zip(cur, v.mask)):
                ok = False
                break
            off = v.offset + sum(i * t for i, t in zip(cur, v.strides))
            if k:
                cur = list(np.unravel_index(off, st.views[k - 1].shape))
        out[idx] = flat[off] if ok else 0
    return out


def _random_step(rng, ref, st):
    c = rng.integers(0, 5)
    if c == 0:
        p = tuple(int(x) for x in rng.permutation(ref.ndim))
        return ref.transpose(p), st.permute(p)
    if c == 1:
        n = ref.size
        a = int(rng.choice([d for d in range(1, n + 1) if n % d == 0]))
        new = ((1,) if rng.random() < 0.3 else ()) + ((a, n // a) if rng.random() < 0.5 else (n,))
        return ref.reshape(new), st.reshape(new)
    if c == 2:
        new = tuple(d if d != 1 else int(rng.integers(1, 4)) for d in ref.shape)
        return np.broadcast_to(ref, new), st.expand(new)
    if c == 3:
        starts = [int(rng.integers(0, d + 1)) for d in ref.shape]
        stops = [int(rng.integers(a, d + 1)) for a, d in zip(starts, ref.shape)]
        steps = [int(rng.integers(1, 3)) for _ in ref.shape]
        return ref[tuple(slice(*t) for t in zip(starts, stops, steps))], st.slice(starts, stops, steps)
    lo, hi = [int(rng.integers(0, 2)) for _ in ref.shape], [int(rng.integers(0, 2)) for _ in ref.shape]
    return np.pad(ref, list(zip(lo, hi))), st.pad(lo, hi)


def test_random_movement_chains_match_numpy():
    rng = np.random.default_rng(0)
    stacks = 0
    for _ in range(600):
        shape = tuple(int(x) for x in rng.integers(1, 5, size=rng.integers(1, 4)))
        base = rng.standard_normal(shape)
        ref, st = base.copy(), ViewStack.contiguous(shape)
        for _ in range(5):
            if ref.size == 0 or ref.size > 200:
                break
            ref, st = _random_step(rng, ref, st)
        if ref.size == 0:
            continue
        stacks += len(st.views) > 1
        got = _evaluate(st, base)
        assert got.shape == ref.shape and np.array_equal(got, ref)
    assert stacks > 20          # the multi-view case is exercised


def test_reshape_of_contiguous_merges_and_of_transposed_stacks():
    st = ViewStack.contiguous((4, 6)).reshape((2, 12))
    assert st.single is not None and st.single.strides == (12, 1)
    t = ViewStack.contiguous((4, 6)).permute((1, 0)).reshape((24,))
    assert len(t.views) == 2
