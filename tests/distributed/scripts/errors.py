"""fusegrad.distributed's errors (run under mpiexec -n 2): clear messages instead of hangs.

In order: collectives before init_process_group (PyTorch's message, mpi4py not even imported);
init arguments that contradict MPI; calls that disagree across ranks (shapes, dtypes, which
collective, a DDP model of another shape): every rank raises, naming what each rank called, and
the group stays usable; then rank 1 exits early and rank 0's next collective fails with
DistBackendError once the group's timeout (TIMEOUT s) has passed, rather than hanging. Results as
in collectives.py; rank 0 also reports how long the failing collective took (`elapsed`).
"""
from __future__ import annotations

import os
import sys
import time
from datetime import timedelta

from report import checker, report

import fusegrad
import fusegrad.distributed as dist
from fusegrad import nn
from fusegrad.nn.parallel import DistributedDataParallel as DDP

TIMEOUT = 1.0
RESULTS: list[str] = []
RANK = int(os.environ.get("PMI_RANK", "-1"))       # MPI's, before init_process_group (only to label lines)


check = checker(RESULTS, lambda: RANK)


def raises(exc: type, *needles: str):
    """Run fn, which must raise `exc` with every needle in its message; returns the message."""
    def run(fn):
        try:
            fn()
        except exc as e:
            text = str(e)
            missing = [n for n in needles if n not in text]
            assert not missing, f"{missing} not in {text!r}"
            return text
        raise AssertionError(f"no {exc.__name__} raised")
    return run


@check("before_init")
def _before_init():
    assert "mpi4py.MPI" not in sys.modules, "importing fusegrad.distributed started MPI"
    assert dist.is_available() and not dist.is_initialized()
    msg = "Default process group has not been initialized, please make sure to call init_process_group."
    for call in (lambda: dist.all_reduce(fusegrad.ones(2)), lambda: dist.broadcast(fusegrad.ones(2), 0),
                 dist.barrier, dist.get_rank, dist.get_world_size, lambda: DDP(nn.Linear(2, 2))):
        raises(ValueError, msg)(call)
    raises(ValueError, msg, "(at errors.py:")(lambda: dist.all_reduce(fusegrad.ones(2)))     # the user's line


@check("init_arguments")
def _init_arguments():
    raises(ValueError, "'mpi' backend only", "nccl", "(at errors.py:")(lambda: dist.init_process_group("nccl"))
    raises(ValueError, "rank=5", "MPI says rank=")(lambda: dist.init_process_group("mpi", rank=5))
    raises(ValueError, "world_size=9")(lambda: dist.init_process_group(world_size=9))
    os.environ["WORLD_SIZE"] = "7"
    try:
        raises(ValueError, "environment variable WORLD_SIZE")(lambda: dist.init_process_group(init_method="env://"))
    finally:
        del os.environ["WORLD_SIZE"]
    assert not dist.is_initialized()


dist.init_process_group("mpi", init_method="env://", timeout=timedelta(seconds=TIMEOUT))
RANK, WORLD = dist.get_rank(), dist.get_world_size()
for i, line in enumerate(RESULTS):
    RESULTS[i] = line.replace("rank -1 ", f"rank {RANK} ")


@check("mismatched_shapes")
def _shapes():
    text = raises(RuntimeError, "Detected mismatch between collectives on ranks", "all_reduce(shape=[3]",
                  "all_reduce(shape=[4]")(lambda: dist.all_reduce(fusegrad.ones(3 + RANK)))
    assert f"Rank {RANK} is running collective" in text
    raises(RuntimeError, "dtype=float32", "dtype=float64")(
        lambda: dist.all_reduce(fusegrad.ones(3, dtype=fusegrad.float32 if RANK == 0 else fusegrad.float64)))
    raises(RuntimeError, "barrier()", "broadcast(")(
        lambda: dist.barrier() if RANK == 0 else dist.broadcast(fusegrad.ones(2), 0))
    t = fusegrad.ones(4)
    dist.all_reduce(t)                        # the group is still usable
    assert t.tolist() == [WORLD] * 4


@check("mismatched_ddp_models")
def _ddp_models():
    model = nn.Linear(4, 3 if RANK == 0 else 5)
    raises(RuntimeError, "broadcast(shape=[3, 4]", "broadcast(shape=[5, 4]")(lambda: DDP(model))


@check("timeout_when_a_rank_exits")
def _timeout():
    if RANK != 0:
        return
    t = fusegrad.ones(8)
    start = time.monotonic()
    text = raises(dist.DistBackendError, "all_reduce timed out after 0:00:01", "did not join")(
        lambda: dist.all_reduce(t))
    elapsed = time.monotonic() - start
    RESULTS.append(f"rank {RANK} elapsed {elapsed:.3f}")
    assert TIMEOUT <= elapsed < TIMEOUT + 2, elapsed
    assert isinstance(dist.DistBackendError(text), RuntimeError)
    start = time.monotonic()
    raises(dist.DistBackendError, "unusable")(dist.barrier)       # at once, not after another timeout
    assert time.monotonic() - start < 0.5


report(RESULTS, RANK)         # rank 1 leaves here (exits normally) while rank 0 waits in all_reduce
