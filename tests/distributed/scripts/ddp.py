"""DistributedDataParallel training checks (run under mpiexec -n 2; any world size dividing 64).

The digits MLP (Linear(64, 64)-ReLU-Linear(64, 10), cross-entropy) trains for 20 steps of 64
samples, each rank taking its contiguous share of every batch. Every rank also trains, alone,
a copy of the model on the whole batches (started from the parameters DDP broadcast from
rank 0) and checks that DDP's parameters (1) are bit-identical on every rank and (2) equal the
single-process ones within float32 tolerance. Cases (SGD with momentum throughout, so the
cases share compiled programs): small buckets, gradient accumulation under `no_sync` (one
bucket), unused parameters, and the compiled step (skipped with its reason when the compiled
all_reduce is not there). Results as in collectives.py.
"""
from __future__ import annotations

import copy
import os
import time
import traceback
from datetime import timedelta

import numpy as np
from digits import load_digits
from report import report

import fusegrad
import fusegrad.distributed as dist
from fusegrad import nn, optim
from fusegrad.nn.parallel import DistributedDataParallel as DDP

try:
    from fusegrad.distributed import traced
    from fusegrad.runtime import hostcalls
except ImportError:
    traced = None

RESULTS: list[str] = []
STEPS, BATCH = 20, 64
RTOL, ATOL = 1e-5, 1e-6


def check(name: str):
    def run(fn):
        try:
            start = time.perf_counter()
            skipped = fn()
            if os.environ.get("DDP_TIMES"):
                print(name, time.perf_counter() - start, flush=True)
            RESULTS.append(f"rank {RANK} SKIP {name}: {skipped}" if skipped else f"rank {RANK} PASS {name}")
        except Exception:           # noqa: BLE001 - reported as a FAIL line with its traceback
            detail = traceback.format_exc().strip().replace("\n", " | ")
            RESULTS.append(f"rank {RANK} FAIL {name}: {detail}")
        return fn
    return run


dist.init_process_group("mpi", timeout=timedelta(seconds=30))    # a failing check must not hang the test
RANK, WORLD = dist.get_rank(), dist.get_world_size()
X, Y = load_digits()
ORDER = np.random.default_rng(0).permutation(len(X))
BATCHES = [ORDER[i * BATCH:(i + 1) * BATCH] for i in range(STEPS * 2)]
criterion = nn.CrossEntropyLoss()


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def mine(idx: np.ndarray) -> np.ndarray:
    per = len(idx) // WORLD
    return idx[RANK * per:(RANK + 1) * per]


def batch(idx: np.ndarray):
    return fusegrad.tensor(X[idx]), fusegrad.tensor(Y[idx])


def flat_params(model: nn.Module) -> np.ndarray:
    return np.concatenate([p.detach().numpy().reshape(-1) for p in model.parameters()])


def identical_on_every_rank(values: np.ndarray) -> None:
    t = fusegrad.tensor(values)
    rows = fusegrad.zeros(WORLD, *values.shape, dtype=t.dtype)
    dist.all_gather_into_tensor(rows, t)
    got = rows.numpy()
    for r in range(WORLD):
        assert np.array_equal(got[r], got[0]), f"rank {r} differs from rank 0: max |diff| " \
            f"{np.abs(got[r] - got[0]).max()}"


def close(ddp_model: nn.Module, ref: nn.Module) -> None:
    a, b = flat_params(ddp_model), flat_params(ref)
    assert np.allclose(a, b, rtol=RTOL, atol=ATOL), f"max |diff| {np.abs(a - b).max()}"


def new_models(seed: int, **ddp_args):
    """A DDP model (initialized differently on each rank, then rank 0's everywhere) and a
    single-process reference copy of rank 0's parameters."""
    fusegrad.manual_seed(seed + 1000 * RANK)
    model = mlp()
    ddp = DDP(model, **ddp_args)
    ref = copy.deepcopy(model)
    return ddp, ref


def SGD(params):
    return optim.SGD(params, lr=0.1, momentum=0.9)


def train_eager(ddp, ref, make_opt, steps: int = STEPS) -> None:
    opt, ref_opt = make_opt(ddp.parameters()), make_opt(ref.parameters())
    for i in range(steps):
        x, y = batch(mine(BATCHES[i]))
        opt.zero_grad()
        criterion(ddp(x), y).backward()
        opt.step()
        x, y = batch(BATCHES[i])
        ref_opt.zero_grad()
        criterion(ref(x), y).backward()
        ref_opt.step()


