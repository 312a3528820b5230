"""The engine's two backward hooks that DistributedDataParallel uses (autograd/engine.py):
`register_post_accumulate_grad_hook` and `queue_callback`. No MPI needed."""
from __future__ import annotations

import numpy as np
import pytest

import fusegrad
from fusegrad.autograd import engine
from fusegrad.storage import buffer_of


def test_post_accumulate_hook_runs_after_each_accumulation():
    w = fusegrad.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    handle = engine.register_post_accumulate_grad_hook(w, lambda t: seen.append((t is w, t.grad is not None)))
    (w * 3).sum().backward()
    (w * w).sum().backward()
    assert seen == [(True, True), (True, True)]
    np.testing.assert_allclose(w.grad.numpy(), [3 + 2, 3 + 4])
    handle.remove()
    (w * 3).sum().backward()
    assert len(seen) == 2


def test_post_accumulate_hook_with_inputs_and_not_on_others():
    w = fusegrad.tensor([1.0], requires_grad=True)
    v = fusegrad.tensor([2.0], requires_grad=True)
    calls = []
    engine.register_post_accumulate_grad_hook(w, lambda t: calls.append("w"))
    engine.register_post_accumulate_grad_hook(v, lambda t: calls.append("v"))
    (w * v).sum().backward(inputs=[w])
    assert calls == ["w"]
    fusegrad.autograd.grad((w * v).sum(), [w, v])              # returns gradients, accumulates nothing
    assert calls == ["w"]


def test_post_accumulate_hook_needs_a_leaf_that_requires_grad():
    w = fusegrad.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="non-leaf"):
        engine.register_post_accumulate_grad_hook(w * 2, lambda t: None)
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        engine.register_post_accumulate_grad_hook(fusegrad.ones(2), lambda t: None)


def test_queued_callback_runs_once_after_the_gradients_are_realized():
    w = fusegrad.tensor([1.0, 2.0], requires_grad=True)
    b = fusegrad.tensor([0.5], requires_grad=True)
    order = []

    def queued():
        # every leaf's .grad is accumulated and computed by the time the callback runs
        order.append(("callback", buffer_of(w.grad._storage.node) is not None,
                      buffer_of(b.grad._storage.node) is not None))

    def hook(t):
        order.append(("hook", t is w))
        if len([o for o in order if o[0] == "hook"]) == 1:
            engine.queue_callback(queued)

    engine.register_post_accumulate_grad_hook(w, hook)
    engine.register_post_accumulate_grad_hook(b, hook)
    ((w * 2).sum() + b.sum()).backward()
    assert order[-1] == ("callback", True, True) and [o[0] for o in order].count("callback") == 1
    assert sorted(o for o in order if o[0] == "hook") == [("hook", False), ("hook", True)]


def test_queue_callback_outside_backward():
    with pytest.raises(RuntimeError, match="Final callbacks can only be installed during backward pass."):
        engine.queue_callback(lambda: None)
