"""nn: Module registration and printing, Parameter, layers, init, and gradchecks of nn.functional."""
from __future__ import annotations

import math
import warnings
from collections import OrderedDict

import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.nn.functional as F
from fusegrad.random import uniform
from helpers import gradcheck

# ---------------------------------------------------------------- gradchecks of the composites


@pytest.fixture
def x64(rng):
    return rng.standard_normal((4, 5))


def test_gradcheck_catches_a_wrong_gradient(x64):
    with pytest.raises(AssertionError, match="differs from finite differences"):
        gradcheck(lambda x: x * x.detach(), x64)     # autograd sees x, the function is x**2


@pytest.mark.parametrize("fn", [F.relu, F.sigmoid, F.tanh], ids=["relu", "sigmoid", "tanh"])
def test_gradcheck_activations(fn, x64):
    gradcheck(fn, x64)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gradcheck_softmax_and_log_softmax(dim, x64):
    gradcheck(lambda x: F.softmax(x, dim), x64)
    gradcheck(lambda x: F.log_softmax(x, dim), x64)


@pytest.mark.parametrize("in_shape", [(3, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_linear(in_shape, bias, rng):
    x, w, b = rng.standard_normal(in_shape), rng.standard_normal((5, 4)), rng.standard_normal(5)
    if bias:
        gradcheck(F.linear, x, w, b)
    else:
        gradcheck(F.linear, x, w)


def test_gradcheck_dropout_with_a_fixed_mask(x64):
    def dropped(x):
        torch.manual_seed(7)     # the same mask at every evaluation
        return F.dropout(x, 0.4)
    gradcheck(dropped, x64)


def test_linear_matches_numpy_and_names_grad_fn_as_pytorch(rng):
    x, w, b = (torch.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True)
               for s in [(3, 4), (5, 4), (5,)])
    np.testing.assert_allclose(F.linear(x, w, b).detach().numpy(),
                               x.detach().numpy() @ w.detach().numpy().T + b.detach().numpy(), rtol=1e-5, atol=1e-6)
    x3 = torch.randn(2, 3, 4, requires_grad=True)
    names = [F.linear(x, w, b), F.linear(x, w), F.linear(x3, w, b), F.linear(x3, w), F.linear(x[0], w, b),
             F.linear(x[0], w)]
    assert [t.grad_fn.name() for t in names] == ["AddmmBackward0", "MmBackward0", "ViewBackward0",
                                                 "UnsafeViewBackward0", "ViewBackward0", "SqueezeBackward4"]
    assert tuple(F.linear(x3, w, b).shape) == (2, 3, 5)
    assert tuple(F.linear(x[0], w).shape) == (5,)


def test_activation_grad_fn_names():
    x = torch.randn(2, 3, requires_grad=True)
    got = [F.relu(x), F.sigmoid(x), F.tanh(x), F.softmax(x, 1), F.log_softmax(x, 1)]
    assert [t.grad_fn.name() for t in got] == ["ReluBackward0", "SigmoidBackward0", "TanhBackward0",
                                               "SoftmaxBackward0", "LogSoftmaxBackward0"]


def test_softmax_without_dim_warns_and_picks_pytorchs_dim():
    x = torch.randn(2, 3)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        y = F.softmax(x)
    np.testing.assert_allclose(y.numpy().sum(1), np.ones(2), rtol=1e-6)
    with pytest.warns(UserWarning, match="log_softmax"):
        nn.LogSoftmax()(torch.randn(3))


def test_relu_inplace_writes_its_input():
    x = torch.tensor([-1.0, 2.0, -3.0])
    y = F.relu(x, inplace=True)
    assert y is x
    assert x.tolist() == [0.0, 2.0, 0.0]


def test_one_hot():
    t = torch.tensor([0, 2, 1, 2])
    expected = np.eye(3, dtype=np.int64)[[0, 2, 1, 2]]
    assert F.one_hot(t).dtype is torch.int64
    np.testing.assert_array_equal(F.one_hot(t).numpy(), expected)
    np.testing.assert_array_equal(F.one_hot(t, 5).numpy(), np.eye(5, dtype=np.int64)[[0, 2, 1, 2]])
    np.testing.assert_array_equal(F.one_hot(torch.tensor([[1], [0]]), 2).numpy(), [[[0, 1]], [[1, 0]]])
    with pytest.raises(RuntimeError, match="LongTensor"):
        F.one_hot(torch.tensor([0.0, 1.0]))


# ---------------------------------------------------------------- dropout


def test_dropout_mask_is_the_philox_stream_and_scales_survivors():
    torch.manual_seed(3)
    out = F.dropout(torch.ones(8, 16), 0.25).numpy()
    torch.manual_seed(3)
    u = uniform(8 * 16, np.float32).reshape(8, 16)
    np.testing.assert_allclose(out, np.where(u < 0.75, 1 / 0.75, 0.0), rtol=1e-6)


def test_dropout_draws_fresh_masks_and_keeps_the_expected_fraction():
    torch.manual_seed(0)
    a, b = F.dropout(torch.ones(100, 100), 0.3).numpy(), F.dropout(torch.ones(100, 100), 0.3).numpy()
    assert not np.array_equal(a, b)
    assert abs((a > 0).mean() - 0.7) < 0.02
    np.testing.assert_allclose(a[a > 0], 1 / 0.7, rtol=1e-6)


def test_dropout_module_is_identity_in_eval_mode_and_edge_probabilities():
    layer = nn.Dropout(0.5)
    x = torch.randn(4, 4)
    assert layer.eval()(x) is x
    assert F.dropout(x, 0.0) is x
    assert F.dropout(x, 0.5, training=False) is x
    assert np.all(F.dropout(x, 1.0).numpy() == 0)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)


def test_dropout_gradient_is_the_mask():
    torch.manual_seed(1)
    x = torch.ones(6, 6, requires_grad=True)
    y = F.dropout(x, 0.5)
    assert y.grad_fn.name() == "MulBackward0"
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.detach().numpy())


