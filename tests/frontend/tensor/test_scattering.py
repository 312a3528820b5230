"""scatter/scatter_ (src tensor or scalar value, reduce add/multiply), scatter_add(_),
index_add(_) with alpha, index_fill(_), index_select: against numpy loop references on odd
shapes, gradients by finite differences, in-place rules (version counter, leaf check),
out-of-range indices naming the user's line, compiled equal to eager, PyTorch as an oracle."""
import warnings

import numpy as np
import pytest

import fusegrad
from helpers import gradcheck

RNG = np.random.default_rng(3)


def _scatter_ref(x, dim, index, src, reduce=None):
    out = x.copy()
    for pos in np.ndindex(*index.shape):
        target = list(pos)
        target[dim] = index[pos]
        v = src[pos] if isinstance(src, np.ndarray) else src
        if reduce == "add":
            out[tuple(target)] += v
        elif reduce == "multiply":
            out[tuple(target)] *= v
        else:
            out[tuple(target)] = v
    return out


def _unique_index(shape, dim, size):
    """An index of `shape` whose entries along `dim` never repeat (a permutation prefix per row)."""
    moved = [s for d, s in enumerate(shape) if d != dim]
    rows = [RNG.permutation(size)[:shape[dim]] for _ in range(int(np.prod(moved, dtype=int)))]
    a = np.array(rows).reshape(moved + [shape[dim]])
    return np.moveaxis(a, -1, dim).astype(np.int64)


@pytest.mark.parametrize("xshape,ishape,dim", [((5, 3), (2, 3), 0), ((3, 7), (3, 4), 1), ((4, 5), (3, 2), -1),
                                               ((2, 3, 5), (2, 2, 5), 1)])
def test_scatter_matches_reference(xshape, ishape, dim):
    x = RNG.standard_normal(xshape)
    src = RNG.standard_normal(tuple(s + 1 for s in ishape))       # src may be larger than index
    idx = _unique_index(ishape, dim % len(xshape), xshape[dim])
    got = fusegrad.tensor(x).scatter(dim, fusegrad.tensor(idx), fusegrad.tensor(src))
    np.testing.assert_allclose(got.numpy(), _scatter_ref(x, dim, idx, src))
    got = fusegrad.scatter(fusegrad.tensor(x), dim, fusegrad.tensor(idx), value=2.5)
    np.testing.assert_allclose(got.numpy(), _scatter_ref(x, dim, idx, 2.5))
    rep = RNG.integers(0, xshape[dim], size=ishape)     # repeated positions: add and multiply are exact
    for reduce in ("add", "multiply"):
        got = fusegrad.tensor(x).scatter(dim, fusegrad.tensor(rep), fusegrad.tensor(src), reduce=reduce)
        np.testing.assert_allclose(got.numpy(), _scatter_ref(x, dim, rep, src, reduce), rtol=1e-12)
    got = fusegrad.tensor(x).scatter_add(dim, fusegrad.tensor(rep), fusegrad.tensor(src))
    np.testing.assert_allclose(got.numpy(), _scatter_ref(x, dim, rep, src, "add"), rtol=1e-12)


def test_scatter_scalar_value_with_repeats_and_one_hot():
    labels = fusegrad.tensor([[2], [0], [2], [4]])
    one_hot = fusegrad.zeros(4, 5).scatter_(1, labels, 1.0)
    np.testing.assert_array_equal(one_hot.numpy(), np.eye(5, dtype=np.float32)[[2, 0, 2, 4]])
    multi = fusegrad.zeros(1, 4).scatter(1, fusegrad.tensor([[1, 1, 3]]), 1.0)
    assert multi.tolist() == [[0.0, 1.0, 0.0, 1.0]]      # a repeated scalar write stays 1
    ints = fusegrad.zeros(2, 3, dtype=fusegrad.int64).scatter(1, fusegrad.tensor([[0], [2]]), 7)
    assert ints.dtype == fusegrad.int64 and ints.tolist() == [[7, 0, 0], [0, 0, 7]]


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_index_add_and_fill_match_reference(dim):
    x = RNG.standard_normal((4, 6))
    n = x.shape[dim]
    index = RNG.integers(0, n, size=5)
    shape = list(x.shape)
    shape[dim] = 5
    source = RNG.standard_normal(shape)
    expected = x.copy()
    for k, i in enumerate(index):
        sl = [slice(None)] * 2
        sl[dim] = i
        ssl = [slice(None)] * 2
        ssl[dim] = k
        expected[tuple(sl)] += -1.5 * source[tuple(ssl)]
    got = fusegrad.tensor(x).index_add(dim, fusegrad.tensor(index), fusegrad.tensor(source), alpha=-1.5)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    fill_idx = np.array([1, -1, 1])
    expected = x.copy()
    sl = [slice(None)] * 2
    sl[dim] = fill_idx % n
    expected[tuple(sl)] = 9.0
    got = fusegrad.index_fill(fusegrad.tensor(x), dim, fusegrad.tensor(fill_idx), 9.0)
    np.testing.assert_array_equal(got.numpy(), expected)
    sel = fusegrad.index_select(fusegrad.tensor(x), dim, fusegrad.tensor(index))
    np.testing.assert_array_equal(sel.numpy(), np.take(x, index, axis=dim))


