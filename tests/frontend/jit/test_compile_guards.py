"""A compiled function never silently diverges from eager: the Python state its trace read is
guarded (a change retraces, and the log says what changed), a failed trace changes nothing,
and the defects found with it stay fixed (retain_grad, program_of, internal errors, *args)."""
from __future__ import annotations

import logging
import os

import numpy as np
import pytest

import fusegrad
from fusegrad import nn


@pytest.fixture
def retraces(caplog):
    """The retrace reasons logged on the fusegrad logger."""
    caplog.set_level(logging.INFO, logger="fusegrad")
    return lambda: [r.getMessage() for r in caplog.records if r.getMessage().startswith("retracing")]


def _linear(in_features, out_features, weight, bias=None):
    layer = nn.Linear(in_features, out_features, bias=bias is not None)
    with fusegrad.no_grad():
        layer.weight.copy_(fusegrad.tensor(weight, dtype=fusegrad.float32))
        if bias is not None:
            layer.bias.copy_(fusegrad.tensor(bias, dtype=fusegrad.float32))
    return layer


def test_eval_after_train_stops_dropout_and_logs_the_retrace(retraces):
    fusegrad.manual_seed(0)
    model = nn.Sequential(_linear(4, 4, np.eye(4)), nn.Dropout(0.5))
    forward = fusegrad.compile(lambda x: model(x))
    x = fusegrad.ones(64, 4)
    model.train()
    trained = forward(x).numpy()
    assert set(np.unique(trained)) <= {0.0, 2.0} and (trained == 0).any()
    model.eval()
    np.testing.assert_array_equal(forward(x).numpy(), np.ones((64, 4), np.float32))
    assert retraces()[-1] == "retracing lambda: model.training changed True → False"
    model.train()                    # back: the train-mode program replays without compiling
    compiles = forward.stats["compiles"]
    assert (forward(x).numpy() == 0).any()
    assert forward.stats["compiles"] == compiles


def test_train_after_eval_applies_dropout():
    fusegrad.manual_seed(0)
    model = nn.Sequential(_linear(4, 4, np.eye(4)), nn.Dropout(0.5)).eval()
    forward = fusegrad.compile(lambda x: model(x))
    x = fusegrad.ones(64, 4)
    np.testing.assert_array_equal(forward(x).numpy(), np.ones((64, 4), np.float32))
    model.train()
    assert (forward(x).numpy() == 0).any()


def test_rebinding_a_parameter_uses_the_new_weight(retraces):
    m = _linear(3, 2, np.ones((2, 3)))
    forward = fusegrad.compile(lambda x: m(x))
    x = fusegrad.ones(1, 3)
    assert forward(x).tolist() == [[3.0, 3.0]]
    m.weight = nn.Parameter(fusegrad.full((2, 3), 2.0))
    assert forward(x).tolist() == [[6.0, 6.0]] == m(x).tolist()
    assert retraces()[-1] == "retracing lambda: m.weight was rebound"


def test_swapping_a_submodule_in_a_container_uses_the_new_one(retraces):
    seq = nn.Sequential(_linear(2, 2, np.eye(2)), nn.ReLU())
    forward = fusegrad.compile(lambda x: seq(x))
    x = fusegrad.tensor([[1.0, -2.0]])
    assert forward(x).tolist() == [[1.0, 0.0]]
    seq[0] = _linear(2, 2, [[0.0, 1.0], [1.0, 0.0]])
    assert forward(x).tolist() == [[0.0, 1.0]]
    seq[1] = nn.Tanh()
    np.testing.assert_allclose(forward(x).numpy(), np.tanh([[-2.0, 1.0]]), rtol=1e-6)
    assert retraces()[-2:] == ["retracing lambda: seq.0 was rebound", "retracing lambda: seq.1 was rebound"]


def test_rebinding_data_of_a_captured_tensor_is_seen():
    w = fusegrad.ones(3)
    f = fusegrad.compile(lambda x: x * w)
    assert f(fusegrad.ones(3)).tolist() == [1.0, 1.0, 1.0]
    w.data = fusegrad.full((3,), 4.0)
    assert f(fusegrad.ones(3)).tolist() == [4.0, 4.0, 4.0]


def test_a_changed_module_attribute_retraces(retraces):
    fusegrad.manual_seed(0)
    drop = nn.Dropout(0.0)
    f = fusegrad.compile(lambda x: drop(x))
    x = fusegrad.ones(1000)
    assert f(x).sum().item() == 1000.0
    drop.p = 1.0
    assert f(x).sum().item() == 0.0
    assert retraces()[-1] == "retracing lambda: drop.p changed 0.0 → 1.0"


