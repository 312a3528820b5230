"""The tensor ops real models use (issue 13): split, chunk, unbind, tensor_split, tril/triu,
repeat, repeat_interleave, flip, roll, new_*, addmm/baddbmm/addbmm, isnan/isinf/isfinite,
var/std (and _mean), norm/vector_norm, einsum, addcmul/addcdiv/lerp and their in-place forms.

Values against numpy on odd shapes (size-1 and empty dims included), gradients against
finite differences in float64 (tests/helpers.py), compiled against eager, errors naming the
user's line; PyTorch as an oracle, where it is installed, in test_model_ops_torch.py.
"""
import inspect
import math
import os

import numpy as np
import pytest

import fusegrad
from helpers import gradcheck

RNG = np.random.default_rng(20261207)


def _rand(*shape):
    return RNG.standard_normal(shape)


def _same(t, expected, rtol=1e-12, atol=1e-12):
    got = t.detach().numpy()
    expected = np.asarray(expected)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


def _raises_at_line(fn, exc_type, phrases, op):
    """`fn()` raises `exc_type` whose message holds the phrases, the op and the line of this
    file that made the call (the lambda's line)."""
    with pytest.raises(exc_type) as info:
        fn()
    message = str(info.value)
    for phrase in phrases:
        assert phrase.lower() in message.lower(), (phrase, message)
    assert op in message, message
    assert f"{os.path.basename(__file__)}:{inspect.getsourcelines(fn)[1]}" in message, message


# ---------------------------------------------------------------- split, chunk, unbind, tensor_split

@pytest.mark.parametrize("shape, size, dim", [((7, 3), 2, 0), ((2, 5), 5, 1), ((2, 5), 7, -1), ((4, 0), 3, 0),
                                              ((0, 3), 2, 0), ((1,), 1, 0)])
def test_split_by_size_matches_numpy(shape, size, dim):
    a = _rand(*shape)
    pieces = fusegrad.split(fusegrad.tensor(a), size, dim)
    n = shape[dim]
    bounds = list(range(size, n, size))
    expected = np.split(a, bounds, axis=dim)
    assert isinstance(pieces, tuple) and len(pieces) == len(expected)
    for p, e in zip(pieces, expected):
        _same(p, e)


@pytest.mark.parametrize("sizes, dim", [([1, 0, 3, 2], 1), ([6], -1), ([0, 6], 1)])
def test_split_by_sizes_and_method(sizes, dim):
    a = _rand(3, 6)
    pieces = fusegrad.tensor(a).split(sizes, dim)
    bounds = np.cumsum(sizes)[:-1]
    for p, e in zip(pieces, np.split(a, bounds, axis=1), strict=True):
        _same(p, e)


@pytest.mark.parametrize("n, chunks", [(6, 3), (7, 3), (5, 4), (6, 4), (1, 3), (0, 3), (3, 1)])
def test_chunk_sizes_like_pytorch(n, chunks):
    """ceil(n / chunks) each, fewer pieces where that runs out (6 in 4: three of 2); an empty
    dim gives `chunks` empty pieces."""
    a = _rand(2, n)
    pieces = fusegrad.tensor(a).chunk(chunks, 1)
    size = -(-n // chunks)
    if n == 0:
        expected = [a[:, :0]] * chunks
    else:
        expected = [a[:, s:s + size] for s in range(0, n, size)]
    assert len(pieces) == len(expected)
    for p, e in zip(pieces, expected):
        _same(p, e)


def test_unbind_and_tensor_split_match_numpy():
    a = _rand(3, 4, 2)
    x = fusegrad.tensor(a)
    for d in (0, 1, -1):
        got = fusegrad.unbind(x, d)
        assert len(got) == a.shape[d]
        for i, t in enumerate(got):
            _same(t, np.take(a, i, axis=d))
    for sections in (1, 3, 5):
        for t, e in zip(fusegrad.tensor_split(x, sections, 1), np.array_split(a, sections, axis=1), strict=True):
            _same(t, e)
    for t, e in zip(x.tensor_split([1, -1, 9, 2], 1), [a[:, :1], a[:, 1:-1], a[:, 3:9], a[:, 9:2], a[:, 2:]],
                    strict=True):
        _same(t, e)
    for t, e in zip(x.tensor_split(fusegrad.tensor([2]), 0), [a[:2], a[2:]], strict=True):
        _same(t, e)


def test_pieces_are_views_of_the_operand():
    base = fusegrad.zeros(4, 6)
    left, right = base.split(3, dim=1)
    right.add_(1)
    row = base.unbind(0)[2]
    row.mul_(5)
    expected = np.zeros((4, 6), np.float32)
    expected[:, 3:] = 1
    expected[2] *= 5
    _same(base, expected)
    assert left.grad_fn is None and base.chunk(2)[0]._base is base


def test_split_chunk_unbind_gradients():
    w = _rand(2, 7)
    gradcheck(lambda x: fusegrad.cat([p * (i + 1) for i, p in enumerate(x.split([2, 0, 4, 1], 1))], 1) ** 2,
              _rand(2, 7))
    gradcheck(lambda x: fusegrad.stack([p.sum(1) for p in x.chunk(3, 1)] * 2) * 1.5, _rand(3, 7))
    gradcheck(lambda x, w: fusegrad.stack(x.unbind(1)[::-1], 1) * w, _rand(2, 7), w, wrt=[0])


# ---------------------------------------------------------------- tril, triu

@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (2, 5, 3), (1, 1), (0, 3), (2, 1, 4)])
@pytest.mark.parametrize("diagonal", [0, 1, -1, 3, -5])
def test_tril_triu_match_numpy(shape, diagonal):
    a = _rand(*shape)
    x = fusegrad.tensor(a)
    _same(fusegrad.tril(x, diagonal), np.tril(a, diagonal))
    _same(x.triu(diagonal), np.triu(a, diagonal))