def _rank0_model(seed: int) -> nn.Module:
    fusegrad.manual_seed(seed)
    return mlp()


@check("broadcast_at_construction")
def _construction():
    fusegrad.manual_seed(7 + RANK)
    model = mlp()
    assert RANK == 0 or not np.array_equal(flat_params(model), flat_params(_rank0_model(7)))
    DDP(model)
    identical_on_every_rank(flat_params(model))
    assert np.array_equal(flat_params(model), flat_params(_rank0_model(7)))


@check("sgd_momentum_buckets")
def _sgd():
    ddp, ref = new_models(1, bucket_cap_mb=0.002)     # 2 KiB buckets: one per parameter, one Allreduce each
    assert [len(b) for b in ddp._buckets] == [1, 1, 1, 1]
    train_eager(ddp, ref, SGD)
    identical_on_every_rank(flat_params(ddp.module))
    close(ddp.module, ref)


@check("no_sync_accumulation")
def _no_sync():
    ddp, ref = new_models(3)                          # 25 MB buckets: one for the whole model
    assert len(ddp._buckets) == 1
    opt, ref_opt = SGD(ddp.parameters()), SGD(ref.parameters())
    for i in range(0, 2 * (STEPS // 2), 2):
        opt.zero_grad()
        with ddp.no_sync():
            x, y = batch(mine(BATCHES[i]))
            criterion(ddp(x), y).backward()
        local = np.concatenate([p.grad.numpy().reshape(-1) for p in ddp.parameters()])
        try:
            identical_on_every_rank(local)
            raise AssertionError("gradients were averaged inside no_sync")
        except AssertionError as e:
            if "inside no_sync" in str(e):
                raise
        x, y = batch(mine(BATCHES[i + 1]))
        criterion(ddp(x), y).backward()          # outside: averages both micro-batches' gradients
        opt.step()
        ref_opt.zero_grad()
        for j in (i, i + 1):
            x, y = batch(BATCHES[j])
            criterion(ref(x), y).backward()
        ref_opt.step()
    identical_on_every_rank(flat_params(ddp.module))
    close(ddp.module, ref)


@check("unused_parameters")
def _unused():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.spare = mlp(), nn.Linear(3, 3)

        def forward(self, x):
            return self.body(x)

    fusegrad.manual_seed(4)
    x, y = batch(mine(BATCHES[0]))
    strict = DDP(Net())
    try:
        criterion(strict(x), y).backward()
        raise AssertionError("a parameter without a gradient did not raise")
    except RuntimeError as e:
        assert "find_unused_parameters=True" in str(e) and "spare.weight" in str(e), e
    lenient = DDP(Net(), find_unused_parameters=True)
    criterion(lenient(x), y).backward()
    assert lenient.module.spare.weight.grad is None
    identical_on_every_rank(lenient.module.body[0].weight.grad.numpy())


@check("compiled_step")
def _compiled():
    if traced is None:
        return "fusegrad.distributed.traced (the compiled all_reduce) is not in this checkout"
    if hostcalls.registered_all_reduce() is None:
        return "init_process_group does not install the compiled all_reduce's host call yet"
    ddp, ref = new_models(5)
    opt, ref_opt = SGD(ddp.parameters()), SGD(ref.parameters())

    @fusegrad.compile
    def step(x, y):
        opt.zero_grad()
        loss = criterion(ddp(x), y)
        loss.backward()
        opt.step()
        return loss

    for i in range(STEPS):
        step(*batch(mine(BATCHES[i])))
        x, y = batch(BATCHES[i])
        ref_opt.zero_grad()
        criterion(ref(x), y).backward()
        ref_opt.step()
    assert step.stats["traces"] <= 2 and step.stats["replays"] >= STEPS - 2, step.stats     # replayed natively
    graph = step.lower(*batch(mine(BATCHES[0]))).text("graph")
    assert graph.count("all_reduce") == 1, "one bucket: one all_reduce node in the compiled step"
    identical_on_every_rank(flat_params(ddp.module))
    close(ddp.module, ref)
    return None


report(RESULTS, RANK)
