"""The runtime's choice between all threads and one (runtime/threads.py), and when it applies.

The chooser is driven here with made-up call times, so each test is exact: a machine where all
threads are faster, one where a busy process makes every fifth multi-threaded call wait, and
a load that comes and goes. The last tests check the wiring: a fixed count (set_num_threads(n))
bypasses the chooser, the default uses it, and both give the same values.
"""
from __future__ import annotations

import numpy as np
import pytest

import fusegrad
from fusegrad import runtime
from fusegrad.runtime import threads as T


@pytest.fixture(autouse=True)
def fresh_preference():
    """Each test starts from the initial process-wide preference (all threads)."""
    before = T._PREFER_ONE[0]
    T._PREFER_ONE[0] = False
    yield
    T._PREFER_ONE[0] = before


def drive(choice: T.ThreadChoice, calls: int, seconds) -> list[int]:
    """Run `calls` calls through `choice`; `seconds(n_threads, call_index)` is each call's time.
    Returns the thread count of every call."""
    used = []
    for i in range(calls):
        n = choice.threads(4)
        used.append(n)
        choice.record(n == 1, seconds(n, i))
    return used


def test_an_idle_machine_keeps_all_threads_and_explores_less_and_less():
    choice = T.ThreadChoice()
    used = drive(choice, 2000, lambda n, i: 1.0 if n == 4 else 2.0)
    assert not choice.one
    explored = [i for i, n in enumerate(used) if n == 1]
    assert len(explored) <= 2000 // T.MAX_INTERVAL + 6    # after 4, 8, 16, 32: every MAX_INTERVAL calls
    gaps = np.diff(explored)
    assert gaps[-1] == T.MAX_INTERVAL and (np.diff(gaps) >= 0).all()


def test_a_busy_machine_switches_to_one_thread_when_stalls_make_all_threads_slower_on_average():
    # on all threads most calls are quick (median 1.0) but every fifth waits 8.0: mean 2.6 > 1.5
    choice = T.ThreadChoice()
    used = drive(choice, 400, lambda n, i: 1.5 if n == 1 else (8.0 if i % 5 == 0 else 1.0))
    assert choice.one
    assert used[-100:].count(1) >= 95
    assert T._PREFER_ONE[0]                         # new executables start on one thread
    assert T.ThreadChoice().one


def test_the_choice_follows_the_load_when_it_goes_away():
    choice = T.ThreadChoice()
    busy = lambda n, i: 1.5 if n == 1 else (8.0 if i % 5 == 0 else 1.0)     # noqa: E731
    idle = lambda n, i: 1.5 if n == 1 else 0.8                              # noqa: E731
    drive(choice, 300, busy)
    assert choice.one
    used = drive(choice, (T.WINDOW + 2) * T.MAX_INTERVAL, idle)
    assert not choice.one and used[-50:].count(4) >= 49


def test_a_sudden_slow_call_explores_the_other_choice_at_once():
    choice = T.ThreadChoice()
    drive(choice, 400, lambda n, i: 1.0 if n == 4 else 2.0)         # exploring every MAX_INTERVAL calls
    at = choice.calls
    used = drive(choice, 2, lambda n, i: 5.0 if n == 4 else 2.0)   # one stall on all threads ...
    assert used == [4, 1] and choice.calls == at + 2               # ... and the next call tries one


def test_set_num_threads_fixes_the_count_and_none_restores_the_choice(threads):
    x = fusegrad.tensor(np.random.default_rng(0).standard_normal(1 << 18).astype(np.float32))
    f = fusegrad.compile(lambda x: (x * 2).exp())
    threads(2)                                      # skips without libgomp
    assert runtime.num_threads_fixed()
    f(x)
    exe = f.traced_variants()[0].exe
    assert exe.thread_choice is not None            # the kernel is parallel
    f(x)
    assert exe.thread_choice.calls == 0             # a fixed count bypasses the chooser
    runtime.set_num_threads(None)
    if runtime.num_threads_fixed():
        pytest.skip("FUSEGRAD_NUM_THREADS is set: the default count is fixed too")
    results = {f(x).numpy().tobytes() for _ in range(12)}
    assert exe.thread_choice.calls == 12
    assert len(results) == 1                        # elementwise: the same values on 1 or 2 threads
    np.testing.assert_allclose(f(x).numpy(), np.exp(x.numpy() * 2), rtol=1e-6)


def test_set_num_threads_rejects_what_is_not_a_count():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="set_num_threads: expected a positive whole number"):
            runtime.set_num_threads(bad)