def test_tril_triu_of_ints_and_bools_keep_their_dtype():
    ints = fusegrad.arange(12).reshape(3, 4)
    assert ints.tril().dtype == fusegrad.int64
    np.testing.assert_array_equal(ints.tril(-1).numpy(), np.tril(np.arange(12).reshape(3, 4), -1))
    mask = fusegrad.ones(3, 3, dtype=fusegrad.bool).triu(1)
    assert mask.dtype == fusegrad.bool
    np.testing.assert_array_equal(mask.numpy(), np.triu(np.ones((3, 3), bool), 1))


def test_tril_is_one_fused_kernel_and_differentiates():
    x = fusegrad.tensor(_rand(5, 5))
    y = fusegrad.tril(x * 2 + 1) - x.triu(2)
    y.numpy()
    assert fusegrad.program_of(y).num_kernels == 1
    gradcheck(lambda x: fusegrad.tril(x, -1) * x.triu(0).mT, _rand(3, 4, 4))


def test_tril_in_place():
    a = _rand(3, 3)
    x = fusegrad.tensor(a)
    out = x.tril_(0)
    assert out is x
    _same(x, np.tril(a))


# ---------------------------------------------------------------- repeat, repeat_interleave

@pytest.mark.parametrize("shape, reps", [((2, 3), (2, 1)), ((3,), (2, 1, 2)), ((2, 1), (1, 4)), ((0, 2), (3, 2)),
                                         ((2, 3), (0, 1)), ((), (3,)), ((2,), (1,))])
def test_repeat_matches_numpy_tile(shape, reps):
    a = _rand(*shape)
    got = fusegrad.tensor(a).repeat(*reps)
    _same(got, np.tile(a, reps))
    assert got.grad_fn is None


def test_repeat_gradient_sums_the_copies():
    gradcheck(lambda x: x.repeat(2, 1, 3) * fusegrad.arange(36, dtype=fusegrad.float64).reshape(2, 3, 6), _rand(3, 2))


@pytest.mark.parametrize("shape, repeats, dim", [((2, 3), 2, 1), ((2, 3), 3, 0), ((2, 3), 2, None), ((2, 3), 0, -1),
                                                 ((1, 0), 4, 0), ((3,), 1, None)])
def test_repeat_interleave_int_matches_numpy(shape, repeats, dim):
    a = _rand(*shape)
    _same(fusegrad.repeat_interleave(fusegrad.tensor(a), repeats, dim), np.repeat(a, repeats, axis=dim))


