"""Training loops end to end: kernels per step, bounded eager loops, an MLP on the digits data,
and loss curves against PyTorch (when installed) from the same initial weights."""
from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest

import fusegrad as torch
import fusegrad.nn as nn
import fusegrad.nn.functional as F
import fusegrad.optim as optim
from fusegrad.realize import STATS


def regression_data(n=100, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, (n, 1)).astype(np.float32)
    y = (2.5 * x + 1.0 + rng.normal(0, 1, (n, 1))).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y)


# ---------------------------------------------------------------- what one step compiles to


def test_linear_mse_sgd_step_kernels():
    x, y = regression_data()
    model, loss_fn = nn.Linear(1, 1), nn.MSELoss()
    opt = optim.SGD(model.parameters(), lr=0.01)
    for _ in range(3):     # warm-up: every program compiled
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    runs, misses = STATS["runs"], STATS["misses"]
    loss = loss_fn(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert STATS["runs"] == runs + 1 and STATS["misses"] == misses
    # One program per step: backward() leaves the forward pass and the gradients to the next
    # realization, opt.step()'s, which computes them with every parameter update (7 kernels):
    #   k0  matmul x @ W^T with its epilogue: + b, and the residual r = pred - y
    #   k1  dL/dpred = 2 r / N (elementwise)
    #   k2  matmul dL/dpred^T @ x: the weight gradient, already in W's layout (simplify turns
    #       (x^T @ g)^T into g^T @ x, so no permute copy follows)
    #   k3  sum of dL/dpred over the batch: the bias gradient, shaped [1,1] ...
    #   k4  ... reshaped to [1] (b.grad) and, in the same loop, b -= lr * b.grad in place
    #   k5  the loss itself, sum(r * r) / N (a reduction reading k0's residual)
    #   k6  W -= lr * W.grad, in place
    # The learning rate is a 0-d input, not a constant.
    program = torch.program_of(model.weight)
    assert program is torch.program_of(loss) is torch.program_of(model.bias.grad) is torch.program_of(model.bias)
    assert program is torch.program_of(model.weight.grad)
    assert program.num_kernels == 7


# ---------------------------------------------------------------- eager loops stay bounded


def _grown_bytes(step, warmup=50, steps=300) -> tuple[int, int]:
    """(bytes traced memory grew by, programs compiled) over `steps` calls after a warm-up.

    Measured over two windows of `steps` calls, keeping the smaller growth: a leak grows in
    both, while a dict that reaches a new capacity once (the runtime's address cache does,
    depending on what earlier code left in it) grows in one only."""
    for _ in range(warmup):
        step()
    grown, misses = [], STATS["misses"]
    for _ in range(2):
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(steps):
                step()
            gc.collect()
            grown.append(tracemalloc.get_traced_memory()[0] - before)
        finally:
            tracemalloc.stop()
    return min(grown), STATS["misses"] - misses


# Bytes over 300 steps. The runtime hands out output buffers from 64 KB slabs, so a few slabs in
# flight are normal; keeping each step's output alive grows by megabytes (checked below).
BOUND = 200_000


def test_optimizer_loop_is_flat_and_cached():
    torch.manual_seed(0)
    x, y = torch.rand(64, 3), torch.rand(64, 1)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Dropout(0.1), nn.Linear(8, 1))
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    kept = []

    def step(keep=False):
        pred = model(x)
        loss = F.mse_loss(pred, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if keep:
            kept.append(pred)
    grown, compiled = _grown_bytes(step)
    assert compiled == 0, "after warm-up every step is served from the program cache"
    assert grown < BOUND, f"memory grew by {grown} bytes over 300 steps"
    leaked, _ = _grown_bytes(lambda: step(keep=True), warmup=0, steps=100)
    assert leaked > BOUND, "the measurement sees a real leak (each step's output kept alive)"


def test_manual_update_loop_is_flat_and_cached():
    """`p -= lr * p.grad` on parameters (on plain requires_grad tensors: see test_core_bugs_nn.py)."""
    x, y = regression_data()
    w = nn.Parameter(torch.zeros(1, 1))
    b = nn.Parameter(torch.zeros(1))

    def step():
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            for p in (w, b):
                p -= 0.01 * p.grad
                p.grad.zero_()
    grown, compiled = _grown_bytes(step)
    assert compiled == 0
    assert grown < BOUND, f"memory grew by {grown} bytes over 300 steps"
    assert abs(w.item() - 2.5) < 0.2


def test_linear_regression_converges():
    x, y = regression_data()
    model, loss_fn = nn.Linear(1, 1), nn.MSELoss()
    opt = optim.SGD(model.parameters(), lr=0.01)
    for _ in range(1500):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    xs, ys = x.numpy()[:, 0], y.numpy()[:, 0]
    slope, intercept = np.polyfit(xs, ys, 1)
    assert model.weight.item() == pytest.approx(slope, abs=0.02)
    assert model.bias.item() == pytest.approx(intercept, abs=0.1)


# ---------------------------------------------------------------- a real data set


def test_mlp_on_digits_reaches_95_percent():
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn not installed")
    start = time.perf_counter()
    digits = datasets.load_digits()
    features = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(features))
    train, test = order[:1400], order[1400:]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))
    opt = optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(20):
        shuffled = rng.permutation(train)
        for i in range(0, len(shuffled), 100):
            batch = shuffled[i:i + 100]
            loss = loss_fn(model(torch.from_numpy(features[batch])), torch.from_numpy(labels[batch]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        predicted = model(torch.from_numpy(features[test])).argmax(1).numpy()
    accuracy = (predicted == labels[test]).mean()
    assert accuracy >= 0.95, f"test accuracy {accuracy:.3f}"
    assert time.perf_counter() - start < 60


# ---------------------------------------------------------------- PyTorch as the oracle


def _twin_models(torch_ref, sizes, seed=0):
    """A fusegrad MLP and a PyTorch MLP with the same initial weights."""
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    ours = nn.Sequential(*layers)
    theirs = torch_ref.nn.Sequential(*[
        torch_ref.nn.Linear(m.in_features, m.out_features) if isinstance(m, nn.Linear) else torch_ref.nn.Tanh()
        for m in layers])
    theirs.load_state_dict({k: torch_ref.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    return ours, theirs


OPTIMIZERS = [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
              ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.1)),
              ("Adam", dict(lr=0.01, weight_decay=1e-3)), ("Adam", dict(lr=0.01, amsgrad=True)),
              ("AdamW", dict(lr=0.01)), ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True))]


