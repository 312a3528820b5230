"""fusegrad.distributed.traced (issue 18): `all_reduce_lazy` eagerly and inside a compiled
step (one native call per step, the host call inside it), its gradients, its errors, and
`install_host_calls` driving an mpi4py communicator (a stand-in module here; the real library
in one process when it is installed; the 2-rank run is tests/distributed/).

The host function is a fake registered through runtime/hostcalls.py, standing for identical
ranks: a sum over RANKS of them multiplies by RANKS, an average, a max or a min changes nothing."""
from __future__ import annotations

import sys
import threading
import time
import types

import numpy as np
import pytest

import fusegrad as torch
from fusegrad.distributed.traced import all_reduce_lazy, install_host_calls
from fusegrad.runtime import hostcalls, profiling

RANKS = 2


class FakeRanks:
    def __init__(self):
        self.calls = []

    def __call__(self, src, dst, count, dtype, op, group):
        self.calls.append((op, group, count, threading.get_native_id(), time.perf_counter_ns()))
        dst[...] = src * RANKS if op == "sum" else src
        return 0


@pytest.fixture
def ranks():
    fake = FakeRanks()
    previous = hostcalls.register_all_reduce(fake)
    yield fake
    hostcalls.register_all_reduce(previous)


@pytest.fixture
def restore_registration():
    previous = hostcalls.registered_all_reduce()
    yield
    hostcalls.register_all_reduce(previous)


def test_eagerly_it_is_lazy_then_runs_the_host_call_once(ranks):
    x = torch.tensor([1.0, 2.0, 3.0])
    y = all_reduce_lazy(x * 2)
    assert ranks.calls == [] and y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_array_equal(y.numpy(), [4.0, 8.0, 12.0])
    np.testing.assert_array_equal((y + 1).numpy(), [5.0, 9.0, 13.0])
    assert [c[:3] for c in ranks.calls] == [("sum", 0, 3)]
    program = torch.program_of(y)
    assert "= all_reduce %1, reduce=\"sum\", group=0 # test_all_reduce_lazy.py:" in program.text("graph")
    assert [(k.kind, k.reason) for k in program.kernels] == [
        ("elementwise", "all_reduce operand of k1"),
        ("collective", "all_reduce: own kernel (a host call); output requested")]


def test_two_all_reduces_of_one_value_are_two_calls(ranks):
    x = torch.tensor([1.0, 2.0])
    a, b = all_reduce_lazy(x, "max", 3), all_reduce_lazy(x, "max", 3)
    np.testing.assert_array_equal((a + b).numpy(), [2.0, 4.0])
    assert [c[:3] for c in ranks.calls] == [("max", 3, 2), ("max", 3, 2)]


def _ddp_step(compiled: bool, op: str):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        for p in model.parameters():
            p.grad = all_reduce_lazy(p.grad, op)
        opt.step()
        return loss

    return model, (torch.compile(step) if compiled else step)


def test_a_compiled_step_is_one_native_call_with_its_all_reduces_inside(ranks):
    rng = np.random.default_rng(0)
    batches = [(torch.tensor(rng.standard_normal((4, 3)).astype(np.float32)),
                torch.tensor(rng.standard_normal((4, 2)).astype(np.float32))) for _ in range(4)]
    results = []
    for compiled in (False, True):
        model, step = _ddp_step(compiled, "avg")
        for x, y in batches:
            before, native = len(ranks.calls), []
            with profiling.recording(native.append):
                step(x, y).item()
            if compiled:         # traced or replayed: one native call, both gradients reduced inside it
                assert len(native) == 1
                (call,) = native
                inside = ranks.calls[before:]
                assert sorted((c[0], c[2]) for c in inside) == [("avg", 2), ("avg", 6)]    # bias, weight
                assert all(c[3] == call.thread_id and call.start_ns <= c[4] <= call.end_ns for c in inside)
        results.append([p.detach().numpy().copy() for p in model.parameters()])
    assert step.stats["replays"] >= 2
    for eager, compiled_ in zip(*results):
        np.testing.assert_allclose(compiled_, eager, rtol=1e-6)
    lowered = step.lower(*batches[0])
    graph, kernels = lowered.text("graph"), lowered.text("kernels")
    assert graph.count('= all_reduce %') == 2 and graph.count('reduce="avg", group=0') == 2
    assert kernels.count("reason  all_reduce: own kernel (a host call)") == 2