def test_repeat_interleave_tensor_repeats():
    a = _rand(3, 2)
    counts = [2, 0, 3]
    x = fusegrad.tensor(a)
    _same(x.repeat_interleave(fusegrad.tensor(counts), dim=0), np.repeat(a, counts, axis=0))
    _same(x.repeat_interleave(fusegrad.tensor(3)), np.repeat(a, 3))
    np.testing.assert_array_equal(fusegrad.repeat_interleave(fusegrad.tensor(counts)).numpy(), [0, 0, 2, 2, 2])
    gradcheck(lambda x: x.repeat_interleave(fusegrad.tensor([1, 3]), dim=1) * 2.0, _rand(3, 2))
    gradcheck(lambda x: x.repeat_interleave(2, dim=0) ** 2, _rand(2, 3))


# ---------------------------------------------------------------- flip, roll

@pytest.mark.parametrize("dims", [(0,), (1,), (-1, 0), (0, 1, 2), ()])
def test_flip_matches_numpy(dims):
    a = _rand(2, 3, 4)
    got = fusegrad.flip(fusegrad.tensor(a), dims)
    _same(got, np.flip(a, dims) if dims else a)
    gradcheck(lambda x: x.flip(dims) * fusegrad.arange(24, dtype=fusegrad.float64).reshape(2, 3, 4), a)


def test_flip_variants_and_empty():
    a = _rand(3, 4)
    x = fusegrad.tensor(a)
    _same(x.fliplr(), np.fliplr(a))
    _same(x.flipud(), np.flipud(a))
    _same(x.flip(0, 1), a[::-1, ::-1])
    _same(fusegrad.tensor(np.zeros((0, 2))).flip(0), np.zeros((0, 2)))
    ints = fusegrad.tensor([[1, 2, 3]])
    np.testing.assert_array_equal(ints.flip(-1).numpy(), [[3, 2, 1]])


@pytest.mark.parametrize("shifts, dims", [(1, 0), (-2, 1), (7, -1), ((1, 2), (0, 1)), ((3, -1), (1, 1)), (5, None),
                                          (0, 1), (-13, None)])
def test_roll_matches_numpy(shifts, dims):
    a = _rand(3, 4)
    _same(fusegrad.roll(fusegrad.tensor(a), shifts, dims), np.roll(a, shifts, dims))


def test_roll_gradient_and_empty():
    gradcheck(lambda x: x.roll((1, -1), (0, 1)) * fusegrad.arange(12, dtype=fusegrad.float64).reshape(3, 4),
              _rand(3, 4))
    _same(fusegrad.tensor(np.zeros((0, 3))).roll(2, 0), np.zeros((0, 3)))


# ---------------------------------------------------------------- new_*

def test_new_factories_take_the_operand_dtype_and_device():
    x = fusegrad.zeros(2, dtype=fusegrad.float64)
    z = x.new_zeros(2, 3)
    assert z.dtype == fusegrad.float64 and z.device == x.device and tuple(z.shape) == (2, 3)
    _same(x.new_ones((3,)), np.ones(3))
    f = x.new_full((2, 2), 2.5, dtype=fusegrad.float32, requires_grad=True)
    assert f.dtype == fusegrad.float32 and f.requires_grad and f.is_leaf
    _same(f, np.full((2, 2), 2.5, np.float32))
    assert tuple(x.new_empty(0, 4).shape) == (0, 4)
    t = x.new_tensor([[1, 2], [3, 4]])
    assert t.dtype == fusegrad.float64 and not t.requires_grad
    _same(t, [[1.0, 2.0], [3.0, 4.0]])
    ints = fusegrad.tensor([1, 2]).new_tensor([1.7])
    assert ints.dtype == fusegrad.int64
    buf = x.new_zeros(3)
    buf[1] = 4.0
    _same(buf, [0.0, 4.0, 0.0])


# ---------------------------------------------------------------- addmm, baddbmm, addbmm

@pytest.mark.parametrize("beta, alpha", [(1, 1), (0.5, -2.0), (0, 1.5)])
def test_addmm_family_matches_numpy(beta, alpha):
    m1, m2, bias = _rand(4, 3), _rand(3, 5), _rand(5)
    _same(fusegrad.addmm(fusegrad.tensor(bias), fusegrad.tensor(m1), fusegrad.tensor(m2), beta=beta, alpha=alpha),
          beta * bias + alpha * m1 @ m2)
    b1, b2, full = _rand(2, 4, 3), _rand(2, 3, 5), _rand(2, 4, 5)
    _same(fusegrad.tensor(full[:, :1]).baddbmm(fusegrad.tensor(b1), fusegrad.tensor(b2), beta=beta, alpha=alpha),
          beta * full[:, :1] + alpha * b1 @ b2)
    _same(fusegrad.addbmm(fusegrad.tensor(full[0]), fusegrad.tensor(b1), fusegrad.tensor(b2), beta=beta, alpha=alpha),
          beta * full[0] + alpha * (b1 @ b2).sum(0))