# ---------------------------------------------------------------- Parameter


def test_parameter_prints_and_is_a_leaf_sharing_its_data():
    data = torch.tensor([[0.5]])
    p = nn.Parameter(data)
    assert repr(p) == "Parameter containing:\ntensor([[0.5000]], requires_grad=True)"
    assert str(p) == repr(p)
    assert isinstance(p, torch.Tensor) and p.is_leaf and p.requires_grad and p.grad_fn is None
    data.add_(1.0)
    assert p.item() == 1.5
    frozen = nn.Parameter(torch.zeros(2), requires_grad=False)
    assert not frozen.requires_grad
    assert repr(frozen) == "Parameter containing:\ntensor([0., 0.])"


def test_parameter_of_a_computed_value_is_a_new_leaf():
    x = torch.ones(3, requires_grad=True)
    p = nn.Parameter(x * 2)
    assert p.is_leaf and p.grad_fn is None and p.tolist() == [2.0, 2.0, 2.0]
    (p * p).sum().backward()
    assert p.grad.tolist() == [4.0, 4.0, 4.0]
    assert x.grad is None


def test_inplace_update_of_a_parameter_needs_no_grad():
    p = nn.Parameter(torch.ones(2))
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        p.add_(1)
    with torch.no_grad():
        p.add_(1)
    assert p.tolist() == [2.0, 2.0]


# ---------------------------------------------------------------- Module


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(3, 2, bias=False)
        self.scale = nn.Parameter(torch.ones(1))
        self.register_buffer("running", torch.zeros(2))
        self.register_buffer("scratch", torch.zeros(1), persistent=False)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) * self.scale + self.running


def test_module_registers_by_attribute_in_order():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == ["scale", "fc1.weight", "fc1.bias", "fc2.weight"]
    assert [n for n, _ in net.named_buffers()] == ["running", "scratch"]
    assert [n for n, _ in net.named_children()] == ["fc1", "act", "fc2"]
    assert [n for n, _ in net.named_modules()] == ["", "fc1", "act", "fc2"]
    assert list(net.children())[0] is net.fc1
    assert len(list(net.modules())) == 4
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]
    assert net.fc2.bias is None
    assert list(net.state_dict()) == ["scale", "running", "fc1.weight", "fc1.bias", "fc2.weight"]
    assert "fc1" in dir(net) and "running" in dir(net)


def test_module_attribute_rules():
    net = Net()
    with pytest.raises(TypeError, match="cannot assign 'torch.FloatTensor' as parameter 'scale'"):
        net.scale = torch.ones(1)
    net.scale = None
    assert net.scale is None and [n for n, _ in net.named_parameters(recurse=False)] == []
    with pytest.raises(TypeError, match="as buffer 'running'"):
        net.running = 3
    net.running = torch.ones(2)
    assert net.running.tolist() == [1.0, 1.0]
    net.fc2 = nn.Identity()
    assert [n for n, _ in net.named_parameters()] == ["fc1.weight", "fc1.bias"]
    del net.fc1
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'fc1'"):
        net.fc1  # noqa: B018  (the attribute read is what raises)
    with pytest.raises(KeyError, match="contain"):
        net.register_parameter("a.b", None)
    with pytest.raises(AttributeError, match="before Module.__init__"):
        class Early(nn.Module):
            def __init__(self):
                self.w = nn.Parameter(torch.ones(1))
        Early()


def test_shared_submodules_and_parameters_count_once():
    shared = nn.Linear(2, 2)
    seq = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(seq.parameters())) == 2
    assert len(list(seq.modules())) == 3


