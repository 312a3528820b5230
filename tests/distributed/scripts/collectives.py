"""Every collective of fusegrad.distributed against numpy, on each rank (run under mpiexec -n 2+).

Rank r's data is a function of r, so every rank computes the expected result of each collective
with numpy and compares exactly. Writes `rank R PASS name` or `rank R FAIL name: why` per check
(to the folder given as the first argument, one file per rank, else to stdout); the tests in
tests/distributed/test_distributed.py read them.
"""
from __future__ import annotations

from datetime import timedelta

import numpy as np
from report import checker, report

import fusegrad
import fusegrad.distributed as dist
from fusegrad.compiler.ir import dtypes as irdt

RESULTS: list[str] = []


check = checker(RESULTS, lambda: RANK)


def data(r: int, shape=(3, 4), dtype=np.float32) -> np.ndarray:
    """Rank r's values: distinct per rank and element, exactly representable."""
    n = int(np.prod(shape))
    return ((np.arange(n) % 7 - 3) * (r + 1) + 0.5 * r).astype(dtype).reshape(shape)


def same(got, want) -> None:
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert np.array_equal(got, want), f"\n{got}\n!=\n{want}"


dist.init_process_group("mpi", timeout=timedelta(seconds=30))    # a failing check must not hang the test
RANK, WORLD = dist.get_rank(), dist.get_world_size()
ALL = [data(r) for r in range(WORLD)]


@check("init")
def _init():
    from mpi4py import MPI
    assert dist.is_available() and dist.is_initialized()
    assert (RANK, WORLD) == (MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size())
    assert WORLD >= 2, "run with mpiexec -n 2 or more"
    try:
        dist.init_process_group("mpi")
        raise AssertionError("a second init_process_group did not raise")
    except ValueError as e:
        assert "twice" in str(e)


REFS = {"SUM": lambda xs: np.sum(xs, axis=0, dtype=xs[0].dtype),
        "MAX": lambda xs: np.max(xs, axis=0), "MIN": lambda xs: np.min(xs, axis=0),
        "PRODUCT": lambda xs: np.prod(xs, axis=0, dtype=xs[0].dtype)}


def _fold(op, xs):
    """The reduction as MPI computes it for these ranks: rank order, one dtype (exact here: small values)."""
    return REFS[op](np.stack(xs))


for _op in ("SUM", "MAX", "MIN", "PRODUCT"):
    @check(f"all_reduce_{_op.lower()}_float32")
    def _all_reduce(op=_op):
        t = fusegrad.tensor(ALL[RANK])
        dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
        same(t.numpy(), _fold(op, ALL))


@check("all_reduce_avg")
def _avg():
    t = fusegrad.tensor(ALL[RANK].astype(np.float64))
    dist.all_reduce(t, op=dist.ReduceOp.AVG)
    same(t.numpy(), np.sum(np.stack(ALL).astype(np.float64), axis=0) / WORLD)


@check("all_reduce_int64_bool")
def _ints():
    t = fusegrad.tensor(np.arange(5, dtype=np.int64) * (RANK + 1))
    dist.all_reduce(t)
    same(t.numpy(), np.arange(5, dtype=np.int64) * sum(r + 1 for r in range(WORLD)))
    b = fusegrad.tensor(np.array([RANK == 0, False, True]))
    dist.all_reduce(b)                        # SUM of bools: any
    same(b.numpy(), np.array([True, False, True]))
    b = fusegrad.tensor(np.array([RANK == 0, True]))
    dist.all_reduce(b, op=dist.ReduceOp.MIN)  # all
    same(b.numpy(), np.array([False, True]))
    try:
        dist.all_reduce(fusegrad.tensor([1, 2]), op=dist.ReduceOp.AVG)
        raise AssertionError("AVG of an int tensor did not raise")
    except TypeError as e:
        assert "floating-point" in str(e)


@check("all_reduce_16bit")
def _half():
    for dt in (fusegrad.bfloat16, fusegrad.float16):
        t = fusegrad.tensor(ALL[RANK] / 3).to(dt)
        dist.all_reduce(t)
        ird = irdt.from_name(dt.name)
        want = sum(irdt.round_to(ALL[r] / 3, ird).astype(np.float32) for r in range(WORLD))
        same(t.float().numpy(), irdt.round_to(want, ird).astype(np.float32))


@check("all_reduce_in_place_zero_copy")
def _zero_copy():
    t = fusegrad.tensor(ALL[RANK]) * 1        # pending: realized by the collective
    dist.all_reduce(t)
    buf = t._storage.buffer
    address = buf.ctypes.data
    dist.all_reduce(t)                        # into the same memory: no copy of the tensor
    assert t._storage.buffer is buf and buf.ctypes.data == address
    same(buf, _fold("SUM", ALL) * WORLD)
    same(t.numpy(), _fold("SUM", ALL) * WORLD)


@check("all_reduce_version_and_pending_readers")
def _pending():
    t = fusegrad.tensor(ALL[RANK])
    t.numpy()                                 # realized
    doubled = t * 2                           # pending: reads t's value before the collective
    v = t._version if hasattr(t, "_version") else t._storage.version
    dist.all_reduce(t)
    assert t._storage.version == v + 1
    same(doubled.numpy(), ALL[RANK] * 2)      # as PyTorch: computed from the old value
    same(t.numpy(), _fold("SUM", ALL))
    same((t * 2).numpy(), _fold("SUM", ALL) * 2)
    w = fusegrad.ones(3, 4, requires_grad=True)
    x = fusegrad.tensor(ALL[RANK])
    x.numpy()
    loss = (w * x).sum()                      # autograd saves x's value for w's gradient
    dist.all_reduce(x)
    loss.backward()
    same(w.grad.numpy(), ALL[RANK])           # the saved value, not the reduced one


