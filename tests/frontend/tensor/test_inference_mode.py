"""inference_mode: a context manager and decorator recording no history, whose tensors are
inference tensors (is_inference), refused by autograd where saved for backward and by
in-place updates outside the mode; the mode nests and is per thread; PyTorch as an oracle."""
import threading

import numpy as np
import pytest

import fusegrad


def test_context_manager_state_and_tensors():
    w = fusegrad.ones(3, requires_grad=True)
    assert not fusegrad.is_inference_mode_enabled()
    with fusegrad.inference_mode():
        assert fusegrad.is_inference_mode_enabled() and not fusegrad.is_grad_enabled()
        x = fusegrad.ones(3) * 2
        y = w * 3
        assert x.is_inference() and y.is_inference() and not y.requires_grad and y.grad_fn is None
        assert not w.is_inference()
        with fusegrad.inference_mode(False):
            assert not fusegrad.is_inference_mode_enabled()
            assert not fusegrad.ones(2).is_inference()
        assert fusegrad.is_inference_mode_enabled()
        x.add_(1)                                  # in place inside the mode is fine
    assert not fusegrad.is_inference_mode_enabled() and fusegrad.is_grad_enabled()
    assert x.tolist() == [3.0, 3.0, 3.0]
    assert not fusegrad.ones(1).is_inference()


def test_decorator_and_autograd_namespace():
    @fusegrad.inference_mode()
    def predict(a):
        return a * 2

    w = fusegrad.ones(2, requires_grad=True)
    out = predict(w)
    assert out.is_inference() and not out.requires_grad and fusegrad.is_grad_enabled()
    assert fusegrad.autograd.grad_mode.inference_mode is fusegrad.inference_mode

    @fusegrad.inference_mode                      # without parentheses, as PyTorch allows
    def bare(a):
        return a * 3, fusegrad.is_inference_mode_enabled()

    out, enabled = bare(w)
    assert enabled and out.is_inference() and bare.__name__ == "bare"


def test_inference_tensors_in_autograd_and_in_place():
    with fusegrad.inference_mode():
        x = fusegrad.ones(3)
    w = fusegrad.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Inference tensors cannot be saved for backward.*test_inference_mode"):
        x * w
    assert (x + w).requires_grad                   # add saves nothing: allowed, as in PyTorch
    with pytest.raises(RuntimeError, match="Inplace update to inference tensor outside InferenceMode"):
        x.mul_(2)
    with pytest.raises(RuntimeError, match="Setting requires_grad=True on inference tensor outside InferenceMode"):
        x.requires_grad_()
    c = x.clone()                                  # a clone outside the mode is a normal tensor
    assert not c.is_inference()
    (c * w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 1.0, 1.0])


def test_mode_is_per_thread():
    seen = []
    with fusegrad.inference_mode():
        t = threading.Thread(target=lambda: seen.append(fusegrad.is_inference_mode_enabled()))
        t.start()
        t.join()
    assert seen == [False]


def test_inside_compiled_function():
    lin = fusegrad.nn.Linear(3, 2)

    @fusegrad.compile
    def predict(x):
        with fusegrad.inference_mode():
            return lin(x)

    x = fusegrad.rand(4, 3)
    out = predict(x)
    assert not out.requires_grad
    np.testing.assert_allclose(out.numpy(), lin(x).detach().numpy(), rtol=1e-6)


def test_like_pytorch():
    torch = pytest.importorskip("torch")
    for lib in (torch, fusegrad):
        w = lib.ones(3, requires_grad=True)
        with lib.inference_mode():
            x = lib.ones(3) * 2
            assert lib.is_inference_mode_enabled() and x.is_inference() and not (w * x).requires_grad
        with pytest.raises(RuntimeError) as err:
            x * w
        assert "Inference tensors cannot be saved for backward" in str(err.value)