def test_call_runs_forward_and_missing_forward_raises():
    net = Net()
    x = torch.randn(5, 4)
    expected = (np.maximum(x.numpy() @ net.fc1.weight.detach().numpy().T + net.fc1.bias.detach().numpy(), 0)
                @ net.fc2.weight.detach().numpy().T)
    np.testing.assert_allclose(net(x).detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(NotImplementedError, match='missing the required "forward" function'):
        nn.Module()(x)


SEQUENTIAL_REPR = """Sequential(
  (0): Linear(in_features=784, out_features=256, bias=True)
  (1): ReLU()
  (2): Dropout(p=0.5, inplace=False)
  (3): Linear(in_features=256, out_features=10, bias=True)
  (4): Softmax(dim=1)
  (5): LogSoftmax(dim=None)
  (6): Flatten(start_dim=1, end_dim=-1)
  (7): Identity()
  (8): Sigmoid()
  (9): Tanh()
  (10): ReLU(inplace=True)
  (11): Linear(in_features=3, out_features=3, bias=False)
  (12): MSELoss()
  (13): CrossEntropyLoss()
  (14): BCELoss()
  (15): ModuleList(
    (0-2): 3 x Linear(in_features=2, out_features=2, bias=True)
    (3): ReLU()
  )
)"""


def test_repr_matches_pytorch():
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(), nn.Linear(256, 10), nn.Softmax(dim=1),
                          nn.LogSoftmax(), nn.Flatten(), nn.Identity(), nn.Sigmoid(), nn.Tanh(), nn.ReLU(inplace=True),
                          nn.Linear(3, 3, bias=False), nn.MSELoss(), nn.CrossEntropyLoss(), nn.BCELoss(reduction="sum"),
                          nn.ModuleList([nn.Linear(2, 2) for _ in range(3)] + [nn.ReLU()]))
    assert repr(model) == SEQUENTIAL_REPR
    assert repr(Net()) == ("Net(\n  (fc1): Linear(in_features=4, out_features=3, bias=True)\n  (act): ReLU()\n"
                           "  (fc2): Linear(in_features=3, out_features=2, bias=False)\n)")
    assert repr(nn.ModuleList()) == "ModuleList()"
    assert repr(nn.Module()) == "Module()"


def test_sequential_and_module_list_behave_as_lists():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and isinstance(seq[1:], nn.Sequential)
    assert len(seq[1:]) == 2 and seq[1:][0] is seq[1]
    seq.append(nn.Sigmoid())
    del seq[1]
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2"]
    assert isinstance(seq[1], nn.Linear)
    named = nn.Sequential(OrderedDict([("hidden", nn.Linear(2, 2)), ("act", nn.Tanh())]))
    assert [n for n, _ in named.named_parameters()] == ["hidden.weight", "hidden.bias"]
    with pytest.raises(IndexError, match="index 5 is out of range"):
        seq[5]
    layers = nn.ModuleList([nn.Linear(1, 1)])
    layers.append(nn.ReLU())
    layers += [nn.Tanh()]
    layers.insert(0, nn.Identity())
    assert [type(m).__name__ for m in layers] == ["Identity", "Linear", "ReLU", "Tanh"]
    assert len(list(layers.parameters())) == 2 and isinstance(layers[1:3], nn.ModuleList)


def test_train_eval_propagate_and_return_self():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
    assert net.training and net[1].training
    assert net.eval() is net
    assert not net.training and not net[1].training
    net.train()
    assert net[1].training
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        net.train("yes")


def test_zero_grad_sets_to_none_or_zeros():
    net = nn.Linear(3, 1)
    net(torch.ones(2, 3)).sum().backward()
    assert net.weight.grad.tolist() == [[2.0, 2.0, 2.0]]
    net.zero_grad(set_to_none=False)
    assert net.weight.grad.tolist() == [[0.0, 0.0, 0.0]] and net.bias.grad.tolist() == [0.0]
    net.zero_grad()
    assert net.weight.grad is None and net.bias.grad is None


def test_apply_and_requires_grad_():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "Linear", "Sequential"]
    net.apply(lambda m: nn.init.zeros_(m.weight) if isinstance(m, nn.Linear) else None)
    assert np.all(net[0].weight.detach().numpy() == 0)
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_dtype_conversion_keeps_parameter_identity():
    net = Net()
    params = list(net.parameters())
    before = net.fc1.weight.detach().numpy().copy()
    assert net.double() is net
    assert all(a is b for a, b in zip(net.parameters(), params))
    assert all(p.dtype is torch.float64 for p in net.parameters()) and net.running.dtype is torch.float64
    np.testing.assert_array_equal(net.fc1.weight.detach().numpy(), before.astype(np.float64))
    out = net(torch.randn(2, 4, dtype=torch.float64))
    assert out.dtype is torch.float64
    out.sum().backward()
    assert net.fc1.weight.grad.dtype is torch.float64
    net.to(torch.float32)
    assert net.fc1.weight.dtype is torch.float32 and net.fc1.weight.grad.dtype is torch.float32
    assert net.cpu() is net and net.to("cpu") is net
    with pytest.raises(TypeError, match="floating point"):
        net.to(torch.int64)


