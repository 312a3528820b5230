"""@fusegrad.compile: tracing, replay, retracing, captured state, tracing errors, dumps, caches."""
import inspect
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fusegrad as torch
from fusegrad.compiler.ir import parse_graph, structurally_equal
from fusegrad.jit import TracingError


def _line_of(marker):
    src = inspect.getsource(sys.modules[__name__]).splitlines()
    n = next(i for i, line in enumerate(src, 1) if marker in line and "_line_of" not in line)
    return f"{os.path.basename(__file__)}:{n}"


def _linreg():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.random((100, 1), dtype=np.float32))
    y = 3 * x + 2 + torch.tensor(rng.normal(0, 0.01, (100, 1)).astype(np.float32))
    w = torch.zeros(1, 1, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)

    def step(x, y):
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            w.sub_(0.5 * w.grad)
            b.sub_(0.5 * b.grad)
            w.grad.zero_()
            b.grad.zero_()
        return loss
    return step, x, y, w, b


def test_compiled_step_matches_eager_step_for_step():
    step_e, x, y, we, be = _linreg()
    step_c, _, _, wc, bc = _linreg()
    compiled = torch.compile(step_c)
    for _ in range(10):
        le, lc = step_e(x, y), compiled(x, y)
        assert lc.item() == pytest.approx(le.item(), rel=1e-5)
    np.testing.assert_allclose(wc.detach().numpy(), we.detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(bc.detach().numpy(), be.detach().numpy(), rtol=1e-5)
    assert compiled.stats["replays"] >= 7


def test_linear_regression_converges_with_a_compiled_step():
    step, x, y, w, b = _linreg()
    step = torch.compile(step)
    for _ in range(300):
        loss = step(x, y)
    assert loss.item() < 1e-3
    assert w.item() == pytest.approx(3.0, abs=0.05) and b.item() == pytest.approx(2.0, abs=0.05)


def test_same_shapes_do_not_retrace_new_batch_size_retraces_once_and_logs(caplog):
    w = torch.ones(4, 3)

    @torch.compile
    def f(x):
        return (x @ w).sum(1)
    f(torch.ones(8, 4))
    traces = f.stats["traces"]
    for _ in range(5):
        f(torch.rand(8, 4))
    assert f.stats["traces"] == traces
    with caplog.at_level(logging.INFO, logger="fusegrad"):
        out = f(torch.ones(5, 4))
    assert f.stats["traces"] == traces + 1
    assert "retracing f: argument x changed shape f32[8,4] → f32[5,4]" in caplog.text
    np.testing.assert_allclose(out.numpy(), np.full(5, 12.0))


def test_python_scalar_argument_is_static_and_a_tensor_argument_is_not():
    w = torch.ones(3)

    @torch.compile
    def scale(x, lr):
        return x * lr + w
    scale(torch.ones(3), 0.5)
    scale(torch.ones(3), 0.25)
    assert scale.stats["traces"] == 2
    np.testing.assert_allclose(scale(torch.ones(3), 0.25).numpy(), np.full(3, 1.25))
    lr = torch.tensor(0.5)
    scale(torch.ones(3), lr)
    traces = scale.stats["traces"]
    out = scale(torch.ones(3), torch.tensor(0.125))
    assert scale.stats["traces"] == traces
    np.testing.assert_allclose(out.numpy(), np.full(3, 1.125))


def test_replacing_a_captured_tensor_retraces_instead_of_using_stale_state():
    w = torch.ones(3)
    holder = {"w": w}

    @torch.compile
    def f(x):
        return x * holder["w"]
    np.testing.assert_allclose(f(torch.ones(3)).numpy(), np.ones(3))
    np.testing.assert_allclose(f(torch.ones(3)).numpy(), np.ones(3))
    holder["w"].data = torch.full((3,), 5.0)       # rebinding storage: a captured tensor changed
    np.testing.assert_allclose(f(torch.ones(3)).numpy(), np.full(3, 5.0))


@pytest.mark.parametrize("construct", ["item", "float", "if", "numpy", "print"])
def test_reading_values_inside_a_trace_raises_at_the_users_line(construct):
    @torch.compile
    def f(x):
        y = x * 2
        if construct == "item":
            return y.sum().item()  # read-item
        if construct == "float":
            return float(y.sum())  # read-float
        if construct == "if":
            if y.sum() > 0:  # read-if
                return y
            return -y
        if construct == "numpy":
            return y.numpy()  # read-numpy
        print(y)  # read-print
        return y
    with pytest.raises(TracingError) as e:
        f(torch.ones(3))
    msg = str(e.value)
    assert _line_of(f"read-{construct}") in msg
    assert "fusegrad.where" in msg and "static_argnames" in msg and "return the value" in msg


def test_static_tensor_argument_can_be_read_and_retraces_per_value():
    @torch.compile(static_argnames=["flag"])
    def f(x, flag):
        return x * 2 if flag.item() > 0 else x * -2
    np.testing.assert_allclose(f(torch.ones(2), torch.tensor(1)).numpy(), [2, 2])
    np.testing.assert_allclose(f(torch.ones(2), torch.tensor(-1)).numpy(), [-2, -2])
    assert f.stats["traces"] == 2


def test_nested_outputs_and_inputs_come_back_as_structures():
    @torch.compile
    def f(pair, d):
        a, b = pair
        return {"sum": a + b, "both": (a * d["k"], [b - 1])}
    out = f((torch.ones(2), torch.full((2,), 3.0)), {"k": torch.tensor(2.0)})
    np.testing.assert_allclose(out["sum"].numpy(), [4, 4])
    np.testing.assert_allclose(out["both"][0].numpy(), [2, 2])
    np.testing.assert_allclose(out["both"][1][0].numpy(), [2, 2])


def test_random_numbers_differ_between_calls_of_a_compiled_function():
    @torch.compile
    def noisy(x):
        return x + torch.rand(5)
    a, b = noisy(torch.zeros(5)).numpy(), noisy(torch.zeros(5)).numpy()
    assert not np.array_equal(a, b) and (0 <= a).all() and (a < 1).all()


def test_lower_gives_every_stage_and_the_graph_parses(capsys):
    step, x, y, w, b = _linreg()
    before = w.detach().numpy().copy()
    lowered = torch.compile(step).lower(x, y)
    np.testing.assert_array_equal(w.detach().numpy(), before)      # lowering runs nothing
    graph = lowered.text("graph")
    assert '"w"' in graph and '"b"' in graph and "assign w <-" in graph
    assert "matmul %x, %w" in graph and "# test_compile.py:" in graph
    parsed = parse_graph(graph)
    assert parse_graph(lowered.text("graph")) is not None and parsed.inputs[0].attrs["name"] == "x"
    for stage in ("passes", "kernels", "llvm"):
        assert lowered.text(stage)
    assert "fg_main" in lowered.text("llvm") and "kernel k0" in lowered.text("kernels")
    dot = lowered.to_dot()
    assert dot.startswith("digraph") and "subgraph cluster_k0" in dot


def test_fusegrad_dump_prints_stages_with_a_header(capsys):
    step, x, y, w, b = _linreg()
    compiled = torch.compile(step, dump="graph,kernels")
    compiled(x, y)
    err = capsys.readouterr().err
    assert "===== fusegrad step(x: f32[100,1], y: f32[100,1]): graph =====" in err
    assert "===== fusegrad step(x: f32[100,1], y: f32[100,1]): kernels =====" in err
    text = err.split(": graph =====\n", 1)[1].split("\n=====", 1)[0]
    assert structurally_equal(parse_graph(text), parse_graph(text))


def test_dump_dir_writes_one_folder_per_program(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEGRAD_DUMP_DIR", str(tmp_path))
    step, x, y, w, b = _linreg()
    torch.compile(step)(x, y)
    folders = [p for p in tmp_path.iterdir() if p.name.startswith("step")]
    assert folders and {"graph.txt", "passes.txt", "kernels.txt", "llvm.txt"} <= {f.name for f in folders[0].iterdir()}


_PROCESS = textwrap.dedent("""
    import numpy as np, fusegrad as torch
    from fusegrad.runtime.cache import OBJECTS, PROGRAMS
    w = torch.ones(4, 4, requires_grad=True)
    @torch.compile
    def step(x):
        loss = (x @ w).tanh().sum()
        loss.backward()
        with torch.no_grad():
            w.sub_(0.01 * w.grad)
            w.grad.zero_()
        return loss
    for _ in range(3):
        step(torch.ones(2, 4))
    print("compiles", OBJECTS.stats["compiles"], "corrupt", OBJECTS.stats["corrupt"] + PROGRAMS.stats["corrupt"])
""")


def _run_process(cache_dir):
    env = dict(os.environ, FUSEGRAD_CACHE_DIR=str(cache_dir))
    out = subprocess.run([sys.executable, "-c", _PROCESS], env=env, capture_output=True, text=True, check=True)
    return dict(zip(out.stdout.split()[::2], map(int, out.stdout.split()[1::2])))


def test_second_process_skips_llvm_and_a_corrupted_entry_is_rebuilt(tmp_path):
    first = _run_process(tmp_path)
    assert first["compiles"] > 0
    second = _run_process(tmp_path)
    assert second["compiles"] == 0
    victim = next(p for p in tmp_path.iterdir() if p.suffix == ".o")
    victim.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 2])     # truncated
    third = _run_process(tmp_path)
    assert third["corrupt"] >= 1 and third["compiles"] >= 1
    assert _run_process(tmp_path)["compiles"] == 0                               # rebuilt on disk