@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=[f"{n}-{','.join(kw)}" for n, kw in OPTIMIZERS])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_loss_curve_matches_pytorch(name, kw, task):
    try:
        import torch as torch_ref
    except ImportError:
        pytest.skip("PyTorch not installed")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 10)).astype(np.float32)
    if task == "classification":
        target = rng.integers(0, 4, 32)
        ours_loss, theirs_loss, sizes = F.cross_entropy, torch_ref.nn.functional.cross_entropy, [10, 16, 4]
    else:
        target = rng.standard_normal((32, 1)).astype(np.float32)
        ours_loss, theirs_loss, sizes = F.mse_loss, torch_ref.nn.functional.mse_loss, [10, 16, 1]
    ours, theirs = _twin_models(torch_ref, sizes)
    ours_opt = getattr(optim, name)(ours.parameters(), **kw)
    theirs_opt = getattr(torch_ref.optim, name)(theirs.parameters(), **kw)
    ours_curve, theirs_curve = [], []
    for _ in range(20):
        for model, opt, loss_fn, lib, curve in [(ours, ours_opt, ours_loss, torch, ours_curve),
                                                (theirs, theirs_opt, theirs_loss, torch_ref, theirs_curve)]:
            loss = loss_fn(model(lib.from_numpy(x)), lib.from_numpy(target))
            opt.zero_grad()
            loss.backward()
            opt.step()
            curve.append(loss.item())
    np.testing.assert_allclose(ours_curve, theirs_curve, rtol=1e-4)
    assert ours_curve[-1] < 0.9 * ours_curve[0]


# ---------------------------------------------------------------- the examples run


EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples")


def _run_example(name: str, timeout: int = 120, args: tuple = ()) -> str:
    env = dict(os.environ, MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *args], capture_output=True, text=True,
                          env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_example_autograd_tangent():
    out = _run_example("autograd_tangent.py")
    assert "f'(x0) = 10.7500 by autograd (3x**2 + 6x - 5 by hand: 10.7500)" in out
    assert "plot saved to" in out or "skipped the plot" in out


def test_example_linear_regression():
    out = _run_example("linear_regression.py")
    assert len(re.findall(r"^epoch +\d+  loss \d+\.\d+$", out, re.M)) == 10
    fitted, least_squares = (tuple(map(float, m)) for m in re.findall(r"y = (-?[\d.]+) x \+ (-?[\d.]+)", out)[:2])
    assert fitted == pytest.approx(least_squares, abs=2e-3)
    assert "plot saved to" in out or "skipped the plot" in out