def test_addmm_with_beta_zero_ignores_nan_input():
    bias = fusegrad.tensor([math.nan, math.inf])
    out = fusegrad.addmm(bias, fusegrad.ones(3, 2), fusegrad.ones(2, 2), beta=0)
    _same(out, np.full((3, 2), 2.0, np.float32))


def test_addmm_family_gradients():
    gradcheck(lambda b, m1, m2: fusegrad.addmm(b, m1, m2, beta=0.5, alpha=2.0), _rand(1, 4), _rand(3, 2), _rand(2, 4))
    gradcheck(lambda b, m1, m2: b.baddbmm(m1, m2, alpha=-1.0), _rand(3, 1), _rand(2, 3, 2), _rand(2, 2, 4))
    gradcheck(lambda b, m1, m2: fusegrad.addbmm(b, m1, m2), _rand(3, 4), _rand(2, 3, 2), _rand(2, 2, 4))


# ---------------------------------------------------------------- isnan, isinf, isfinite

def test_classification_matches_numpy():
    a = np.array([[1.0, math.nan, math.inf], [-math.inf, 0.0, -2.5]])
    x = fusegrad.tensor(a)
    for name in ("isnan", "isinf", "isfinite", "isposinf", "isneginf"):
        got = getattr(fusegrad, name)(x)
        assert got.dtype == fusegrad.bool
        np.testing.assert_array_equal(got.numpy(), getattr(np, name)(a))
        np.testing.assert_array_equal(getattr(x, name)().numpy(), getattr(np, name)(a))
    ints = fusegrad.tensor([[1, 2]])
    np.testing.assert_array_equal(ints.isnan().numpy(), [[False, False]])
    np.testing.assert_array_equal(fusegrad.isfinite(ints).numpy(), [[True, True]])
    np.testing.assert_array_equal(fusegrad.isinf(fusegrad.tensor([True])).numpy(), [False])


# ---------------------------------------------------------------- var, std, norm

@pytest.mark.filterwarnings("ignore:Degrees of freedom <= 0", "ignore:divide by zero")   # numpy's, the reference
@pytest.mark.parametrize("shape, dim", [((4, 5), None), ((4, 5), 1), ((3, 1, 4), (0, 2)), ((2, 3), -2), ((6,), 0)])
@pytest.mark.parametrize("correction", [0, 1, 2])
@pytest.mark.parametrize("keepdim", [False, True])
def test_var_std_match_numpy(shape, dim, correction, keepdim):
    a = _rand(*shape)
    x = fusegrad.tensor(a)
    expected = np.var(a, axis=dim, ddof=correction, keepdims=keepdim)
    _same(fusegrad.var(x, dim, correction=correction, keepdim=keepdim), expected)
    _same(x.std(dim, correction=correction, keepdim=keepdim), np.sqrt(expected))
    v, m = fusegrad.var_mean(x, dim, correction=correction, keepdim=keepdim)
    _same(v, expected)
    _same(m, np.mean(a, axis=dim, keepdims=keepdim))
    s, m2 = fusegrad.std_mean(x, dim, correction=correction, keepdim=keepdim)
    _same(s, np.sqrt(expected))
    _same(m2, m.numpy())


def test_var_legacy_unbiased_forms_and_degenerate_sizes():
    a = _rand(3, 4)
    x = fusegrad.tensor(a)
    _same(x.var(False), np.var(a))
    _same(x.var(True), np.var(a, ddof=1))
    _same(fusegrad.std(x, 1, False, True), np.std(a, axis=1, keepdims=True))
    _same(fusegrad.var(x, 0, unbiased=True), np.var(a, axis=0, ddof=1))
    assert math.isnan(fusegrad.var(fusegrad.tensor([2.0])).item())       # 0 / 0, as PyTorch
    assert fusegrad.var(fusegrad.tensor([2.0, 3.0]), correction=3).item() == math.inf
    assert math.isnan(fusegrad.var(fusegrad.tensor(np.zeros((0,)))).item())
    assert fusegrad.var(x.float(), 1).dtype == fusegrad.float32