def test_gradients():
    idx = fusegrad.tensor(_unique_index((2, 4), 0, 5))
    rep = fusegrad.tensor([[0, 2, 2, 1], [2, 0, 2, 3]])
    x, src = RNG.standard_normal((5, 4)), RNG.standard_normal((3, 4))
    gradcheck(lambda a, s: a.scatter(0, idx, s), x, src)
    gradcheck(lambda a: a.scatter(0, idx, 1.0), x)
    gradcheck(lambda a, s: a.scatter_add(1, rep, s), RNG.standard_normal((2, 5)), src[:2])
    gradcheck(lambda a, s: a.scatter(1, rep, s, reduce="multiply"), RNG.standard_normal((2, 5)), src[:2] + 2)
    gradcheck(lambda a, s: a.index_add(0, fusegrad.tensor([4, 0, 4]), s, alpha=2.0), x, src)
    gradcheck(lambda a: a.index_fill(1, fusegrad.tensor([0, 3]), -2.0), x)


def test_in_place_forms():
    x = fusegrad.zeros(3, 4)
    out = x.index_add_(0, fusegrad.tensor([2, 2]), fusegrad.ones(2, 4))
    assert out is x and x.tolist()[2] == [2.0] * 4
    x.scatter_add_(1, fusegrad.tensor([[0, 0]]), fusegrad.ones(1, 2))
    x.index_fill_(0, fusegrad.tensor([1]), 5.0)
    x.scatter_(1, fusegrad.tensor([[3], [3], [3]]), 4.0)
    assert x.tolist() == [[2.0, 0.0, 0.0, 4.0], [5.0, 5.0, 5.0, 4.0], [2.0, 2.0, 2.0, 4.0]]
    w = fusegrad.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w.scatter_(0, fusegrad.tensor([1]), 1.0)
    y = w * 2                                   # an in-place update of a non-leaf: gradients flow
    y.index_fill_(0, fusegrad.tensor([0]), 0.0)
    y.sum().backward()
    assert w.grad.tolist() == [0.0, 2.0, 2.0]


def test_in_place_through_a_view():
    base = fusegrad.zeros(2, 5)
    base[1].index_add_(0, fusegrad.tensor([0, 4, 4]), fusegrad.tensor([1.0, 2.0, 3.0]))
    assert base.tolist() == [[0.0] * 5, [1.0, 0.0, 0.0, 0.0, 5.0]]