def test_example_compiled_training(tmp_path):
    """30 epochs from a DataLoader, a checkpoint at the end; `--resume` continues from it."""
    checkpoint = str(tmp_path / "ck.pt")
    out = _run_example("compiled_training.py", args=("--checkpoint", checkpoint))
    epochs = re.findall(r"^epoch +\d+  loss (\d+\.\d+)$", out, re.M)
    assert len(epochs) == 7
    accuracy = float(re.search(r"test accuracy: ([\d.]+)%", out).group(1))
    assert accuracy >= 95.0
    traces, replays = map(int, re.search(r"(\d+) traces, (\d+) replays", out).groups())
    assert traces <= 3 and replays == 30 * (1347 // 64) - traces    # every later step replays
    assert f"checkpoint saved to {checkpoint} (epoch 30)" in out
    assert "loss curve saved to" in out or "skipped the plot" in out

    resumed = _run_example("compiled_training.py", args=("--checkpoint", checkpoint, "--resume", "--epochs", "2"))
    assert f"resumed from {checkpoint} after epoch 30 (loss {epochs[-1]})" in resumed
    more = re.findall(r"^epoch +(\d+)  loss (\d+\.\d+)$", resumed, re.M)
    assert [int(e) for e, _ in more] == [31, 32]
    assert float(more[0][1]) < 2 * float(epochs[-1]) < float(epochs[0]) / 10     # it goes on, not from scratch
    assert float(re.search(r"test accuracy: ([\d.]+)%", resumed).group(1)) >= 95.0


def test_example_profile_mlp(tmp_path):
    """Issue 17: the profiled digits step prints its kernel table, writes a Chrome trace with one
    event per kernel run and draws the kernel graph (as dot text here: no Graphviz needed)."""
    trace, picture = tmp_path / "trace.json", tmp_path / "graph.dot"
    out = _run_example("profile_mlp.py", args=("--rows", "5", "--trace", str(trace), "--picture", str(picture)))
    steps = int(re.search(r"one epoch: (\d+) steps", out).group(1))
    rows = re.findall(r"^train_step\.k\d+ .* (\d+) +[\d.]+ [mu]?s ", out, re.M)
    assert len(rows) == 5 and all(int(calls) == steps for calls in rows)
    runs = int(re.search(r"Chrome trace of (\d+) kernel runs", out).group(1))
    events = [e for e in json.loads(trace.read_text())["traceEvents"] if e.get("ph") == "X"]
    assert len(events) == runs and runs % steps == 0
    assert picture.read_text().startswith("digraph")


def test_example_cnn_digits():
    """The issue's bar: a LeNet-style CNN with BatchNorm and max-pooling, compiled, >= 98 %."""
    out = _run_example("cnn_digits.py", timeout=600)
    epochs = re.findall(r"^epoch +\d+  loss (\d+\.\d+)  test accuracy ([\d.]+)%$", out, re.M)
    assert len(epochs) == 12
    assert float(epochs[-1][0]) < 0.1 * float(epochs[0][0])
    assert float(re.search(r"test accuracy: ([\d.]+)%", out).group(1)) >= 98.0
    traces, replays = map(int, re.search(r"(\d+) traces, (\d+) replays", out).groups())
    assert traces <= 3 and replays == 12 * (1347 // 64) - traces    # every later step replays
    assert "curves saved to" in out or "skipped the plot" in out


def test_example_char_transformer():
    """Issue 13: a GPT-style character model (causal attention, AdamW, cosine schedule, gradient
    clipping) trained by a compiled step on Python's help topics.

    The quick setting (a 2-layer d_model-64 model, 160 steps) is what a test can afford (about a
    minute on two busy cores); its validation loss ends about 1.05 nats/char below the unigram
    entropy, too close to the issue's 1-nat bar to assert it across machines, so the test asks
    for 0.8. The default run (400 steps of a d_model-96 model) ends about 1.55 below."""
    out = _run_example("char_transformer.py", timeout=600, args=("--quick",))
    epochs = re.findall(r"^epoch +\d+  train loss (\d+\.\d+)  validation loss (\d+\.\d+)  [\d.]+ ms/step$", out, re.M)
    assert len(epochs) == 4
    val = [float(v) for _, v in epochs]
    assert val[-1] < val[0] and float(epochs[-1][0]) < float(epochs[0][0])
    entropy = float(re.search(r"unigram entropy of the text: ([\d.]+) nats/char", out).group(1))
    assert 3.0 < entropy < 3.5                         # English text and code, about 100 characters
    assert val[-1] < entropy - 0.8
    # the scheduler changes lr at every step outside the compiled function: read at every replay,
    # it never retraces the step (one trace, and one more when AdamW's state first exists)
    traces, replays = map(int, re.search(r"(\d+) traces, (\d+) replays", out).groups())
    assert traces <= 3 and replays == 4 * 40 - traces
    sample = re.search(r"^-{60}\n(.*?)\n-{60}$", out, re.M | re.S).group(1)
    assert sample.startswith("The ") and len(sample) >= 204
    assert "curves saved to" in out or "skipped the plot" in out