@check("all_reduce_noncontiguous_view")
def _view():
    base = fusegrad.tensor(ALL[RANK])
    col = base[:, 1]                          # strided view: reduced through a contiguous copy, written back
    dist.all_reduce(col)
    want = ALL[RANK].copy()
    want[:, 1] = _fold("SUM", ALL)[:, 1]
    same(base.numpy(), want)
    tr = fusegrad.tensor(ALL[RANK]).t()
    dist.all_reduce(tr, op=dist.ReduceOp.MAX)
    same(tr.numpy(), _fold("MAX", ALL).T)
    row = fusegrad.tensor(ALL[RANK])
    part = row[1]                             # a contiguous view: in the storage's memory
    dist.all_reduce(part)
    want = ALL[RANK].copy()
    want[1] = _fold("SUM", ALL)[1]
    same(row.numpy(), want)
    try:
        dist.all_reduce(fusegrad.ones(3)[None].expand(2, 3))
        raise AssertionError("all_reduce of an expanded view did not raise")
    except RuntimeError as e:
        assert "single memory location" in str(e)


@check("all_reduce_async")
def _async():
    t = fusegrad.tensor(ALL[RANK])
    work = dist.all_reduce(t, async_op=True)
    assert work is not None
    assert work.wait() is True and work.is_completed()
    same(t.numpy(), _fold("SUM", ALL))
    assert dist.all_reduce(fusegrad.ones(2)) is None


@check("all_reduce_coalesced")
def _coalesced():
    a, b = fusegrad.tensor(ALL[RANK]), fusegrad.tensor(ALL[RANK][0] * 4)
    dist.all_reduce_coalesced([a, b], op=dist.ReduceOp.AVG)
    same(a.numpy(), np.stack(ALL).sum(0) / WORLD)
    same(b.numpy(), np.stack([x[0] * 4 for x in ALL]).sum(0) / WORLD)


@check("broadcast")
def _broadcast():
    for src in range(WORLD):
        t = fusegrad.tensor(ALL[RANK])
        dist.broadcast(t, src=src)
        same(t.numpy(), ALL[src])
    b = fusegrad.tensor(ALL[RANK] / 7).to(fusegrad.bfloat16)
    dist.broadcast(b, src=WORLD - 1)
    same(b.float().numpy(), irdt.round_to(ALL[WORLD - 1] / 7, irdt.bfloat16).astype(np.float32))


@check("all_gather")
def _all_gather():
    outs = [fusegrad.zeros(3, 4) for _ in range(WORLD)]
    dist.all_gather(outs, fusegrad.tensor(ALL[RANK]))
    for r in range(WORLD):
        same(outs[r].numpy(), ALL[r])
    big = fusegrad.zeros(4, 3 * WORLD)          # outputs that are strided views of one tensor
    views = [big[:, 3 * r:3 * r + 3] for r in range(WORLD)]
    dist.all_gather(views, fusegrad.tensor(ALL[RANK]).t())
    same(big.numpy(), np.concatenate([a.T for a in ALL], axis=1))


@check("all_gather_into_tensor")
def _all_gather_into():
    out = fusegrad.zeros(3 * WORLD, 4)
    dist.all_gather_into_tensor(out, fusegrad.tensor(ALL[RANK]))
    same(out.numpy(), np.concatenate(ALL))
    stacked = fusegrad.zeros(WORLD, 3, 4)
    dist.all_gather_into_tensor(stacked, fusegrad.tensor(ALL[RANK]))
    same(stacked.numpy(), np.stack(ALL))


@check("reduce_scatter")
def _reduce_scatter():
    inputs = [fusegrad.tensor(ALL[RANK] + 10 * i) for i in range(WORLD)]
    out = fusegrad.zeros(3, 4)
    dist.reduce_scatter(out, inputs)
    same(out.numpy(), np.stack([ALL[r] + 10 * RANK for r in range(WORLD)]).sum(0).astype(np.float32))


@check("reduce_scatter_tensor")
def _reduce_scatter_tensor():
    inp = fusegrad.tensor(np.concatenate([ALL[RANK] * (i + 1) for i in range(WORLD)]))
    out = fusegrad.zeros(3, 4)
    dist.reduce_scatter_tensor(out, inp, op=dist.ReduceOp.AVG)
    same(out.numpy(), (np.stack([ALL[r] * (RANK + 1) for r in range(WORLD)]).sum(0) / WORLD).astype(np.float32))


@check("barrier")
def _barrier():
    assert dist.barrier() is None
    dist.barrier(async_op=True).wait()


@check("sampler_default_group")
def _sampler():
    from fusegrad.utils.data.distributed import DistributedSampler
    s = DistributedSampler(range(11), shuffle=True, seed=3)
    mine = np.array(list(s), np.int64)
    gathered = fusegrad.zeros(WORLD * len(s), dtype=fusegrad.int64)
    dist.all_gather_into_tensor(gathered, fusegrad.tensor(mine))
    every = gathered.numpy()
    assert sorted(set(every.tolist())) == list(range(11)) and len(every) == WORLD * -(-11 // WORLD)


@check("destroy")
def _destroy():
    dist.destroy_process_group()
    assert not dist.is_initialized()
    try:
        dist.all_reduce(fusegrad.ones(2))
        raise AssertionError("all_reduce after destroy_process_group did not raise")
    except ValueError as e:
        assert "has not been initialized" in str(e)


report(RESULTS, RANK)