def test_errors():
    x = fusegrad.zeros(3, 4)
    with pytest.raises(IndexError, match=r"index out of range.*test_scattering.py"):
        x.scatter(0, fusegrad.tensor([[5, 0]]), 1.0).numpy()
    with pytest.raises(IndexError, match=r"index out of range.*test_scattering.py"):
        x.index_add(0, fusegrad.tensor([0, 9]), fusegrad.ones(2, 4)).numpy()
    with pytest.raises(IndexError, match=r"index out of range.*test_scattering.py"):
        x.scatter_add(1, fusegrad.tensor([[-1]]), fusegrad.ones(1, 1)).numpy()
    with pytest.raises(RuntimeError, match=r"same number of dimensions.*test_scattering.py"):
        x.scatter(0, fusegrad.tensor([0, 1]), 1.0)
    with pytest.raises(RuntimeError, match="Expected self.dtype to be equal to src.dtype"):
        x.scatter(0, fusegrad.tensor([[0]]), fusegrad.ones(1, 1, dtype=fusegrad.float64))
    with pytest.raises(RuntimeError, match=r"Expected index \[1, 5\] to be no larger than self \[3, 4\]"):
        x.scatter(1, fusegrad.tensor([[0, 1, 2, 3, 0]]), fusegrad.ones(3, 4))
    with pytest.raises(RuntimeError, match=r"Number of indices \(2\) should be equal to source.size\(dim\): \(3\)"):
        x.index_add(0, fusegrad.tensor([0, 1]), fusegrad.ones(3, 4))
    with pytest.raises(RuntimeError, match="must have the same scalar type"):
        x.index_add(0, fusegrad.tensor([0]), fusegrad.ones(1, 4, dtype=fusegrad.float64))
    with pytest.raises(IndexError, match="Index is supposed to be a vector"):
        x.index_fill(0, fusegrad.tensor([[0]]), 1.0)
    with pytest.raises(RuntimeError, match="reduce argument must be either add or multiply"):
        x.scatter(0, fusegrad.tensor([[0]]), 1.0, reduce="mean")