def test_var_std_gradients():
    gradcheck(lambda x: fusegrad.var(x, 1, keepdim=True), _rand(3, 4))
    gradcheck(lambda x: x.std((0, 2), correction=0), _rand(2, 3, 4))
    gradcheck(lambda x: fusegrad.std_mean(x, 0)[0] + fusegrad.std_mean(x, 0)[1] * 2, _rand(5, 2))


@pytest.mark.parametrize("p", [2, "fro", 1, 3, 0.5, math.inf, -math.inf, 0])
@pytest.mark.parametrize("dim, keepdim", [(None, False), (1, False), ((0, 2), True), (-1, True)])
def test_norm_matches_numpy(p, dim, keepdim):
    a = _rand(2, 3, 4)
    x = fusegrad.tensor(a)
    order = 2 if p == "fro" else p
    axes = tuple(range(3)) if dim is None else tuple(d % 3 for d in ((dim,) if isinstance(dim, int) else dim))
    rest = tuple(s for d, s in enumerate(a.shape) if d not in axes)
    flat = np.moveaxis(a, axes, tuple(range(-len(axes), 0))).reshape(rest + (-1,))
    expected = np.linalg.norm(flat, ord=order, axis=-1)
    if keepdim:
        expected = np.expand_dims(expected, axes)
    _same(fusegrad.norm(x, p, dim, keepdim), expected, rtol=1e-10)
    if p != "fro":
        _same(fusegrad.linalg.vector_norm(x, p, dim, keepdim), expected, rtol=1e-10)


def test_norm_defaults_dtype_and_gradients():
    a = _rand(3, 4)
    x = fusegrad.tensor(a)
    _same(x.norm(), np.linalg.norm(a))
    _same(fusegrad.linalg.norm(x, dim=1), np.linalg.norm(a, axis=1))
    assert fusegrad.norm(fusegrad.tensor([3, 4]), dtype=fusegrad.float64).item() == 5.0
    assert x.float().norm(dim=0).dtype == fusegrad.float32
    for p in (2, 1, 3, math.inf):
        gradcheck(lambda x, p=p: fusegrad.norm(x, p, 1), _rand(3, 4))
    z = fusegrad.zeros(3, dtype=fusegrad.float64, requires_grad=True)
    for p in (2, 3):
        (g,) = fusegrad.autograd.grad(fusegrad.norm(z, p), [z])
        np.testing.assert_array_equal(g.numpy(), np.zeros(3))     # as PyTorch: 0, not NaN, at 0


# ---------------------------------------------------------------- einsum