def test_requires_grad_off_on_a_layer_stops_its_update(retraces):
    model = nn.Sequential(_linear(2, 2, np.eye(2), [0.0, 0.0]), _linear(2, 1, [[1.0, 1.0]], [0.0]))
    opt = fusegrad.optim.SGD(model.parameters(), lr=0.1)

    @fusegrad.compile
    def step(x, y):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    x, y = fusegrad.tensor([[1.0, 2.0]]), fusegrad.tensor([[0.0]])
    step(x, y)
    step(x, y)                           # the first call made .grad: a second trace confirms the program
    first = model[0].weight.detach().numpy().copy()
    model[0].requires_grad_(False)
    step(x, y)
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), first)
    assert model[0].weight.grad is None
    assert "requires_grad of model.0.weight changed True → False" in retraces()[-1]


def test_a_new_param_group_is_updated(retraces):
    a, b = _linear(1, 1, [[1.0]]), _linear(1, 1, [[1.0]])
    opt = fusegrad.optim.SGD(a.parameters(), lr=0.5)

    @fusegrad.compile
    def step(x):
        opt.zero_grad()
        loss = (a(x) + b(x)).sum()
        loss.backward()
        opt.step()
        return loss

    x = fusegrad.ones(1, 1)
    step(x)
    step(x)                              # the first call made .grad: a second trace confirms the program
    assert b.weight.item() == 1.0 and a.weight.item() == 0.0
    opt.add_param_group({"params": b.parameters()})
    step(x)
    assert b.weight.item() == 0.5 and a.weight.item() == -0.5
    assert retraces()[-1] == "retracing step: the parameters in param_groups changed"


def test_grad_mode_is_part_of_the_signature(retraces):
    f = fusegrad.compile(lambda x: x * 2 if fusegrad.is_grad_enabled() else x * 3)
    assert f(fusegrad.ones(2)).tolist() == [2.0, 2.0]
    with fusegrad.no_grad():
        assert f(fusegrad.ones(2)).tolist() == [3.0, 3.0]
    assert retraces()[-1] == "retracing lambda: grad mode changed enabled → disabled"
    assert f(fusegrad.ones(2)).tolist() == [2.0, 2.0]


def test_default_dtype_is_part_of_the_signature():
    f = fusegrad.compile(lambda x: x + fusegrad.tensor(0.5))
    assert f(fusegrad.ones(2, dtype=fusegrad.float64)).dtype == fusegrad.float64
    before = fusegrad.get_default_dtype()
    fusegrad.set_default_dtype(fusegrad.float64)
    try:
        assert f(fusegrad.ones(2, dtype=fusegrad.float64)).dtype == fusegrad.float64
        x32 = fusegrad.ones(2, dtype=fusegrad.float32)
        assert f(x32).dtype == (x32 + fusegrad.tensor(0.5)).dtype
    finally:
        fusegrad.set_default_dtype(before)


SCALE = 2.0


def test_a_global_number_the_function_reads_is_guarded(retraces):
    global SCALE
    f = fusegrad.compile(lambda x: x * SCALE)
    assert f(fusegrad.ones(2)).tolist() == [2.0, 2.0]
    SCALE = 5.0
    try:
        assert f(fusegrad.ones(2)).tolist() == [5.0, 5.0]
    finally:
        SCALE = 2.0
    assert retraces()[-1] == "retracing lambda: global SCALE changed"


def test_unchanged_state_replays_without_retracing():
    model = nn.Sequential(_linear(2, 2, np.eye(2)), nn.ReLU())
    f = fusegrad.compile(lambda x: model(x))
    x = fusegrad.ones(1, 2)
    f(x)
    model.train()                       # module state touched, nothing changed: guards hold
    model[1].inplace = False
    for _ in range(3):
        f(x)
    assert f.stats["traces"] == 1 and f.stats["replays"] == 3


def test_signatures_are_bounded():
    f = fusegrad.compile(lambda x: x + 1)
    with pytest.warns(UserWarning, match="signatures"):
        for n in range(1, 80):
            assert f(fusegrad.ones(n)).sum().item() == 2 * n
    assert len(f.variants) <= 64


# ---------------------------------------------------------------- a failed trace changes nothing