def _mlp_training_step(make_opt, compiled: bool):
    """(model, optimizer, step): a small MLP's training step, eager or under @compile."""
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    opt, loss_fn = make_opt(model.parameters()), torch.nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return model, opt, torch.compile(step) if compiled else step


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda p: torch.optim.Adam(p, lr=0.01),
], ids=["sgd-momentum", "sgd-nesterov-decay", "adam"])
def test_compiled_and_eager_training_give_the_same_parameters_after_10_steps(make_opt):
    rng = np.random.default_rng(4)
    batches = [(torch.tensor(rng.standard_normal((32, 6)).astype(np.float32)), torch.tensor(rng.integers(0, 3, 32)))
               for _ in range(10)]
    runs = []
    for compiled in (False, True):
        model, opt, step = _mlp_training_step(make_opt, compiled)
        losses = [step(x, y).item() for x, y in batches]
        runs.append((losses, [p.detach().numpy().copy() for p in model.parameters()]))
        if compiled:     # a first step creates optimizer state; from the third on, calls replay
            assert step.stats["traces"] <= 3 and step.stats["replays"] == 10 - step.stats["traces"]
    (eager_losses, eager_params), (compiled_losses, compiled_params) = runs
    np.testing.assert_allclose(compiled_losses, eager_losses, rtol=1e-5)
    assert eager_losses[-1] < eager_losses[0]                # the steps really trained
    for e, c in zip(eager_params, compiled_params):
        np.testing.assert_allclose(c, e, rtol=1e-5, atol=1e-7)


