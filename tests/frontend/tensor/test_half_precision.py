"""float16 and bfloat16 tensors: 16-bit storage, float32 arithmetic, one rounding per stored
value (round to nearest, ties to even), as PyTorch users know them.

References: numpy's float16 for half; for bfloat16 `bf16` below, which rounds float32 values
by their bit patterns. Values are computed in float64 or float32 and rounded once, so a kernel
that rounded at every step, or accumulated in 16 bits, fails. PyTorch is the oracle where it
is installed.
"""
from __future__ import annotations

import numpy as np
import pytest

import fusegrad as torch
from fusegrad import nn

HALF_ULP = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}     # spacing relative to the value


def bf16(x) -> np.ndarray:
    """float32 values rounded to bfloat16 (nearest, ties to even), read back as float32: the
    lower 16 bits past the middle, or at it with an odd upper half, round the upper half up."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    upper, lower = bits >> 16, bits & 0xFFFF
    up = (lower > 0x8000) | ((lower == 0x8000) & (upper & 1 == 1))
    return ((upper + up).astype(np.uint32) << 16).view(np.float32).reshape(np.shape(x))


def rounded(x, name: str) -> np.ndarray:
    """`x` rounded once (through float32, as PyTorch's conversions do) to dtype `name`, as float32."""
    x32 = np.asarray(x, np.float32)
    return x32.astype(np.float16).astype(np.float32) if name == "float16" else bf16(x32)


def values(t) -> np.ndarray:
    """A 16-bit tensor's values as float32 (through the public API: .float())."""
    return t.float().numpy()


@pytest.fixture(params=["float16", "bfloat16"])
def name(request):
    return request.param


@pytest.fixture
def dt(name):
    return getattr(torch, name)


def data(rng, shape, name, scale=2.0):
    """Random values already exact in dtype `name` (as float32)."""
    return rounded(rng.standard_normal(shape) * scale, name)


# ---------------------------------------------------------------- dtypes, conversions

def test_dtype_objects():
    assert torch.half is torch.float16 and torch.float16 is not torch.bfloat16
    assert repr(torch.float16) == "fusegrad.float16" and repr(torch.bfloat16) == "fusegrad.bfloat16"
    assert torch.float16.itemsize == torch.bfloat16.itemsize == 2
    assert torch.float16.is_floating_point and torch.bfloat16.is_floating_point
    assert torch.ones(2).half().type() == "torch.HalfTensor"
    assert torch.ones(2).bfloat16().type() == "torch.BFloat16Tensor"


def test_bfloat16_reference_rounds_to_nearest_even():
    """The test's own reference, on the cases that tell the rounding rules apart."""
    one = np.float32(1.0)
    step = np.float32(2.0 ** -7)                            # bfloat16 spacing at 1
    x = np.array([one + step / 2, one + 3 * step / 2, one + step / 2 + 2.0 ** -20, -(one + step / 4)], np.float32)
    np.testing.assert_array_equal(bf16(x), [1.0, 1.0 + 2 * step, 1.0 + step, -1.0])


def test_creation_and_rounding(rng, name, dt):
    x = rng.standard_normal(50) * 100
    for t in (torch.tensor(x, dtype=dt), torch.tensor(x.tolist(), dtype=dt), torch.tensor(x).to(dt),
              torch.tensor(x.astype(np.float32)).to(dtype=dt), getattr(torch.tensor(x), "half" if
              name == "float16" else "bfloat16")()):
        assert t.dtype is dt
        np.testing.assert_array_equal(values(t), rounded(x, name))
    assert torch.zeros(3, dtype=dt).tolist() == [0.0] * 3
    assert values(torch.full((2,), 0.1, dtype=dt)).tolist() == [rounded(0.1, name)] * 2
    np.testing.assert_array_equal(values(torch.arange(0, 1000, 7, dtype=dt)), rounded(np.arange(0, 1000, 7), name))
    np.testing.assert_array_equal(values(torch.eye(3, dtype=dt)), np.eye(3))
    r = torch.rand(1000, dtype=dt)
    assert r.dtype is dt and 0 <= values(r).min() and values(r).max() < 1
    assert len(np.unique(values(r))) > 100


def test_numpy_item_tolist(rng, name, dt):
    x = data(rng, (3, 4), name)
    t = torch.tensor(x, dtype=dt)
    assert isinstance(t[1, 2].item(), float) and t[1, 2].item() == float(x[1, 2])
    assert t.tolist() == x.tolist()
    if name == "float16":
        a = t.numpy()
        assert a.dtype == np.float16
        np.testing.assert_array_equal(a, x.astype(np.float16))
    else:
        with pytest.raises(TypeError, match="Got unsupported ScalarType BFloat16"):
            t.numpy()


def test_from_numpy_float16_shares_memory(rng):
    a = rng.standard_normal((2, 5)).astype(np.float16)
    t = torch.from_numpy(a)
    assert t.dtype is torch.float16
    a[0, 0] = 3.5
    assert t[0, 0].item() == 3.5
    assert torch.tensor(a).dtype is torch.float16
    with pytest.raises(TypeError, match="uint16"):
        torch.from_numpy(np.zeros(3, np.uint16))      # not bfloat16: numpy has none


def test_repr(dt, name):
    t = torch.tensor([0.1, 2.0, -3.5], dtype=dt)
    assert repr(t) == f"tensor([ {rounded(0.1, name):.4f},  2.0000, -3.5000], dtype=fusegrad.{name})"
    assert repr(torch.tensor([1.0, 2.0], dtype=dt, requires_grad=True)) == \
        f"tensor([1., 2.], dtype=fusegrad.{name}, requires_grad=True)"


# ---------------------------------------------------------------- promotion

def test_promotion_table():
    f16, bf, f32, f64 = torch.float16, torch.bfloat16, torch.float32, torch.float64
    h = torch.ones(2, dtype=f16)
    b = torch.ones(2, dtype=bf)
    cases = [
        (h + h, f16), (h + torch.ones(2), f32), (h + b, f32), (b + b, bf), (b * torch.ones(2, dtype=f64), f64),
        (torch.ones(2, dtype=torch.int32) + torch.ones((), dtype=f16), f16),        # int tensor + half
        (torch.ones(2, dtype=torch.int64) * b, bf), (torch.ones(2, dtype=torch.uint8) - h, f16),
        (h * 2.5, f16), (b / 3, bf), (2 ** h, f16),                                 # Python scalars
        (h + torch.ones((), dtype=f64), f16),                                       # zero-dim tensors
        (torch.ones(2, dtype=torch.bool) + b, bf), (h < b, torch.bool), (torch.ones(2, dtype=torch.int32) / 2, f32),
    ]
    for i, (t, want) in enumerate(cases):
        assert t.dtype is want, (i, t.dtype, want)
    assert torch.promote_types(f16, bf) is f32 and torch.promote_types(f16, f16) is f16
    assert torch.promote_types(torch.int64, bf) is bf and torch.promote_types(f16, f64) is f64
    assert torch.result_type(h, 1.0) is f16 and torch.result_type(h, b) is f32


def test_mixed_operands_round_each_input_once(rng, name, dt):
    x, y = data(rng, 100, name), rng.standard_normal(100).astype(np.float32)
    got = torch.tensor(x, dtype=dt) * torch.tensor(y)           # float32 result: no 16-bit rounding
    assert got.dtype is torch.float32
    np.testing.assert_allclose(got.numpy(), x * y, rtol=1e-6)


# ---------------------------------------------------------------- arithmetic

def test_elementwise_in_float32_rounded_once(rng, name, dt):
    x, y = data(rng, 2000, name), data(rng, 2000, name)
    tx, ty = torch.tensor(x, dtype=dt), torch.tensor(y, dtype=dt)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    for got, want in ((tx * ty + 1, x64 * y64 + 1), (tx / (ty.abs() + 0.5), x64 / (np.abs(y64) + 0.5)),
                      (torch.exp(tx) * 0.1 - ty, np.exp(x64) * 0.1 - y64), (torch.tanh(tx) * ty, np.tanh(x64) * y64),
                      (torch.sqrt(tx.abs()), np.sqrt(np.abs(x64)))):
        assert got.dtype is dt
        ulp = HALF_ULP[name]
        np.testing.assert_allclose(values(got), rounded(want, name), rtol=ulp, atol=ulp * 1e-3)
    # exact operations round exactly once: products of 16-bit values are exact in float32
    np.testing.assert_array_equal(values(tx * ty), rounded(x * y, name))
    np.testing.assert_array_equal(values(tx + ty), rounded(x + y, name))


def test_casts_round(rng, name, dt):
    x = rng.standard_normal(500).astype(np.float32) * 1000
    t = torch.tensor(x)
    np.testing.assert_array_equal(t.to(dt).float().numpy(), rounded(x, name))
    np.testing.assert_array_equal((t * 1).to(dt).float().numpy(), rounded(x, name))        # fused cast
    np.testing.assert_array_equal(torch.tensor(x.astype(np.float64)).to(dt).double().numpy(), rounded(x, name))
    ints = torch.tensor(x.astype(np.int64)).to(dt)
    np.testing.assert_array_equal(values(ints), rounded(x.astype(np.int64), name))
    other = torch.bfloat16 if dt is torch.float16 else torch.float16
    np.testing.assert_array_equal(values(t.to(dt).to(other)), rounded(rounded(x, name), other.name))
    big = torch.tensor([70000.0, float(np.finfo(np.float32).min), float("nan")]).to(dt)
    got = values(big)
    if name == "float16":
        assert got[0] == np.inf and got[1] == -np.inf
    else:
        assert got[0] == rounded(70000.0, name) and got[1] == -np.inf
    assert np.isnan(got[2])


def test_reductions_accumulate_in_float32(name, dt):
    n = 4096
    x = torch.full((n,), 0.1, dtype=dt)
    tenth = float(rounded(0.1, name))
    once = float(rounded(tenth * n, name))            # the float32 sum, rounded once
    naive = np.float32(0)
    for _ in range(n):                                # adding in 16 bits stalls far below
        naive = rounded(naive + np.float32(tenth), name)
    assert abs(float(naive) - tenth * n) > 8 * HALF_ULP[name] * tenth * n
    assert x.sum().item() == once
    assert x.reshape(64, 64).sum(0).float().numpy().tolist() == [float(rounded(tenth * 64, name))] * 64
    assert x.reshape(64, 64).sum(1).float().numpy().tolist() == [float(rounded(tenth * 64, name))] * 64
    assert x.mean().item() == float(rounded(np.float32(tenth * n) / n, name))
    assert x.sum().dtype is dt and x.mean().dtype is dt


def test_reductions_and_softmax(rng, name, dt):
    x = data(rng, (37, 300), name)
    t = torch.tensor(x, dtype=dt)
    x64 = x.astype(np.float64)
    ulp = HALF_ULP[name]
    np.testing.assert_array_equal(values(t.max(1).values), x.max(1))
    np.testing.assert_array_equal(values(t.amin(0)), x.min(0))
    np.testing.assert_allclose(values(t.sum(1)), rounded(x64.sum(1), name), rtol=ulp)
    np.testing.assert_allclose(values(t.mean(0)), rounded(x64.mean(0), name), rtol=ulp, atol=ulp * 1e-3)
    e = np.exp(x64 - x64.max(1, keepdims=True))
    np.testing.assert_allclose(values(t.softmax(1)), rounded(e / e.sum(1, keepdims=True), name), rtol=ulp, atol=1e-7)
    np.testing.assert_allclose(values(t.log_softmax(1)), rounded(np.log(e / e.sum(1, keepdims=True)), name),
                               rtol=ulp)


@pytest.mark.parametrize("shape", [((33, 70), (70, 19)), ((2, 5, 130), (130, 8))])
def test_matmul_accumulates_in_float32(rng, name, dt, shape):
    a, b = data(rng, shape[0], name, 1.0), data(rng, shape[1], name, 1.0)
    got = torch.tensor(a, dtype=dt) @ torch.tensor(b, dtype=dt)
    assert got.dtype is dt
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(values(got), rounded(want, name), rtol=HALF_ULP[name], atol=1e-3 * HALF_ULP[name])


def test_matmul_of_many_equal_terms_rounds_once(name, dt):
    a = torch.full((4, 2048), 0.1, dtype=dt)
    b = torch.ones(2048, 3, dtype=dt)
    tenth = rounded(0.1, name)
    assert values(a @ b).tolist() == [[float(rounded(np.float32(tenth) * 2048, name))] * 3] * 4


# ---------------------------------------------------------------- autograd, compile

def test_backward_gives_16_bit_gradients(rng, name, dt):
    x, w = data(rng, (6, 5), name, 1.0), data(rng, (5, 4), name, 1.0)
    tx = torch.tensor(x, dtype=dt, requires_grad=True)
    tw = torch.tensor(w, dtype=dt, requires_grad=True)
    loss = (torch.tanh(tx @ tw) * 0.5).sum()
    loss.backward()
    assert tx.grad.dtype is dt and tw.grad.dtype is dt and loss.dtype is dt
    h = np.tanh(x.astype(np.float64) @ w)
    g = (1 - h ** 2) * 0.5
    tol = 8 * HALF_ULP[name]         # forward values rounded where materialized
    np.testing.assert_allclose(values(tx.grad), g @ w.T, rtol=tol, atol=tol)
    np.testing.assert_allclose(values(tw.grad), x.T.astype(np.float64) @ g, rtol=tol, atol=tol)


def _train(dt, compiled: bool):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).to(dt)
    assert all(p.dtype is dt for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    crit = nn.CrossEntropyLoss()
    x, y = torch.randn(32, 8).to(dt), torch.randint(0, 3, (32,))

    def step(x, y):
        opt.zero_grad()
        loss = crit(model(x), y)
        loss.backward()
        opt.step()
        return loss
    fn = torch.compile(step) if compiled else step
    losses = [fn(x, y).item() for _ in range(3)]
    return losses, [values(p.detach()) for p in model.parameters()]


def test_compiled_training_step_equals_eager(name, dt):
    eager_losses, eager_params = _train(dt, False)
    losses, params = _train(dt, True)
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(losses, eager_losses, rtol=4 * HALF_ULP[name])
    for p, q in zip(params, eager_params):
        np.testing.assert_allclose(p, q, rtol=4 * HALF_ULP[name], atol=4 * HALF_ULP[name])


def test_compiled_results_keep_their_dtype(dt):
    f = torch.compile(lambda x: (x * 2, x.sum(), x.float()))
    x = torch.ones(4, dtype=dt)
    for _ in range(2):
        a, s, w = f(x)
        assert (a.dtype, s.dtype, w.dtype) == (dt, dt, torch.float32)
        assert a.tolist() == [2.0] * 4 and s.item() == 4.0


# ---------------------------------------------------------------- PyTorch as the oracle

def test_against_pytorch(rng, name, dt):
    real = pytest.importorskip("torch")
    tdt = getattr(real, name)
    x, y = data(rng, (16, 40), name), data(rng, (40, 8), name)
    ours = {"x": torch.tensor(x, dtype=dt), "y": torch.tensor(y, dtype=dt)}
    theirs = {"x": real.tensor(x, dtype=tdt), "y": real.tensor(y, dtype=tdt)}
    exprs = [lambda m, t: t["x"] * 3 + 1, lambda m, t: t["x"] + t["x"] * 0.1, lambda m, t: t["x"].sum(1),
             lambda m, t: t["x"].softmax(1), lambda m, t: t["x"] @ t["y"], lambda m, t: t["x"].max(0).values,
             lambda m, t: t["x"] + m.ones(40, dtype=m.float32), lambda m, t: t["x"].float().to(t["y"].dtype)]
    for i, e in enumerate(exprs):
        a, b = e(torch, ours), e(real, theirs)
        assert a.dtype.name == str(b.dtype).split(".")[1], i
        np.testing.assert_allclose(a.float().numpy(), b.float().numpy(), rtol=2 * HALF_ULP[name],
                                   atol=2 * HALF_ULP[name], err_msg=str(i))
    assert repr(ours["x"][:2, :3]).replace("fusegrad", "torch") == repr(theirs["x"][:2, :3])
    assert torch.promote_types(torch.float16, torch.bfloat16).name == \
        str(real.promote_types(real.float16, real.bfloat16)).split(".")[1]
    for args in ((-3, 7, 37), (0.1, 100, 1000), (5, -300, 3000), (2.5, 2.5, 1)):    # in 16-bit arithmetic
        np.testing.assert_array_equal(values(torch.linspace(*args, dtype=dt)),
                                      real.linspace(*args, dtype=tdt).float().numpy(), err_msg=str(args))


def test_nn_functional_against_pytorch(rng, name, dt):
    real = pytest.importorskip("torch")
    tnf = real.nn.functional
    fnf = torch.nn.functional
    tdt = getattr(real, name)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3
    v, g = rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    idx = np.array([0, 2, 1, 5])
    cases = {
        "conv2d": lambda nf, m, c: nf.conv2d(c(x), c(w), padding=1),
        "layer_norm": lambda nf, m, c: nf.layer_norm(c(v), (6,), c(g), c(g)),
        "max_pool2d": lambda nf, m, c: nf.max_pool2d(c(x), 2),
        "cross_entropy": lambda nf, m, c: nf.cross_entropy(c(v), m.tensor(idx)),
        "gelu": lambda nf, m, c: nf.gelu(c(v)),
        "embedding": lambda nf, m, c: nf.embedding(m.tensor(idx), c(v.T.copy())),
        "mse_loss": lambda nf, m, c: nf.mse_loss(c(v), c(v[::-1].copy())),
    }
    for case, fn in cases.items():
        a = fn(fnf, torch, lambda arr: torch.tensor(arr).to(dt))
        b = fn(tnf, real, lambda arr: real.tensor(arr).to(tdt))
        assert a.dtype.name == name, case
        b32 = b.float().numpy()
        np.testing.assert_allclose(a.float().numpy(), b32, rtol=0, atol=2 * HALF_ULP[name] * np.abs(b32).max(),
                                   err_msg=case)


def test_on_the_emulated_gpu_as_on_the_cpu(monkeypatch, rng, name, dt):
    ptx_emulator = pytest.importorskip("ptx_emulator")
    if ptx_emulator.compiler() is None:
        pytest.skip("no C compiler for the PTX emulator")
    x, w = data(rng, (37, 64), name), data(rng, (64, 5), name)
    cpu = [torch.tensor(x, dtype=dt), torch.tensor(w, dtype=dt)]
    want = [values(f(*cpu)) for f in (lambda a, b: a.softmax(1), lambda a, b: a @ b, lambda a, b: a.sum(0) * 0.5)]
    ptx_emulator.install_emulated_device(monkeypatch)
    gpu = [t.cuda() for t in cpu]
    assert gpu[0].dtype is dt and gpu[0].is_cuda
    got = [f(*gpu) for f in (lambda a, b: a.softmax(1), lambda a, b: a @ b, lambda a, b: a.sum(0) * 0.5)]
    for g, wv in zip(got, want):
        assert g.is_cuda and g.dtype is dt
        np.testing.assert_allclose(values(g.cpu()), wv, rtol=HALF_ULP[name], atol=1e-6)


def test_composite_reductions_round_once(rng, name, dt):
    """mean, softmax, log_softmax, logsumexp and layer_norm compute in float32 and round their
    result once, as PyTorch's 16-bit kernels: (almost) every value is the exact result rounded.
    Rounding an intermediate (the row sums) first would miss on a good part of them."""
    x = data(rng, (64, 300), name, 1.0)
    t = torch.tensor(x, dtype=dt, requires_grad=True)
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(1, keepdims=True))
    sm = e / e.sum(1, keepdims=True)
    centered = x64 - x64.mean(1, keepdims=True)
    cases = [(t.mean(1), x64.mean(1), "MeanBackward1"), (t.softmax(1), sm, "SoftmaxBackward0"),
             (t.log_softmax(1), np.log(sm), "LogSoftmaxBackward0"),
             (torch.logsumexp(t, 1), np.log(np.exp(x64).sum(1)), "LogsumexpBackward0"),
             (nn.functional.layer_norm(t, (300,)), centered / np.sqrt((centered ** 2).mean(1, keepdims=True) + 1e-5),
              "NativeLayerNormBackward0")]
    for got, want, grad_name in cases:
        assert got.dtype is dt and got.grad_fn.name() == grad_name
        missed = np.mean(values(got.detach()) != rounded(want, name))
        assert missed < 0.005, (grad_name, missed)
    t.softmax(1).sum().backward()
    assert t.grad.dtype is dt


def test_16_bit_default_dtype(dt):
    before = torch.get_default_dtype()
    torch.set_default_dtype(dt)
    try:
        assert torch.tensor([1.5]).dtype is dt and torch.rand(2).dtype is dt and torch.zeros(2).dtype is dt
        assert (torch.ones(2, dtype=torch.int64) * 1.5).dtype is dt
        assert (torch.ones(2, dtype=torch.float32) * 1.5).dtype is torch.float32
        assert nn.Linear(2, 3).weight.dtype is dt
    finally:
        torch.set_default_dtype(before)
    assert torch.tensor([1.5]).dtype is before
    with pytest.raises(TypeError, match="floating-point"):
        torch.set_default_dtype(torch.int32)