def _state(model, opt):
    params = [p.detach().numpy().copy() for p in model.parameters()]
    grads = [None if p.grad is None else p.grad.numpy().copy() for p in model.parameters()]
    state = {id(p): {k: v.numpy().copy() for k, v in s.items()} for p, s in opt.state.items()}
    return params, grads, state


def _same_state(a, b):
    (pa, ga, sa), (pb, gb, sb) = a, b
    for x, y in zip(pa + ga, pb + gb):
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].keys() == sb[k].keys()
        for name in sa[k]:
            np.testing.assert_array_equal(sa[k][name], sb[k][name])


@pytest.mark.parametrize("eager_step_first", [False, True])
def test_a_failed_first_trace_leaves_params_grads_and_optimizer_state_unchanged(eager_step_first):
    model = _linear(3, 2, np.full((2, 3), 0.5), [0.1, 0.2])
    opt = fusegrad.optim.Adam(model.parameters(), lr=0.1)
    x, y = fusegrad.ones(4, 3), fusegrad.zeros(4, 2)
    if eager_step_first:
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
    before = _state(model, opt)

    @fusegrad.compile
    def step(x, y, fail):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        if fail:
            raise ValueError("a mistake in the user's step")
        return loss

    with pytest.raises(ValueError, match="mistake"):
        step(x, y, True)
    _same_state(before, _state(model, opt))
    loss = step(x, y, False)            # and the function still works afterwards
    assert np.isfinite(loss.item())


# ---------------------------------------------------------------- defects found with it

def test_retain_grad_fills_the_grad_of_a_non_leaf():
    x = fusegrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    y.retain_grad()
    (y * y).sum().backward()
    assert y.retains_grad and not x.retains_grad
    assert y.grad.tolist() == [4.0, 8.0, 12.0]
    assert x.grad.tolist() == [8.0, 16.0, 24.0]


def test_retain_grad_on_a_leaf_is_a_no_op_and_needs_grad_on_non_leaves():
    x = fusegrad.tensor([1.0], requires_grad=True)
    x.retain_grad()
    assert not x.retains_grad
    with pytest.raises(RuntimeError, match="requires_grad=False"):
        (fusegrad.tensor([1.0]) * 2).retain_grad()


def test_program_of_a_pending_tensor_realizes_it():
    x, w, b = fusegrad.rand(100), fusegrad.rand(100), fusegrad.rand(100)
    y = fusegrad.sigmoid(x * w + b) * 2 - 1
    y.sum().item()
    p = fusegrad.program_of(y)
    assert p is not None and p.num_kernels == 1
    expected = 2 / (1 + np.exp(-(x.numpy() * w.numpy() + b.numpy()))) - 1
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_an_internal_compiler_failure_is_reported_as_internal_error(monkeypatch, tmp_path):
    from fusegrad.compiler import pipeline
    monkeypatch.setenv("FUSEGRAD_DUMP_DIR", str(tmp_path))

    def broken_fuse(graph):
        raise AttributeError("'NoneType' object has no attribute 'strides'")

    monkeypatch.setattr(pipeline.fuse, "fuse", broken_fuse)
    x = fusegrad.tensor([1.0, 2.0])
    y = x.exp() * 3.25                                    # the line named in the error
    line = f"test_compile_guards.py:{_line_of('y = x.exp() * 3.25')}"
    with pytest.raises(fusegrad.InternalError) as caught:
        y.numpy()
    message = str(caught.value)
    assert "internal compiler error while compiling mul" in message and line in message
    assert "AttributeError" in message and caught.value.report_path in message
    report = open(caught.value.report_path).read()
    assert "graph realize" in report and "= exp %a0" in report and "broken_fuse" in report
    assert os.path.dirname(caught.value.report_path) == str(tmp_path)


def test_shape_errors_are_not_internal_errors():
    with pytest.raises(RuntimeError) as caught:
        fusegrad.ones(2, 3) @ fusegrad.ones(2, 3)
    assert not isinstance(caught.value, fusegrad.InternalError)


def _line_of(text: str) -> int:
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if text in line and "_line_of" not in line)


def test_compile_takes_var_positional_and_keyword_arguments():
    f = fusegrad.compile(lambda *xs, **kw: sum(xs[1:], xs[0]) * kw.get("scale", 1))
    a, b, c = fusegrad.ones(2), fusegrad.full((2,), 2.0), fusegrad.full((2,), 3.0)
    assert f(a, b, c).tolist() == [6.0, 6.0]
    assert f(a, b, scale=2).tolist() == [6.0, 6.0]
    assert f(a, b, c).tolist() == [6.0, 6.0]