def test_learning_rate_changes_reach_replays_and_other_hyperparameters_retrace(caplog):
    """lr (and momentum, betas) enter the step as runtime values; the others are compiled in."""
    rng = np.random.default_rng(5)
    x, y = (torch.tensor(rng.standard_normal((16, 6)).astype(np.float32)), torch.tensor(rng.integers(0, 3, 16)))
    runs = []
    for compiled in (False, True):
        model, opt, step = _mlp_training_step(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5), compiled)
        losses = []
        for i in range(8):
            opt.param_groups[0]["lr"] = 0.1 / (i + 1)        # a schedule: a new lr every step
            losses.append(step(x, y).item())
        traces = step.stats["traces"] if compiled else 0
        with caplog.at_level(logging.INFO, logger="fusegrad"):
            opt.param_groups[0]["dampening"] = 0.2             # compiled in: must retrace
            losses.append(step(x, y).item())
        runs.append((losses, [p.detach().numpy().copy() for p in model.parameters()]))
    (eager_losses, eager_params), (compiled_losses, compiled_params) = runs
    assert traces <= 3 and step.stats["traces"] == traces + 1
    assert "hyperparameters of param_groups[0] changed" in caplog.text
    np.testing.assert_allclose(compiled_losses, eager_losses, rtol=1e-5)
    for e, c in zip(eager_params, compiled_params):
        np.testing.assert_allclose(c, e, rtol=1e-5, atol=1e-7)


def test_a_structural_hyperparameter_retraces_only_when_it_crosses_zero():
    """Momentum's value is a runtime value, whether it is zero is compiled in: 0.5 -> 0.3 replays,
    0.3 -> 0 retraces, and a baked value set again to an equal float replays."""
    x, y = torch.ones(4, 6), torch.tensor([0, 1, 2, 0])
    model, opt, step = _mlp_training_step(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5), True)
    step(x, y), step(x, y)
    traces = step.stats["traces"]
    opt.param_groups[0]["momentum"] = 0.3
    opt.param_groups[0]["dampening"] = float("0.0")        # equal to the traced 0, a new object
    step(x, y)
    assert step.stats["traces"] == traces
    opt.param_groups[0]["momentum"] = 0.0
    step(x, y)
    assert step.stats["traces"] == traces + 1