# ---------------------------------------------------------------- state dicts


def test_state_dict_round_trip():
    a, b = Net(), Net()
    with torch.no_grad():
        a.running.add_(0.5)
    x = torch.randn(3, 4)
    assert not np.allclose(a(x).detach().numpy(), b(x).detach().numpy())
    result = b.load_state_dict(a.state_dict())
    assert repr(result) == "<All keys matched successfully>"
    np.testing.assert_array_equal(a(x).detach().numpy(), b(x).detach().numpy())
    state = a.state_dict()
    assert not state["fc1.weight"].requires_grad and "scratch" not in state
    assert b.fc1.weight is not a.fc1.weight and b.fc1.weight.requires_grad


def test_state_dict_shares_values_with_the_model():
    net = nn.Linear(2, 1)
    state = net.state_dict()
    with torch.no_grad():
        net.bias.fill_(3.0)
    assert state["bias"].tolist() == [3.0]


def test_load_state_dict_errors_as_pytorch():
    net = nn.Linear(2, 1)
    state = nn.Linear(2, 1).state_dict()
    del state["bias"]
    state["extra"] = torch.zeros(1)
    with pytest.raises(RuntimeError) as err:
        net.load_state_dict(state)
    assert str(err.value) == ('Error(s) in loading state_dict for Linear:\n\tMissing key(s) in state_dict: "bias". '
                              '\n\tUnexpected key(s) in state_dict: "extra". ')
    keys = net.load_state_dict(state, strict=False)
    assert keys.missing_keys == ["bias"] and keys.unexpected_keys == ["extra"]
    with pytest.raises(RuntimeError, match=r"size mismatch for weight: copying a param with shape .*\[3, 2\]"):
        net.load_state_dict(nn.Linear(2, 3).state_dict())


# ---------------------------------------------------------------- layers and init


def test_linear_default_init_bounds_and_determinism():
    torch.manual_seed(0)
    a = nn.Linear(50, 20)
    torch.manual_seed(0)
    b = nn.Linear(50, 20)
    np.testing.assert_array_equal(a.weight.detach().numpy(), b.weight.detach().numpy())
    bound = 1 / math.sqrt(50)
    w, bias = a.weight.detach().numpy(), a.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(bias).max() <= bound
    assert np.abs(w).max() > 0.9 * bound and w.std() > 0.5 * bound / math.sqrt(3)
    assert a.weight.shape == (20, 50) and a.bias.shape == (20,)


def test_init_functions():
    t = torch.empty(30, 40)
    nn.init.zeros_(t)
    assert np.all(t.numpy() == 0)
    nn.init.ones_(t)
    assert np.all(t.numpy() == 1)
    nn.init.constant_(t, 0.25)
    assert np.all(t.numpy() == 0.25)
    nn.init.uniform_(t, -2, 3)
    assert t.numpy().min() >= -2 and t.numpy().max() < 3 and abs(t.numpy().mean() - 0.5) < 0.15
    nn.init.normal_(t, 1.0, 0.5)
    assert abs(t.numpy().mean() - 1.0) < 0.05 and abs(t.numpy().std() - 0.5) < 0.05
    nn.init.xavier_uniform_(t)
    assert np.abs(t.numpy()).max() <= math.sqrt(6 / 70)
    nn.init.kaiming_uniform_(t, nonlinearity="relu")
    assert np.abs(t.numpy()).max() <= math.sqrt(2) * math.sqrt(3 / 40)
    assert np.abs(t.numpy()).max() > 0.9 * math.sqrt(2) * math.sqrt(3 / 40)
    p = nn.Parameter(torch.empty(3, 3))
    assert nn.init.kaiming_uniform_(p) is p and p.requires_grad
    assert nn.init.calculate_gain("tanh") == 5 / 3 and nn.init.calculate_gain("relu") == math.sqrt(2)
    assert nn.init.calculate_gain("leaky_relu", math.sqrt(5)) == math.sqrt(2 / 6)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(torch.empty(3))


def test_flatten_and_identity():
    x = torch.randn(2, 3, 4)
    assert tuple(nn.Flatten()(x).shape) == (2, 12)
    assert tuple(nn.Flatten(0, 1)(x).shape) == (6, 4)
    assert nn.Identity(54, unused="arg")(x) is x
    assert nn.Softmax(dim=1)(x).numpy().sum(1) == pytest.approx(np.ones((2, 4)), rel=1e-6)


def test_no_warning_on_matching_shapes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.mse_loss(torch.zeros(3), torch.ones(3))
