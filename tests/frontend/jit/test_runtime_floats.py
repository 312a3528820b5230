"""Float arguments of compiled functions: after a second value, one program reads them at every call."""
import logging

import numpy as np
import pytest

import fusegrad as torch


def _sgd_step():
    w = torch.ones(3, requires_grad=True)

    @torch.compile
    def step(x, lr):
        loss = ((x * w).sum() - 1) ** 2
        loss.backward()
        with torch.no_grad():
            w.sub_(lr * w.grad * 2 - lr / 4)
            w.grad.zero_()
        return loss
    return step, w


def _sgd_numpy(lrs):
    x, w, losses = np.array([1.0, 2.0, 3.0]), np.ones(3), []
    for lr in lrs:
        err = (x * w).sum() - 1
        losses.append(err ** 2)
        w = w - (lr * 2 * err * x * 2 - lr / 4)
    return np.array(losses), w


def test_a_learning_rate_argument_compiles_twice_for_any_number_of_values(caplog):
    lrs = [0.1, 0.05, 0.02, 0.01, 0.005, 0.0025]
    step, w = _sgd_step()
    x = torch.tensor([1.0, 2.0, 3.0])
    with caplog.at_level(logging.INFO, logger="fusegrad"):
        losses = [step(x, lr).item() for lr in lrs]
    expected_losses, expected_w = _sgd_numpy(lrs)
    np.testing.assert_allclose(losses, expected_losses, rtol=2e-5)
    np.testing.assert_allclose(w.detach().numpy(), expected_w, rtol=2e-5)
    # the first value traced by value, the second traced lr as a runtime value; the rest replay
    assert step.stats == {"traces": 2, "replays": 4, "compiles": 2}
    assert "float argument lr changed value: traced as a runtime value" in caplog.text
    assert "%lr: f64[]" in step.lower(x, 0.3).text("graph")


def test_traced_floats_promote_as_python_floats_do():
    @torch.compile
    def f(a, b, c, d, s):
        return a * s, b * s, c * s, d + s, (1 - s) ** 2 * a, -s * abs(a), (2 ** s + s / 2) * c
    a, b = torch.arange(3, dtype=torch.int32), torch.ones(2, dtype=torch.float64)
    c, d = torch.tensor(2.0), torch.ones(2, dtype=torch.bfloat16)
    for s in (0.5, 0.25, 1.5):
        outs = f(a, b, c, d, s)
        assert [o.dtype for o in outs] == [torch.float32, torch.float64, torch.float32, torch.bfloat16,
                                           torch.float32, torch.float32, torch.float32]
        an = np.arange(3)
        np.testing.assert_allclose(outs[0].numpy(), an * s)
        np.testing.assert_allclose(outs[1].numpy(), np.ones(2) * s)
        assert outs[2].item() == 2.0 * s
        np.testing.assert_allclose(outs[4].numpy(), (1 - s) ** 2 * an, rtol=1e-6)
        np.testing.assert_allclose(outs[5].numpy(), -s * an)
        assert outs[6].item() == pytest.approx((2 ** s + s / 2) * 2.0, rel=1e-6)
    assert f.runtime_floats == {"s"} and f.stats["compiles"] == 2


def test_a_trace_that_reads_the_value_falls_back_to_one_program_per_value(caplog):
    @torch.compile
    def clipped(x, limit):
        return x * limit if limit < 1.0 else x
    x = torch.tensor([1.0, 2.0])
    with caplog.at_level(logging.INFO, logger="fusegrad"):
        results = [clipped(x, v).numpy().tolist() for v in (0.5, 0.25, 2.0, 0.25)]
    assert results == [[0.5, 1.0], [0.25, 0.5], [1.0, 2.0], [0.25, 0.5]]
    assert "tracing float argument limit as a runtime value failed (FloatValueRead" in caplog.text
    assert clipped.runtime_floats == set() and clipped.stats["compiles"] == 3     # 0.5, 0.25, 2.0


def test_a_returned_traced_float_falls_back_to_values():
    @torch.compile
    def scaled(x, s):
        return x * s, s * 2
    x = torch.tensor([1.0])
    assert [scaled(x, s)[1] for s in (1.0, 2.0, 3.0)] == [2.0, 4.0, 6.0]
    assert scaled.floats_by_value == {"s"}


def test_runtime_floats_in_repeat_and_ints_stay_values():
    @torch.compile
    def f(x, s, n):
        return x * s + n
    x = torch.tensor([1.0, 2.0])
    f(x, 0.5, 1)
    f(x, 0.25, 1)
    out = f.repeat(3, x, 0.125, 1)
    np.testing.assert_array_equal(out.numpy(), np.tile([1.125, 1.25], (3, 1)))
    f(x, 0.5, 2)                                   # an int argument is part of the signature
    assert f.runtime_floats == {"s"} and f.stats["compiles"] == 3
