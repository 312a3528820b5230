"""A compiled program's all_reduce (a host call inside the native program) when a rank is gone
(run under mpiexec -n 2): first both ranks replay a compiled step whose all_reduce sums their
values; then programs whose all_reduce differs across ranks fail on both with the signature
check's message, and the group stays usable; then rank 1 exits and rank 0's next replay fails
with an error naming the timeout (TIMEOUT s) instead of hanging inside the native call.
Results as in collectives.py.
"""
from __future__ import annotations

import os
import time
from datetime import timedelta

from report import checker, report

import fusegrad
import fusegrad.distributed as dist
from fusegrad.distributed.traced import all_reduce_lazy

TIMEOUT = 1.0
RESULTS: list[str] = []
RANK = int(os.environ.get("PMI_RANK", "-1"))



check = checker(RESULTS, lambda: RANK)


dist.init_process_group("mpi", timeout=timedelta(seconds=TIMEOUT))


@fusegrad.compile
def step(x):
    return all_reduce_lazy(x * 2, "sum")


@check("compiled_all_reduce_replays")
def _replays():
    for _ in range(3):
        assert step(fusegrad.full((4,), float(RANK + 1))).tolist() == [6.0] * 4      # 2*1 + 2*2
    assert step.stats["traces"] == 1


@check("compiled_all_reduce_mismatched_shapes")
def _mismatched():
    @fusegrad.compile
    def reduce(x):
        return all_reduce_lazy(x + 1, "sum")
    try:
        reduce(fusegrad.ones(3 + RANK))         # rank 0 reduces 3 elements, rank 1 four
    except RuntimeError as e:
        text = str(e)
    else:
        raise AssertionError("no error")
    for needle in ("Detected mismatch between collectives on ranks", "all_reduce(numel=3, dtype=float32, op=SUM)",
                   "all_reduce(numel=4, dtype=float32, op=SUM)", "failed in its host call"):
        assert needle in text, text
    assert step(fusegrad.full((4,), float(RANK + 1))).tolist() == [6.0] * 4      # the group is still usable


@check("compiled_all_reduce_times_out")
def _times_out():
    if RANK != 0:
        return
    time.sleep(0.2)                    # rank 1 is leaving
    start = time.monotonic()
    try:
        step(fusegrad.ones(4)).tolist()
    except RuntimeError as e:
        text = str(e)
    else:
        raise AssertionError("no error")
    elapsed = time.monotonic() - start
    assert "all_reduce (in a compiled program) timed out after 0:00:01" in text and "did not join" in text, text
    assert TIMEOUT <= elapsed < TIMEOUT + 2, elapsed


report(RESULTS, RANK)