EINSUM_CASES = [
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij,jk", [(3, 4), (4, 2)]),
    ("ij->ji", [(3, 4)]),
    ("i,j->ij", [(3,), (4,)]),
    ("i,i->", [(5,), (5,)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("b...d,d->b...", [(2, 3, 4, 5), (5,)]),
    ("ii", [(4, 4)]),
    ("ii->i", [(3, 3)]),
    ("bii->bi", [(2, 3, 3)]),
    ("ijk->", [(2, 3, 4)]),
    ("ijk->j", [(2, 3, 4)]),
    ("ab,bc,cd->ad", [(2, 3), (3, 4), (4, 5)]),
    ("ab,cd->abcd", [(2, 3), (1, 2)]),
    ("i,i->i", [(4,), (1,)]),
    ("ij,ij->i", [(3, 4), (1, 4)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("Ab,bA->A", [(3, 2), (2, 3)]),
    ("i j , j k -> i k", [(2, 3), (3, 2)]),
    ("ij,jk->ik", [(0, 3), (3, 2)]),
]


@pytest.mark.parametrize("equation, shapes", EINSUM_CASES)
def test_einsum_matches_numpy(equation, shapes):
    arrays = [_rand(*s) for s in shapes]
    got = fusegrad.einsum(equation, *[fusegrad.tensor(a) for a in arrays])
    _same(got, np.einsum(equation.replace(" ", ""), *arrays), rtol=1e-10, atol=1e-12)
    listed = fusegrad.einsum(equation, [fusegrad.tensor(a) for a in arrays])
    _same(listed, got.numpy())


def test_einsum_gradients():
    gradcheck(lambda a, b: fusegrad.einsum("bij,bkj->bik", a, b), _rand(2, 3, 2), _rand(2, 4, 2))
    gradcheck(lambda a, b: fusegrad.einsum("i,j->ij", a, b), _rand(3), _rand(2))
    gradcheck(lambda a: fusegrad.einsum("bii->b", a), _rand(2, 3, 3))
    gradcheck(lambda a, b, c: fusegrad.einsum("ab,bc,c->a", a, b, c), _rand(2, 3), _rand(3, 2), _rand(2))


def test_einsum_keeps_integer_dtypes():
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    for equation in ("ij->i", "ij,kj->ik", "ii->"):
        arrays = [a[:3, :3]] if equation == "ii->" else [a] * equation.count(",") + [a]
        got = fusegrad.einsum(equation, *[fusegrad.tensor(x) for x in arrays])
        assert got.dtype == fusegrad.int32, equation
        np.testing.assert_array_equal(got.numpy(), np.einsum(equation, *arrays))


def test_einsum_contraction_is_a_matmul():
    a, b = fusegrad.tensor(_rand(2, 3, 4)), fusegrad.tensor(_rand(2, 5, 4))
    out = fusegrad.einsum("bij,bkj->bik", a, b)
    out.numpy()
    assert "matmul" in fusegrad.program_of(out).text("graph")


# ---------------------------------------------------------------- addcmul, addcdiv, lerp

def test_addcmul_addcdiv_lerp_match_numpy():
    a, b, c = _rand(3, 4), _rand(4), _rand(3, 1) + 3.0
    x, y, z = fusegrad.tensor(a), fusegrad.tensor(b), fusegrad.tensor(c)
    _same(fusegrad.addcmul(x, y, z, value=-0.5), a - 0.5 * b * c)
    _same(x.addcdiv(y, z, value=2), a + 2 * b / c)
    _same(fusegrad.lerp(x, y, 0.3), a + 0.3 * (b - a))
    _same(x.lerp(y, 0.8), b - (b - a) * (1 - 0.8))
    _same(fusegrad.lerp(x, y, z - 3.0), np.where(np.abs(c - 3) < 0.5, a + (c - 3) * (b - a), b - (b - a) * (4 - c)))
    assert fusegrad.lerp(x, y, 1.0).numpy().tolist() == np.broadcast_to(b, (3, 4)).tolist()  # exactly end
    ints = fusegrad.tensor([1, 2])
    assert fusegrad.addcmul(ints, ints, ints).dtype == fusegrad.int64
    assert fusegrad.addcmul(x.float()[:2], ints.reshape(2, 1), ints.reshape(2, 1)[:1]).dtype == fusegrad.float32
    assert fusegrad.addcdiv(ints, ints.float(), ints).dtype == fusegrad.float32


def test_pointwise_compound_gradients():
    gradcheck(lambda x, y, z: fusegrad.addcmul(x, y, z, value=0.7), _rand(2, 3), _rand(3), _rand(2, 1))
    gradcheck(lambda x, y, z: x.addcdiv(y, z, value=-1.5), _rand(2, 3), _rand(3), _rand(2, 1) + 3.0)
    gradcheck(lambda x, y: fusegrad.lerp(x, y, 0.25) + fusegrad.lerp(x, y, 0.75), _rand(2, 3), _rand(3))
    gradcheck(lambda x, y, w: x.lerp(y, w), _rand(2, 3), _rand(3), RNG.random((2, 1)))


def test_in_place_compounds_update_and_check_like_inplace_ops():
    a, b, c = _rand(2, 3), _rand(3), _rand(2, 3) + 3.0
    x = fusegrad.tensor(a)
    assert x.addcmul_(fusegrad.tensor(b), fusegrad.tensor(c), value=2) is x
    _same(x, a + 2 * b * c)
    x.addcdiv_(fusegrad.tensor(b), fusegrad.tensor(c))
    _same(x, a + 2 * b * c + b / c)
    x.lerp_(fusegrad.tensor(b), 0.5)
    expected = a + 2 * b * c + b / c
    _same(x, b - (b - expected) * 0.5)
    base = fusegrad.zeros(3, 4, dtype=fusegrad.float64)
    base[1:].lerp_(fusegrad.ones(2, 4, dtype=fusegrad.float64), 0.25)     # through a view, into the base
    _same(base, np.concatenate([np.zeros((1, 4)), np.full((2, 4), 0.25)]))
    leaf = fusegrad.zeros(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        leaf.addcmul_(fusegrad.ones(2), fusegrad.ones(2))
    with pytest.raises(RuntimeError, match="output with shape"):
        fusegrad.zeros(3).addcmul_(fusegrad.ones(2, 3), fusegrad.ones(3))
    with pytest.raises(RuntimeError, match="can't be cast"):
        fusegrad.zeros(3, dtype=fusegrad.int64).addcdiv_(fusegrad.ones(3), fusegrad.ones(3))


def test_gradient_flows_through_in_place_compound_of_a_non_leaf():
    def f(x, y):
        h = x * 1.0
        h.addcmul_(x, y, value=0.5)
        h.lerp_(y, 0.3)
        return h
    gradcheck(f, _rand(2, 3), _rand(2, 3))


# ---------------------------------------------------------------- compiled equals eager

def _block(x, w):
    q, k, v = (x @ w).chunk(3, -1)
    scores = fusegrad.einsum("bqd,bkd->bqk", q, k) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(fusegrad.ones(scores.shape[-2:], dtype=fusegrad.bool).triu(1), -1e9)
    att = scores.softmax(-1) @ v
    mixed = att.roll(1, 1).flip(-1) + att.repeat(1, 1, 1)
    h = mixed.addcmul(mixed, mixed, value=0.1).lerp(mixed.new_zeros(mixed.shape), 0.2)
    h.addcdiv_(h, h.abs() + 1.0, value=0.5)
    h[:, 0].lerp_(h[:, 1], 0.3)
    return (h.var(-1, keepdim=True) + h.norm(dim=-1, keepdim=True)).sum() + fusegrad.stack(h.unbind(1)).std()


def test_compiled_step_equals_eager():
    xs = _rand(2, 4, 6)
    w0 = _rand(6, 9) * 0.3

    def run(compiled):
        w = fusegrad.tensor(w0, requires_grad=True)      # captured, as a model's parameters are

        def step(x):
            loss = _block(x, w)
            loss.backward()
            return loss

        fn = fusegrad.compile(step) if compiled else step
        outs, grads = [], []
        for scale in (1.0, 2.0):
            w.grad = None
            outs.append(fn(fusegrad.tensor(xs * scale)).item())
            grads.append(w.grad.numpy().copy())
        return outs, grads

    eager_out, eager_grads = run(False)
    compiled_out, compiled_grads = run(True)
    np.testing.assert_allclose(compiled_out, eager_out, rtol=1e-12)
    for g, e in zip(compiled_grads, eager_grads):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- errors name the op, the shapes and the line

def test_errors_name_the_op_and_the_users_line():
    x = fusegrad.zeros(5, 3)
    _raises_at_line(lambda: fusegrad.split(x, [2, 2]), RuntimeError,
                    ["split_with_sizes expects split_sizes to sum exactly to 5", "f32[5,3]"], "split_with_sizes")
    _raises_at_line(lambda: x.split(-1), RuntimeError, ["split_size be non-negative"], "split")
    _raises_at_line(lambda: x.chunk(0), RuntimeError, ["chunk expects `chunks` to be greater than 0"], "chunk")
    _raises_at_line(lambda: x.unbind(2), IndexError, ["Dimension out of range"], "unbind")
    _raises_at_line(lambda: fusegrad.tensor(1.0).chunk(2), RuntimeError, ["at least a 1-dimensional"], "chunk")
    _raises_at_line(lambda: fusegrad.zeros(3).tril(), RuntimeError, ["at least 2 dimensions"], "tril")
    _raises_at_line(lambda: x.repeat(2), RuntimeError, ["can not be smaller than number of dimensions"], "repeat")
    _raises_at_line(lambda: x.repeat(2, -1), RuntimeError, ["negative dimension -3: [10, -3]"], "repeat")
    _raises_at_line(lambda: x.repeat_interleave(-1), RuntimeError, ["Repeats must be non-negative"],
                    "repeat_interleave")
    _raises_at_line(lambda: x.repeat_interleave(fusegrad.tensor([1, 2]), dim=0), RuntimeError,
                    ["repeats.size(0) = 2 and input.size(0) = 5"], "repeat_interleave")
    _raises_at_line(lambda: x.flip(0, -2), RuntimeError, ["dim 0 appears multiple times"], "flip")
    _raises_at_line(lambda: x.roll((1, 2), 0), RuntimeError, ["shifts and dimensions must align"], "roll")
    _raises_at_line(lambda: fusegrad.addmm(fusegrad.zeros(3), fusegrad.zeros(2, 4), fusegrad.zeros(5, 3)),
                    RuntimeError, ["mat1 and mat2 shapes cannot be multiplied (2x4 and 5x3)"], "matmul")
    _raises_at_line(lambda: fusegrad.addmm(fusegrad.zeros(4), fusegrad.zeros(2, 4), fusegrad.zeros(4, 3)),
                    RuntimeError, ["The expanded size of the tensor (3) must match the existing size (4)"], "expand")
    _raises_at_line(lambda: fusegrad.addmm(x, x.double(), x.T), RuntimeError,
                    ["mat1 and mat2 must have the same dtype, but got Double and Float"], "addmm")
    _raises_at_line(lambda: fusegrad.baddbmm(x, fusegrad.zeros(2, 2, 4), fusegrad.zeros(3, 4, 3)), RuntimeError,
                    ["Expected size for first two dimensions of batch2 tensor to be: [2, 4] but got: [3, 4]."],
                    "baddbmm")
    _raises_at_line(lambda: fusegrad.var(x.long()), RuntimeError,
                    ["std and var only support floating point and complex dtypes"], "var")
    _raises_at_line(lambda: x.long().norm(), RuntimeError, ["Expected a floating point or complex tensor as input. "
                                                            "Got Long"], "vector_norm")
    _raises_at_line(lambda: fusegrad.einsum("ij,jk", x, x), RuntimeError,
                    ["subscript j has size 5 for operand 1 which does not broadcast with previously seen size 3"],
                    "einsum")
    _raises_at_line(lambda: fusegrad.einsum("ijk->ij", x), RuntimeError,
                    ["number of subscripts in the equation (3) does not match the number of dimensions (2)"], "einsum")
    _raises_at_line(lambda: fusegrad.einsum("ij->iz", x), RuntimeError,
                    ["output subscript z does not appear in the equation"], "einsum")
    _raises_at_line(lambda: fusegrad.einsum("ij,jk->ik", x), RuntimeError, ["fewer operands"], "einsum")
    _raises_at_line(lambda: fusegrad.lerp(x, x.double(), 0.5), RuntimeError,
                    ["expected dtype float for `end` but got dtype double"], "lerp")
    _raises_at_line(lambda: fusegrad.lerp(x.long(), x.long(), 0.5), NotImplementedError,
                    ['"lerp_kernel_scalar" not implemented for \'Long\''], "lerp")
    _raises_at_line(lambda: fusegrad.addcdiv(x, x.long(), x.long()), RuntimeError,
                    ["Integer division with addcdiv is no longer supported"], "addcdiv")


def test_edge_cases_as_pytorch():
    scalar = fusegrad.tensor(1.5)
    assert fusegrad.flip(scalar, (0,)).item() == 1.5 and scalar.roll(3).item() == 1.5
    with pytest.raises(TypeError, match="repeats"):
        fusegrad.ones(2).repeat()
    _raises_at_line(lambda: fusegrad.norm(fusegrad.zeros(0, 3), math.inf), RuntimeError,
                    ["cannot compute the inf norm on an empty tensor"], "vector_norm")
    _same(fusegrad.norm(fusegrad.zeros(0, 3), math.inf, 1), np.zeros(0, np.float32))     # nothing reduced is empty
    weight = fusegrad.tensor(0.25, dtype=fusegrad.float64)       # a 0-d weight may have another float dtype
    got = fusegrad.lerp(fusegrad.ones(2), fusegrad.zeros(2), weight)
    assert got.dtype == fusegrad.float32
    _same(got, np.full(2, 0.75, np.float32))
    ints = fusegrad.ones(2, 2, dtype=fusegrad.int64)
    out = fusegrad.addmm(ints, ints, ints, beta=0.5, alpha=1.5)          # truncated to 0 and 1, as PyTorch's kernel
    assert out.dtype == fusegrad.int64
    np.testing.assert_array_equal(out.numpy(), np.full((2, 2), 2))

