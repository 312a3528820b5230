"""Python threads share fusegrad safely: eager realizations, compiled replays, traces, no_grad
in one thread and autograd in another, all at once; every result is checked against numpy.

Each realization binds buffers into an executable's table and makes a native call; trace
state, grad mode and deferred update batches are per thread (contextvars). A short switch
interval makes the interpreter change threads often, so an unguarded race shows up.
"""
from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import fusegrad

ITERATIONS = 2000


@pytest.fixture
def often_switching():
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


def _arrays(seed: int, sizes=(1, 7, 64, 257)):
    """Values of a few sizes (each size a program; each thread its own values)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(np.float32) for n in sizes]


def _eager(arrays, wrong, i):
    a = arrays[i % len(arrays)]
    got = (fusegrad.tensor(a) * 2).sum().item()
    if not np.isclose(got, float((a.astype(np.float64) * 2).sum()), rtol=1e-4, atol=1e-3):
        wrong.append(("eager", i, got))


_compiled = fusegrad.compile(lambda x: (x * 3 + 1).sum())


def _replayed(arrays, wrong, i):
    a = arrays[i % len(arrays)]
    got = _compiled(fusegrad.tensor(a)).item()
    if not np.isclose(got, float((a.astype(np.float64) * 3 + 1).sum()), rtol=1e-4, atol=1e-3):
        wrong.append(("compiled", i, got))


def _no_grad(arrays, wrong, i):
    a = arrays[i % len(arrays)]
    with fusegrad.no_grad():
        w = fusegrad.tensor(a, requires_grad=True)
        y = (w * w).sum()
        if y.requires_grad or fusegrad.is_grad_enabled():
            wrong.append(("no_grad recorded history", i))
        got = y.item()
    if not np.isclose(got, float((a.astype(np.float64) ** 2).sum()), rtol=1e-4, atol=1e-3):
        wrong.append(("no_grad", i, got))


def _autograd(arrays, wrong, i):
    a = arrays[i % len(arrays)]
    w = fusegrad.tensor(a, requires_grad=True)
    y = (w * w).sum()
    if not y.requires_grad:
        wrong.append(("autograd off in this thread", i))
        return
    y.backward()
    if not np.allclose(w.grad.numpy(), 2 * a, rtol=1e-6):
        wrong.append(("grad", i))


def _run_threads(workers, iterations=ITERATIONS):
    """Run each worker `iterations` times in its own thread, started together; the failures."""
    wrong: list = []
    errors: list = []
    start = threading.Barrier(len(workers))

    def body(worker, seed):
        arrays = _arrays(seed)
        start.wait()
        try:
            for i in range(iterations):
                worker(arrays, wrong, i)
        except Exception as e:          # noqa: BLE001 - reported with the thread's worker
            errors.append((worker.__name__, repr(e)))

    threads = [threading.Thread(target=body, args=(w, k)) for k, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wrong, errors


def test_four_threads_of_eager_realizations(often_switching):
    wrong, errors = _run_threads([_eager] * 4)
    assert errors == [] and wrong == []


def test_four_threads_of_compiled_replays(often_switching):
    wrong, errors = _run_threads([_replayed] * 4)
    assert errors == [] and wrong == []


def test_no_grad_in_one_thread_autograd_in_another_with_eager_and_compiled(often_switching):
    wrong, errors = _run_threads([_no_grad, _autograd, _eager, _replayed])
    assert errors == [] and wrong == []


def test_a_trace_never_sees_another_threads_ops(often_switching):
    """One thread traces a new signature every few calls while others run eager code: the
    eager ops must not enter the trace, and the traced results stay right."""
    def tracing(arrays, wrong, i):
        n = 1 + i % 40                      # a new shape: a new trace, then replays
        a = np.arange(n, dtype=np.float32)
        f = fusegrad.compile(lambda x: (x * x).sum() + 1)
        got = f(fusegrad.tensor(a)).item()
        if got != float((a * a).sum() + 1):
            wrong.append(("traced", i, got))

    wrong, errors = _run_threads([tracing, _eager, _no_grad, _autograd], iterations=300)
    assert errors == [] and wrong == []


def test_grad_mode_is_per_thread():
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def other():
        inside.wait()
        seen["other"] = fusegrad.is_grad_enabled()
        release.set()

    t = threading.Thread(target=other)
    t.start()
    with fusegrad.no_grad():
        inside.set()
        release.wait()
        seen["main"] = fusegrad.is_grad_enabled()
    t.join()
    assert seen == {"other": True, "main": False}
