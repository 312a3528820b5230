"""The native random fills (codegen/random_fill.py) behind rand, randn, uniform_ and normal_:
the numbers equal the numpy reference of the Philox stream (bit for bit for uniforms, within a
few ulp for normals, whose log1p/sin/cos are our own), whatever the thread split, and filling
a tensor in place keeps PyTorch's semantics: pending readers see the old value, numpy views
of the memory see the new one, views and autograd go the general way."""
import numpy as np
import pytest

import fusegrad as torch
from fusegrad import philox
from fusegrad.runtime import library

SEED = 20261207


def reference_uniform(seed, start, n, digits=None):
    w0, w1 = philox.philox_words(seed, start, n)
    if digits:
        return (w0 >> np.uint64(32 - digits)).astype(np.float32) * np.float32(2.0 ** -digits)
    return (((w0 << np.uint64(32)) | w1) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def reference_normal(seed, start, n):
    u = reference_uniform(seed, start, 2 * ((n + 1) // 2))
    r = np.sqrt(-2.0 * np.log1p(-u[0::2]))
    return np.concatenate([r * np.cos(2 * np.pi * u[1::2]), r * np.sin(2 * np.pi * u[1::2])])[:n]


@pytest.fixture(params=[1, 3], ids=["one-part", "three-parts"])
def parts(request, monkeypatch):
    """Fills split into `parts` threads' ranges (small parts, so that small draws split too)."""
    split = library.run_split
    monkeypatch.setattr(library, "run_split", lambda call, count: split(call, count, min_part=1))
    monkeypatch.setattr(library.cpu, "num_threads", lambda: request.param)
    return request.param


@pytest.mark.parametrize("dtype, digits", [(np.float32, 24), (np.float16, 11), (np.float32, 8)])
def test_uniform_bits_equal_the_reference(parts, dtype, digits):
    g = torch.Generator(SEED)
    g.manual_seed(SEED)
    philox.uniform(5, np.float64, g)                         # start at counter 5
    got = philox.uniform(1001, dtype, g, digits=digits if digits == 8 else None)
    want = reference_uniform(SEED, 5, 1001, digits).astype(dtype)
    assert got.dtype == dtype and np.array_equal(got, want)
    assert g.offset == 1006


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_uniform_between_rounds_the_float64_value_once(parts, dtype):
    g = torch.Generator(SEED)
    got = philox.uniform_between(777, -2.5, 0.75, dtype, g)
    want = (-2.5 + (0.75 + 2.5) * reference_uniform(SEED, 0, 777)).astype(dtype)
    assert got.dtype == dtype and np.array_equal(got, want)


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 1001])
def test_normal_is_box_muller_on_the_stream(parts, n):
    g = torch.Generator(SEED)
    got = philox.normal(n, np.float64, g, mean=1.5, std=2.0)
    want = 1.5 + 2.0 * reference_normal(SEED, 0, n)
    np.testing.assert_allclose(got, want, rtol=4e-16 * 8, atol=4e-16 * 8)
    assert g.offset == n
    g32 = torch.Generator(SEED)
    assert philox.normal(n, np.float32, g32).dtype == np.float32


def test_factories_and_fills_draw_the_stream():
    torch.manual_seed(7)
    a = torch.rand(3, 5)
    b = torch.randn(4, dtype=torch.float64)
    c = torch.empty(2, 3).uniform_(-1, 1)
    np.testing.assert_array_equal(a.numpy(), reference_uniform(7, 0, 15, 24).reshape(3, 5))
    np.testing.assert_allclose(b.numpy(), reference_normal(7, 15, 4), rtol=1e-14)
    np.testing.assert_array_equal(c.numpy(), (-1 + 2 * reference_uniform(7, 19, 6)).astype(np.float32).reshape(2, 3))


def test_fill_in_place_keeps_pending_readers_and_shared_numpy_views_right():
    t = torch.ones(1000)
    pending = t * 2                        # lazy: reads t's old value
    shared = t.numpy()                     # shares t's memory
    version, runs = t._storage.version, torch.program_cache_info()["runs"]
    t.uniform_(5, 6)
    assert torch.program_cache_info()["runs"] == runs          # drawn into t's memory: no program ran
    assert pending.sum().item() == 2000.0
    assert shared.min() >= 5 and shared.max() < 6 and np.array_equal(shared, t.numpy())
    assert t._storage.version == version + 1


def test_fills_of_views_and_tracked_tensors_take_the_general_way():
    base = torch.zeros(4, 6)
    base[:, 1:3].normal_(10, 0.1)
    v = base.numpy()
    assert (v[:, 0] == 0).all() and (v[:, 3:] == 0).all() and abs(v[:, 1:3].mean() - 10) < 0.5
    leaf = torch.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        leaf.uniform_()
    with torch.no_grad():
        leaf.uniform_(2, 3)
    assert leaf.requires_grad and (leaf.detach().numpy() >= 2).all()


def test_a_compiled_function_draws_new_numbers_each_call():
    @torch.compile
    def noisy(x):
        return x + torch.rand(x.shape)
    x = torch.zeros(8)
    first, second = noisy(x).numpy(), noisy(x).numpy()
    assert not np.array_equal(first, second) and (first >= 0).all() and (second < 1).all()