def test_compiled_equals_eager():
    def step(x, idx, src):
        y = x.scatter(1, idx, src).index_add(0, idx[:, 0], src[:, :4] * 2)
        return y.scatter_add(1, idx, src) * 1.0 + fusegrad.zeros(3, 4).scatter(1, idx[:, :1], 1.0)

    compiled = fusegrad.compile(step)
    for _ in range(2):
        args = (fusegrad.tensor(RNG.standard_normal((3, 4))), fusegrad.tensor(RNG.integers(0, 3, size=(3, 2))),
                fusegrad.tensor(RNG.standard_normal((3, 4))))
        np.testing.assert_allclose(compiled(*args).numpy(), step(*args).numpy(), rtol=1e-12)


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((4, 5)).astype(np.float32)
    idx = _unique_index((3, 5), 0, 4)
    src = RNG.standard_normal((3, 5)).astype(np.float32)
    rep = RNG.integers(0, 4, size=(3, 5))
    src43 = RNG.standard_normal((4, 3)).astype(np.float32)
    cases = [
        lambda m, a: a.scatter(0, m.tensor(idx), m.tensor(src)),
        lambda m, a: a.scatter(1, m.tensor(idx[:, :2]), -3.0),
        lambda m, a: a.scatter_add(0, m.tensor(rep), m.tensor(src)),
        lambda m, a: a.index_add(1, m.tensor([4, 0, 4]), m.tensor(src43), alpha=0.5),
        lambda m, a: a.index_fill(0, m.tensor([3, -4]), 2.0),
    ]
    for case in cases:
        fa = fusegrad.tensor(x, requires_grad=True)
        ta = torch.tensor(x, requires_grad=True)
        f, t = case(fusegrad, fa), case(torch, ta)
        np.testing.assert_allclose(f.detach().numpy(), t.detach().numpy(), rtol=1e-6)
        w = RNG.standard_normal(tuple(t.shape)).astype(np.float32)
        (f * fusegrad.tensor(w)).sum().backward()
        (t * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(fa.grad.numpy(), ta.grad.numpy(), rtol=1e-5, atol=1e-6)
    for reduce in ("add", "multiply"):     # PyTorch has no derivative for these: values only
        f = fusegrad.tensor(x).scatter(0, fusegrad.tensor(rep), fusegrad.tensor(src), reduce=reduce)
        with warnings.catch_warnings():      # PyTorch deprecates reduce= with a tensor src
            warnings.simplefilter("ignore")
            t = torch.tensor(x).scatter(0, torch.tensor(rep), torch.tensor(src), reduce=reduce)
        np.testing.assert_allclose(f.numpy(), t.numpy(), rtol=1e-6)


def _reduce_ref(x, dim, index, src, reduce, include_self):
    """numpy loop reference of scatter_reduce (integer mean rounds down)."""
    out = x.copy()
    groups: dict = {}
    for pos in np.ndindex(*index.shape):
        target = list(pos)
        target[dim] = index[pos]
        groups.setdefault(tuple(target), []).append(src[pos])
    for target, vals in groups.items():
        vals = ([x[target]] if include_self else []) + vals
        if reduce == "sum":
            v = np.sum(vals)
        elif reduce == "prod":
            v = np.prod(vals)
        elif reduce == "amax":
            v = np.max(vals)
        elif reduce == "amin":
            v = np.min(vals)
        else:
            v = np.sum(vals) / len(vals) if x.dtype.kind == "f" else np.sum(vals) // len(vals)
        out[target] = v
    return out


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_matches_reference(reduce, include_self):
    x, src = RNG.standard_normal((4, 5)), RNG.standard_normal((3, 6))
    idx = RNG.integers(0, 5, size=(3, 4))
    got = fusegrad.tensor(x).scatter_reduce(1, fusegrad.tensor(idx), fusegrad.tensor(src), reduce,
                                            include_self=include_self)
    np.testing.assert_allclose(got.numpy(), _reduce_ref(x, 1, idx, src, reduce, include_self), rtol=1e-12)
    xi, si = RNG.integers(-9, 9, size=(4, 5)), RNG.integers(-9, 9, size=(5, 5))
    idx = RNG.integers(0, 4, size=(5, 5))
    got = fusegrad.scatter_reduce(fusegrad.tensor(xi), 0, fusegrad.tensor(idx), fusegrad.tensor(si), reduce,
                                  include_self=include_self)
    assert got.dtype == fusegrad.int64
    np.testing.assert_array_equal(got.numpy(), _reduce_ref(xi, 0, idx, si, reduce, include_self))


def test_scatter_reduce_gradients_and_in_place():
    idx = fusegrad.tensor([[0, 2, 2, 1], [2, 0, 2, 3]])
    x, src = RNG.standard_normal((3, 4)), RNG.standard_normal((2, 4))
    for k, reduce in enumerate(("sum", "prod", "mean", "amax", "amin")):
        if k % 2:
            gradcheck(lambda a, s, r=reduce: a.scatter_reduce(1, idx, s, r), x, src)
        else:
            gradcheck(lambda a, s, r=reduce: a.scatter_reduce(0, idx % 3, s, r, include_self=False), x, src)
    y = fusegrad.zeros(2, 3)
    y.scatter_reduce_(1, fusegrad.tensor([[0, 0], [2, 2]]), fusegrad.tensor([[1.0, 3.0], [-1.0, 5.0]]), "mean",
                      include_self=False)
    assert y.tolist() == [[2.0, 0.0, 0.0], [0.0, 0.0, 2.0]]
    with pytest.raises(RuntimeError, match="reduce argument must be either sum, prod, mean, amax or amin"):
        y.scatter_reduce(1, fusegrad.tensor([[0]]), fusegrad.ones(1, 1), "max")


def test_scatter_reduce_against_pytorch_with_ties():
    torch = pytest.importorskip("torch")
    x = np.array([[1.0, 0.0, 2.0], [3.0, 3.0, -1.0]])
    src = np.array([[1.0, 1.0, 0.5, 2.0], [3.0, 0.0, 3.0, 3.0]])
    idx = np.array([[0, 0, 1, 2], [0, 1, 0, 0]])
    for reduce in ("sum", "prod", "mean", "amax", "amin"):
        for include_self in (True, False):
            grads = []
            for lib in (fusegrad, torch):
                a, s = lib.tensor(x, requires_grad=True), lib.tensor(src, requires_grad=True)
                out = a.scatter_reduce(1, lib.tensor(idx), s, reduce, include_self=include_self)
                (out * lib.tensor(np.arange(6.0).reshape(2, 3))).sum().backward()
                grads.append((out.detach().numpy(), a.grad.numpy(), s.grad.numpy()))
            # PyTorch's amax/amin backward counts x among the ties even when include_self=False
            # (so the gradients of a tie do not add up to the output's); compare values only there
            n = 1 if reduce in ("amax", "amin") and not include_self else 3
            for f, t in list(zip(*grads))[:n]:
                np.testing.assert_allclose(f, t, rtol=1e-12, atol=1e-12, err_msg=f"{reduce} {include_self}")
