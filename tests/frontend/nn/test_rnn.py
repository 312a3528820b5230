"""nn.RNN, nn.LSTM and nn.GRU against numpy references of PyTorch's formulas (gate order,
biases, multi-layer, bidirectional, batch_first, initial states, proj_size), float64
gradchecks through the recurrence, a compiled training step equal to eager, shape errors,
and PyTorch as an oracle when installed."""
from __future__ import annotations

import numpy as np
import pytest

import fusegrad as torch
from fusegrad import nn
from helpers import gradcheck


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _cell(mode, x, state, w):
    """One step of PyTorch's cell `mode` from numpy weights w (dict without the _l{k} suffix)."""
    gi = x @ w["weight_ih"].T + w.get("bias_ih", 0)
    h = state[0]
    gh = h @ w["weight_hh"].T + w.get("bias_hh", 0)
    if mode in ("RNN_TANH", "RNN_RELU"):
        pre = gi + gh
        return (np.tanh(pre) if mode == "RNN_TANH" else np.maximum(pre, 0),)
    if mode == "GRU":
        ir, iz, in_ = np.split(gi, 3, axis=-1)
        hr, hz, hn = np.split(gh, 3, axis=-1)
        r, z = _sigmoid(ir + hr), _sigmoid(iz + hz)
        n = np.tanh(in_ + r * hn)
        return ((1 - z) * n + z * h,)
    i, f, g, o = np.split(gi + gh, 4, axis=-1)            # LSTM: input, forget, cell, output
    c = _sigmoid(f) * state[1] + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    if "weight_hr" in w:
        h = h @ w["weight_hr"].T
    return (h, c)


def _reference(module, x, states):
    """(output, final states) of `module` on numpy input x (T, B, F) from initial states, each
    (layers * dirs, B, H)."""
    dirs = 2 if module.bidirectional else 1
    params = {k: v.detach().numpy().astype(np.float64) for k, v in module.named_parameters()}
    finals = [[] for _ in states]
    layer_in = x
    for layer in range(module.num_layers):
        outs = []
        for d in range(dirs):
            suffix = f"_l{layer}" + ("_reverse" if d else "")
            w = {k[:-len(suffix)]: v for k, v in params.items() if k.endswith(suffix)}
            state = tuple(s[layer * dirs + d] for s in states)
            steps = range(x.shape[0])[::-1] if d else range(x.shape[0])
            seq = [None] * x.shape[0]
            for t in steps:
                state = _cell(module.mode, layer_in[t], state, w)
                seq[t] = state[0]
            outs.append(np.stack(seq))
            for k, s in enumerate(state):
                finals[k].append(s)
        layer_in = np.concatenate(outs, axis=-1)
    return layer_in, [np.stack(f) for f in finals]


CASES = [
    ("RNN", dict(nonlinearity="tanh")),
    ("RNN", dict(nonlinearity="relu", num_layers=2)),
    ("GRU", dict(num_layers=2, bidirectional=True)),
    ("GRU", dict(bias=False)),
    ("LSTM", dict()),
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(proj_size=3)),
]


@pytest.mark.parametrize("kind,kw,batch_first", [(k, kw, i % 2 == 1) for i, (k, kw) in enumerate(CASES)],
                         ids=[f"{k}-{'-'.join(map(str, v.values())) or 'plain'}" for k, v in CASES])
def test_forward_matches_reference(kind, kw, batch_first):
    torch.manual_seed(0)
    module = getattr(nn, kind)(4, 5, batch_first=batch_first, **kw)
    rng = np.random.default_rng(1)
    T, B = 4, 3
    x = rng.standard_normal((T, B, 4)).astype(np.float32)
    dirs = 2 if module.bidirectional else 1
    h_size = kw.get("proj_size") or 5
    h0 = rng.standard_normal((module.num_layers * dirs, B, h_size)).astype(np.float32)
    c0 = rng.standard_normal((module.num_layers * dirs, B, 5)).astype(np.float32)
    states = [h0, c0] if kind == "LSTM" else [h0]
    given = torch.tensor(x.transpose(1, 0, 2).copy() if batch_first else x)
    hx = (torch.tensor(h0), torch.tensor(c0)) if kind == "LSTM" else torch.tensor(h0)
    out, final = module(given, hx)
    want_out, want_final = _reference(module, x.astype(np.float64), [s.astype(np.float64) for s in states])
    got = out.detach().numpy()
    np.testing.assert_allclose(got.transpose(1, 0, 2) if batch_first else got, want_out, rtol=1e-4, atol=1e-5)
    finals = final if kind == "LSTM" else (final,)
    for f, w in zip(finals, want_final):
        np.testing.assert_allclose(f.detach().numpy(), w, rtol=1e-4, atol=1e-5)
    assert out.shape == ((B, T, dirs * h_size) if batch_first else (T, B, dirs * h_size))