def test_a_bucket_of_gradients_is_one_call(ranks):
    """DDP's buckets: the gradients flattened into one tensor, reduced by one call, read back
    as views of the result."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)

    @torch.compile
    def step(x):
        loss = model(x).square().sum()
        params = list(model.parameters())
        grads = torch.autograd.grad(loss, params)
        flat = all_reduce_lazy(torch.cat([g.reshape(-1) for g in grads]), "sum")
        out, start = [], 0
        for g in grads:
            out.append(flat[start:start + g.numel()].reshape(g.shape))
            start += g.numel()
        return out, grads

    x = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    for _ in range(3):
        before = len(ranks.calls)
        reduced, local = step(x)
        assert [c[:3] for c in ranks.calls[before:]] == [("sum", 0, 8)]
        for r, g in zip(reduced, local):
            np.testing.assert_allclose(r.numpy(), RANKS * g.numpy(), rtol=1e-6)


def test_summed_gradients_are_the_ranks_gradients_added(ranks):
    """With RANKS identical ranks a summed gradient is RANKS times the local one: SGD with lr
    moves as far as a plain step with RANKS * lr."""
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    y = torch.tensor(rng.standard_normal((4, 2)).astype(np.float32))
    model, step = _ddp_step(True, "sum")
    step(x, y)
    torch.manual_seed(0)
    plain = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(plain.parameters(), lr=0.1 * RANKS)
    torch.nn.functional.mse_loss(plain(x), y).backward()
    opt.step()
    for a, b in zip(model.parameters(), plain.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_gradients_flow_through_it(ranks):
    """loss = sum(all_reduce(x * w)) on each of RANKS ranks: d loss / dx = RANKS * w ('sum'),
    w ('avg'); grad_fn is AllReduceBackward0."""
    w = torch.tensor([1.0, -2.0, 3.0])
    for op, factor in (("sum", RANKS), ("avg", 1)):
        x = torch.tensor([0.5, 1.0, 2.0], requires_grad=True)
        out = all_reduce_lazy(x * w, op)
        assert out.grad_fn is not None and out.grad_fn.name() == "AllReduceBackward0"
        out.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), factor * w.numpy())


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_and_min_have_no_gradient(ranks, op):
    x = torch.tensor([0.5, 1.0], requires_grad=True)
    loss = all_reduce_lazy(x * 2, op).sum()
    with pytest.raises(RuntimeError, match=f"all_reduce with reduce='{op}' is not differentiable"):
        loss.backward()


def test_nothing_registered_raises_at_the_users_line_and_the_value_stays_pending(restore_registration):
    hostcalls.register_all_reduce(None)
    x = torch.tensor([1.0, 2.0])
    y = all_reduce_lazy(x + 1)
    with pytest.raises(RuntimeError, match=r"^all_reduce needs fusegrad.distributed.init_process_group\(\) "
                                           r"\(at test_all_reduce_lazy.py:\d+\)$"):
        y.numpy()
    fake = FakeRanks()
    hostcalls.register_all_reduce(fake)
    np.testing.assert_array_equal(y.numpy(), [4.0, 6.0])      # computed once there is a process group
    assert len(fake.calls) == 1


def test_arguments_are_checked(ranks):
    x = torch.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="op must be one of sum, avg, max, min, got 'mean'"):
        all_reduce_lazy(x, "mean")
    with pytest.raises(ValueError, match="group must be a non-negative int"):
        all_reduce_lazy(x, group=-1)
    with pytest.raises(TypeError, match="all_reduce: is not supported on bool operands"):
        all_reduce_lazy(x > 1, "max")
    with pytest.raises(TypeError, match="reduce='avg' needs a floating-point operand"):
        all_reduce_lazy(torch.tensor([1, 2]), "avg")
    member = types.SimpleNamespace(name="SUM")                  # a ReduceOp member, say
    all_reduce_lazy(x, member, np.int64(2)).numpy()
    assert [c[:3] for c in ranks.calls] == [("sum", 2, 2)]


# ---------------------------------------------------------------- install_host_calls

class _FakeComm:
    """What install_host_calls uses of an mpi4py communicator, for RANKS identical ranks."""

    def __init__(self, mpi):
        self.mpi, self.calls = mpi, []

    def Get_size(self) -> int:
        return RANKS

    def Allreduce(self, send, recv, op):
        in_place = send is self.mpi.IN_PLACE
        self.calls.append((in_place, op, recv.dtype.name))
        data = recv if in_place else send
        recv[...] = data * RANKS if op == "SUM" else data


@pytest.fixture
def fake_mpi(monkeypatch, restore_registration):
    mpi = types.ModuleType("mpi4py.MPI")
    mpi.SUM, mpi.MAX, mpi.MIN, mpi.IN_PLACE = "SUM", "MAX", "MIN", object()
    package = types.ModuleType("mpi4py")
    package.__path__ = []
    package.MPI = mpi
    monkeypatch.setitem(sys.modules, "mpi4py", package)
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", mpi)
    comm = _FakeComm(mpi)
    groups = []
    install_host_calls(lambda group: groups.append(group) or comm)
    yield comm, groups


def test_install_host_calls_reduces_through_the_communicator_of_the_group(fake_mpi):
    comm, groups = fake_mpi
    x = torch.tensor([1.0, 2.0, 4.0])
    np.testing.assert_array_equal(all_reduce_lazy(x * 1, "sum", 5).numpy(), [2.0, 4.0, 8.0])
    np.testing.assert_array_equal(all_reduce_lazy(x * 1, "avg", 5).numpy(), [1.0, 2.0, 4.0])   # sum / size
    np.testing.assert_array_equal(all_reduce_lazy(x * 1, "max").numpy(), [1.0, 2.0, 4.0])
    assert groups == [5, 5, 0]
    assert comm.calls == [(False, "SUM", "float32"), (False, "SUM", "float32"), (False, "MAX", "float32")]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16_bit_floats_are_reduced_in_float32_and_rounded_once(fake_mpi, dtype):
    comm, _ = fake_mpi
    x = torch.tensor([1.0, 2.5, -3.0]).to(dtype)
    out = all_reduce_lazy(x * 1, "avg")
    np.testing.assert_array_equal(out.float().numpy(), [1.0, 2.5, -3.0])
    assert out.dtype == dtype and comm.calls == [(True, "SUM", "float32")]


def test_install_host_calls_none_uninstalls(fake_mpi):
    install_host_calls(None)
    with pytest.raises(RuntimeError, match="needs fusegrad.distributed.init_process_group"):
        all_reduce_lazy(torch.tensor([1.0]) * 1).numpy()


def test_with_mpi4py_in_one_process(restore_registration):
    """The real library, one rank (COMM_WORLD of a plain `python` run): every op is the identity."""
    mpi4py = pytest.importorskip("mpi4py")
    from mpi4py import MPI
    assert mpi4py is not None and MPI.COMM_WORLD.Get_size() == 1
    install_host_calls(lambda group: MPI.COMM_WORLD)
    x = torch.tensor([1.0, -2.0, 3.5])
    for op in ("sum", "avg", "max", "min"):
        np.testing.assert_array_equal(all_reduce_lazy(x * 1, op).numpy(), x.numpy())
    i = torch.tensor([3, -4], dtype=torch.int64)
    np.testing.assert_array_equal(all_reduce_lazy(i * 1, "sum").numpy(), [3, -4])
