"""GELU, SiLU, LeakyReLU, ELU, Softplus: values against numpy formulas, float64 gradchecks, the
in-place forms, reprs and grad_fn names as PyTorch's, and PyTorch itself as an oracle."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.nn.functional as F
from helpers import gradcheck

ERF = np.vectorize(math.erf)


def softplus_np(x, beta=1.0, threshold=20.0):
    return np.where(x * beta > threshold, x, np.log1p(np.exp(np.minimum(x * beta, threshold))) / beta)


REFERENCES = {
    "gelu": (lambda x: F.gelu(x), lambda x: 0.5 * x * (1 + ERF(x / np.sqrt(2)))),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"),
                  lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),
    "silu": (lambda x: F.silu(x), lambda x: x / (1 + np.exp(-x))),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    "elu": (lambda x: F.elu(x, 1.5), lambda x: np.where(x > 0, x, 1.5 * np.expm1(x))),
    "softplus": (lambda x: F.softplus(x), softplus_np),
    "softplus_beta": (lambda x: F.softplus(x, beta=2.0, threshold=5.0), lambda x: softplus_np(x, 2.0, 5.0)),
}

POINTS = np.concatenate([np.linspace(-30, 30, 61), [-1e-9, 1e-9, -1e-4, 1e-4, 2.49, 2.51, 19.99, 20.01, -700.0]])


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_values_match_numpy(name, dtype):
    fn, ref = REFERENCES[name]
    x = POINTS.astype(dtype)
    got = fn(torch.tensor(x)).numpy()
    want = ref(x.astype(np.float64))
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-14 if dtype == np.float64 else 1e-6)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_gradients_by_finite_differences(name):
    fn, _ = REFERENCES[name]
    x = np.random.default_rng(0).standard_normal(13) * 3
    x = x[np.abs(x) > 1e-3]            # away from the kinks of leaky_relu / elu
    gradcheck(fn, x)


def test_small_arguments_stay_accurate():
    """elu uses expm1 and softplus log1p: no cancellation where the result is tiny."""
    x = np.array([-1e-10, -1e-7, -50.0, -30.0])
    np.testing.assert_allclose(F.elu(torch.tensor(x)).numpy(), np.expm1(x), rtol=1e-14)
    np.testing.assert_allclose(F.softplus(torch.tensor(x)).numpy(), np.log1p(np.exp(x)), rtol=1e-14)
    g = torch.tensor(np.array([-1e-10, 0.0, 1e-10]), requires_grad=True)
    F.elu(g, alpha=2.0).sum().backward()
    np.testing.assert_allclose(g.grad.numpy(), [2.0, 2.0, 1.0], rtol=1e-9)


def test_softplus_linear_regime_has_finite_gradient():
    x = torch.tensor([100.0, 1000.0, -1000.0], requires_grad=True)
    y = F.softplus(x)
    y.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), [100.0, 1000.0, 0.0])
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0, 0.0])


def test_modules_reprs_and_grad_fn_names():
    cases = [(nn.GELU(), "GELU(approximate='none')"), (nn.GELU("tanh"), "GELU(approximate='tanh')"),
             (nn.SiLU(), "SiLU()"), (nn.SiLU(True), "SiLU(inplace=True)"),
             (nn.LeakyReLU(), "LeakyReLU(negative_slope=0.01)"),
             (nn.LeakyReLU(0.2, True), "LeakyReLU(negative_slope=0.2, inplace=True)"),
             (nn.ELU(), "ELU(alpha=1.0)"), (nn.ELU(0.5, True), "ELU(alpha=0.5, inplace=True)"),
             (nn.Softplus(), "Softplus(beta=1.0, threshold=20.0)"),
             (nn.Softplus(2, 10), "Softplus(beta=2, threshold=10)")]
    for module, text in cases:
        assert repr(module) == text
    x = torch.randn(4, requires_grad=True)
    names = {nn.GELU(): "GeluBackward0", nn.SiLU(): "SiluBackward0", nn.LeakyReLU(): "LeakyReluBackward0",
             nn.ELU(): "EluBackward0", nn.Softplus(): "SoftplusBackward0"}
    for module, name in names.items():
        assert module(x).grad_fn.name() == name


def test_modules_compute_the_functions():
    x = torch.tensor(np.linspace(-3, 3, 7))
    for module, fn in [(nn.GELU("tanh"), lambda t: F.gelu(t, approximate="tanh")), (nn.SiLU(), F.silu),
                       (nn.LeakyReLU(0.3), lambda t: F.leaky_relu(t, 0.3)), (nn.ELU(2.0), lambda t: F.elu(t, 2.0)),
                       (nn.Softplus(3.0, 4.0), lambda t: F.softplus(t, 3.0, 4.0))]:
        np.testing.assert_array_equal(module(x).numpy(), fn(x).numpy())


def test_inplace_forms_write_into_the_input():
    for fn, ref in [(lambda t: F.silu(t, inplace=True), REFERENCES["silu"][1]),
                    (lambda t: F.leaky_relu_(t, 0.2), REFERENCES["leaky_relu"][1]),
                    (lambda t: F.elu_(t, 1.5), REFERENCES["elu"][1])]:
        a = np.linspace(-2, 2, 5)
        t = torch.tensor(a)
        out = fn(t)
        assert out is t
        np.testing.assert_allclose(t.numpy(), ref(a), rtol=1e-12)
    # through autograd: the in-place result of a non-leaf differentiates like the out-of-place one
    x = torch.tensor(np.linspace(-2, 2, 5), requires_grad=True)
    nn.ELU(1.5, inplace=True)(x * 1.0).sum().backward()
    y = torch.tensor(np.linspace(-2, 2, 5), requires_grad=True)
    F.elu(y, 1.5).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), y.grad.numpy())


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(RuntimeError, match="approximate argument must be either none or tanh."):
        F.gelu(torch.ones(2), approximate="fast")


def test_against_pytorch():
    pt = pytest.importorskip("torch", reason="PyTorch is the oracle for activation values and gradients")
    x = np.random.default_rng(3).standard_normal(50) * 5
    for name, kw in [("gelu", {}), ("gelu", {"approximate": "tanh"}), ("silu", {}),
                     ("leaky_relu", {"negative_slope": 0.1}), ("elu", {"alpha": 0.7}),
                     ("softplus", {"beta": 1.5, "threshold": 4.0})]:
        for dt in (np.float32, np.float64):
            a = torch.tensor(x.astype(dt), requires_grad=True)
            y = getattr(F, name)(a, **kw)
            (y * y).sum().backward()
            b = pt.tensor(x.astype(dt), requires_grad=True)
            z = getattr(pt.nn.functional, name)(b, **kw)
            (z * z).sum().backward()
            tol = 1e-12 if dt == np.float64 else 1e-5
            np.testing.assert_allclose(y.detach().numpy(), z.detach().numpy(), rtol=tol, atol=tol, err_msg=name)
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=tol, atol=tol, err_msg=name)