def test_zero_initial_state_and_unbatched_input():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4)
    x = np.random.default_rng(2).standard_normal((5, 3)).astype(np.float32)      # (T, F): unbatched
    out, (h, c) = lstm(torch.tensor(x))
    zeros = np.zeros((1, 1, 4))
    want, (wh, wc) = _reference(lstm, x[:, None].astype(np.float64), [zeros, zeros])
    assert out.shape == (5, 4) and h.shape == (1, 4) and c.shape == (1, 4)
    np.testing.assert_allclose(out.detach().numpy(), want[:, 0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(c.detach().numpy(), wc[:, 0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_gradients_through_the_recurrence(kind):
    torch.manual_seed(0)
    module = getattr(nn, kind)(2, 2, dtype=torch.float64)
    x = np.random.default_rng(3).standard_normal((3, 2, 2))
    gradcheck(lambda t: module(t)[0], x, atol=1e-6)
    # and the recurrent matrix, reached through every step: backward() against central differences
    w = module.weight_hh_l0
    xt = torch.tensor(x)
    projection = np.random.default_rng(4).standard_normal((3, 2, 2))

    def objective() -> torch.Tensor:
        return (module(xt)[0] * torch.tensor(projection)).sum()
    objective().backward()
    analytic = w.grad.numpy().copy()
    numeric = np.zeros_like(analytic)
    eps = 1e-6
    for k in range(numeric.size):
        with torch.no_grad():
            w.view(-1)[k] += eps
            up = objective().item()
            w.view(-1)[k] -= 2 * eps
            down = objective().item()
            w.view(-1)[k] += eps
        numeric.reshape(-1)[k] = (up - down) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)


def test_compiled_training_step_equals_eager():
    def run(compiled: bool):
        torch.manual_seed(0)
        model = nn.GRU(3, 4, batch_first=True)
        head = nn.Linear(4, 1)
        opt = torch.optim.SGD(list(model.parameters()) + list(head.parameters()), lr=0.1)

        def step(x, y):
            opt.zero_grad()
            out, _ = model(x)
            loss = ((head(out[:, -1]) - y) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        fn = torch.compile(step) if compiled else step
        rng = np.random.default_rng(4)
        losses = [fn(torch.tensor(rng.standard_normal((5, 4, 3)).astype(np.float32)),
                     torch.tensor(rng.standard_normal((5, 1)).astype(np.float32))).item() for _ in range(4)]
        return losses, model.weight_ih_l0.detach().numpy()
    (eager, w_eager), (compiled, w_compiled) = run(False), run(True)
    np.testing.assert_allclose(compiled, eager, rtol=1e-5)
    np.testing.assert_allclose(w_compiled, w_eager, rtol=1e-5, atol=1e-6)


def test_shape_errors_as_pytorch():
    lstm = nn.LSTM(3, 4)
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. Expected 3, got 5"):
        lstm(torch.zeros(2, 1, 5))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[0\] size \(1, 2, 4\), got \[1, 3, 4\]"):
        lstm(torch.zeros(5, 2, 3), (torch.zeros(1, 3, 4), torch.zeros(1, 2, 4)))


def test_against_pytorch():
    ref = pytest.importorskip("torch")
    torch.manual_seed(0)
    ours = nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True)
    theirs = ref.nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True)
    with ref.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(ref.from_numpy(getattr(ours, name).detach().numpy()))
    x = np.random.default_rng(5).standard_normal((2, 6, 4)).astype(np.float32)
    out, (h, c) = ours(torch.tensor(x))
    want, (wh, wc) = theirs(ref.from_numpy(x))
    np.testing.assert_allclose(out.detach().numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.detach().numpy(), wc.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert repr(ours) == repr(theirs)
