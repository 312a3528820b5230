"""fusegrad.utils.data with worker processes (num_workers=2, fork): the same batches as in one
process, worker_init_fn and get_worker_info, per-worker seeding, IterableDataset sharding,
errors raised in workers, a worker that dies, timeouts, persistent workers, and shutdown.
Every dataset is tiny: a test costs little more than starting two forked processes."""
from __future__ import annotations

import gc
import itertools
import multiprocessing
import os
import pickle
import random
import signal
import sys
import time

import numpy as np
import pytest

import fusegrad as torch
from fusegrad.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset, get_worker_info
from fusegrad.utils.data.sampler import draw_seed
from fusegrad.utils.data.worker import compact, numpy_seed_state

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker tests fork (Linux)")


def _plain(batch):
    """A batch as plain Python values (tensors as (dtype, values)), for comparisons."""
    if isinstance(batch, torch.Tensor):
        return (batch.dtype.name, batch._host_values().tolist())
    if isinstance(batch, dict):
        return {k: _plain(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return [_plain(v) for v in batch]
    return batch


class Records(Dataset):
    """Samples that say which worker made them, and what it was seeded with."""

    def __init__(self, n=6):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        info = get_worker_info()
        return {"i": i, "pid": os.getpid(), "id": -1 if info is None else info.id,
                "seed": -1 if info is None else info.seed, "workers": 0 if info is None else info.num_workers,
                "init": INIT_MARK.get("value", -1), "rand": torch.rand(1).item(), "py": random.random()}


INIT_MARK: dict = {}


def _init(worker_id):
    INIT_MARK["value"] = 100 + worker_id


class Stream(IterableDataset):
    def __init__(self, n, shard):
        self.n, self.shard = n, shard

    def __iter__(self):
        info = get_worker_info()
        items = range(self.n)
        if self.shard and info is not None:     # each worker takes every num_workers-th item
            items = itertools.islice(items, info.id, None, info.num_workers)
        return iter(items)


class Labelled(Dataset):
    def __len__(self):
        return 9

    def __getitem__(self, i):
        return {"x": np.arange(3, dtype=np.float32) * i, "i": i, "name": f"s{i}", "pair": (i % 2 == 0, i / 4)}


class Failing(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5:
            raise ValueError(f"sample {i} is broken")
        return i


class Dying(Dataset):
    def __init__(self, how):
        self.how = how

    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5:
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            os._exit(3)
        return i


class Slow(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        time.sleep(0.4)
        return i


def test_two_workers_give_the_same_batches_as_one_process():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((25, 3)).astype(np.float32))
    y = torch.tensor(rng.integers(0, 9, 25))
    h = torch.tensor(rng.standard_normal((25, 2)), dtype=torch.bfloat16)
    for ds, kw, n in [(TensorDataset(x, y, h), dict(batch_size=4, shuffle=True), 7),
                      (Labelled(), dict(batch_size=2, shuffle=True, drop_last=True), 4)]:
        runs = []
        for workers in (0, 2):
            torch.manual_seed(3)
            runs.append([_plain(b) for b in DataLoader(ds, num_workers=workers, **kw)])
        assert runs[0] == runs[1] and len(runs[0]) == n
    bf = [b[2] for b in DataLoader(TensorDataset(x, y, h), batch_size=10, num_workers=2)]
    assert [b.dtype for b in bf] == [torch.bfloat16] * 3
    np.testing.assert_array_equal(np.concatenate([b._view_array() for b in bf]), h._realize()._view_array())


def test_worker_init_fn_worker_info_and_seeding():
    torch.manual_seed(7)
    batches = list(DataLoader(Records(6), batch_size=2, num_workers=2, worker_init_fn=_init))
    samples = [{k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in b.items()} for b in batches]
    rows = [{k: s[k][j] for k in s} for s in samples for j in range(2)]
    assert [r["i"] for r in rows] == list(range(6))
    assert [r["id"] for r in rows] == [0, 0, 1, 1, 0, 0]            # batches go to the workers round-robin
    assert {r["workers"] for r in rows} == {2} and all(r["pid"] != os.getpid() for r in rows)
    assert [r["init"] for r in rows] == [100 + r["id"] for r in rows]
    base = rows[0]["seed"]
    assert [r["seed"] for r in rows] == [base + r["id"] for r in rows]
    # base_seed is the first draw from the main process's generator
    torch.manual_seed(7)
    assert draw_seed() == base
    # each worker's generators are seeded with base_seed + id: the values are those seeds' first draws
    torch.manual_seed(base + 1)
    assert rows[2]["rand"] == torch.rand(1).item() and rows[2]["rand"] != rows[0]["rand"]
    assert rows[2]["py"] == random.Random(base + 1).random()
    assert get_worker_info() is None
    torch.manual_seed(7)          # the same seed: the same worker values
    again = list(DataLoader(Records(6), batch_size=2, num_workers=2, worker_init_fn=_init))
    assert [b["rand"].tolist() for b in again] == [s["rand"] for s in samples]


def test_numpy_seed_state_is_pytorchs():
    pytest.importorskip("torch", reason="PyTorch (optional) is the oracle for the numpy seed words")
    from torch.utils.data._utils.worker import _generate_state
    for base, wid in [(0, 0), (12345, 1), (2**62 + 17, 3)]:
        assert numpy_seed_state(base, wid) == _generate_state(base, wid)


def test_iterable_dataset_in_workers_sharded_with_get_worker_info():
    sharded = [b.tolist() for b in DataLoader(Stream(10, shard=True), batch_size=3, num_workers=2)]
    assert sorted(i for b in sharded for i in b) == list(range(10))         # each item exactly once
    assert sharded == [[0, 2, 4], [1, 3, 5], [6, 8], [7, 9]]
    copies = [i for b in DataLoader(Stream(5, shard=False), batch_size=2, num_workers=2) for i in b.tolist()]
    assert sorted(copies) == sorted(list(range(5)) * 2)                     # unsharded: one copy per worker


def test_a_worker_exception_is_raised_with_its_traceback():
    with pytest.raises(ValueError) as err:
        list(DataLoader(Failing(), batch_size=2, num_workers=2))
    text = str(err.value)
    assert text.startswith("Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most recent "
                           "call last):")
    assert 'raise ValueError(f"sample {i} is broken")' in text and text.rstrip().endswith("sample 5 is broken")


def test_a_result_or_an_exception_that_cannot_be_pickled_is_an_error_not_a_hang():
    loader = DataLoader(range(4), batch_size=2, num_workers=2, timeout=10,
                        collate_fn=lambda batch: (lambda: batch))
    it = iter(loader)
    with pytest.raises(Exception, match="in DataLoader worker process 0") as err:
        next(it)
    assert "pickle" in str(err.value)
    it._shutdown_workers()

    class LocalError(Exception):          # a class pickle cannot find by name
        pass

    def fail(batch):
        raise LocalError("from a local class")
    it = iter(DataLoader(range(4), batch_size=2, num_workers=2, timeout=10, collate_fn=fail))
    with pytest.raises(RuntimeError, match="^Caught LocalError in DataLoader worker process 0.") as err:
        next(it)
    assert str(err.value).rstrip().endswith("LocalError: from a local class")
    it._shutdown_workers()


@pytest.mark.parametrize("how", ["kill", "exit"])
def test_a_worker_that_dies_is_an_error_not_a_hang(how):
    it = iter(DataLoader(Dying(how), batch_size=2, num_workers=2, timeout=20))
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid\(s\) \d+\) exited unexpectedly"):
        list(it)
    assert time.perf_counter() - start < 2.0
    assert not any(w.is_alive() for w in it._workers)
    assert sorted(w.exitcode for w in it._workers) == sorted([0, -signal.SIGKILL if how == "kill" else 3])


def test_timeout():
    it = iter(DataLoader(Slow(), num_workers=2, timeout=0.1))
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"^DataLoader timed out after 0.1 seconds$"):
        next(it)
    assert time.perf_counter() - start < 2.0
    workers = it._workers
    del it                                   # shutting down joins the workers
    assert not any(w.is_alive() for w in workers)


def test_persistent_workers_serve_two_epochs_and_resume_after_a_partial_one():
    loader = DataLoader(Records(6), batch_size=2, num_workers=2, persistent_workers=True)
    first = [(b["i"].tolist(), b["pid"].tolist()) for b in loader]
    it = iter(loader)
    second = [(b["i"].tolist(), b["pid"].tolist()) for b in it]
    assert it is loader._iterator and [i for i, _ in first] == [i for i, _ in second] == [[0, 1], [2, 3], [4, 5]]
    assert {p for _, pids in first for p in pids} == {p for _, pids in second for p in pids}     # the same 2 workers
    workers = it._workers
    assert len({w.pid for w in workers}) == 2 and all(w.is_alive() for w in workers)
    next(iter(loader))                      # a partial epoch, then a whole one
    assert [b["i"].tolist() for b in loader] == [[0, 1], [2, 3], [4, 5]]
    loader._iterator._shutdown_workers()
    assert not any(w.is_alive() for w in workers)


def test_workers_end_when_the_iterator_is_exhausted_or_deleted():
    it = iter(DataLoader(range(6), batch_size=2, num_workers=2))
    assert [b.tolist() for b in it] == [[0, 1], [2, 3], [4, 5]]
    assert [w.exitcode for w in it._workers] == [0, 0]                 # joined: no zombies left
    it = iter(DataLoader(range(60), batch_size=2, num_workers=2))
    next(it)
    workers = it._workers
    del it
    assert not any(w.is_alive() for w in workers)
    assert not {w.pid for w in workers} & {p.pid for p in multiprocessing.active_children()}
    it = iter(DataLoader(range(60), batch_size=2, num_workers=2))
    next(it)
    workers = it._workers
    it.cycle = it                            # only the garbage collector frees it
    del it
    gc.collect()
    assert not any(w.is_alive() for w in workers)


def test_in_order_false_yields_every_batch_and_a_given_context_is_used():
    started = []

    class Context(type(multiprocessing.get_context("fork"))):
        def Process(self, *args, **kwargs):            # noqa: N802  (multiprocessing's name)
            p = multiprocessing.get_context("fork").Process(*args, **kwargs)
            started.append(p)
            return p
    got = [b.tolist() for b in DataLoader(range(10), batch_size=3, num_workers=2, in_order=False,
                                          multiprocessing_context=Context())]
    assert sorted(i for b in got for i in b) == list(range(10)) and len(got) == 4 and len(started) == 2
    with pytest.raises(ValueError, match="multiprocessing_context option should specify a valid start method"):
        DataLoader(range(3), num_workers=2, multiprocessing_context="nope")


class Computed(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.arange(3) * i + 1          # pending: computed (compiled) in the worker


def test_samples_computed_in_workers():
    got = [b.tolist() for b in DataLoader(Computed(), batch_size=2, num_workers=2, collate_fn=lambda b: b[0] + b[1])]
    assert got == [[2, 3, 4], [2, 7, 12]]          # each batch's sum, computed lazily and sent back


def test_samples_that_view_a_dataset_tensor_travel_as_their_own_values():
    x = torch.arange(400.0).reshape(100, 4)
    h = torch.tensor(np.linspace(-3, 3, 200).reshape(100, 2), dtype=torch.bfloat16)
    got = list(DataLoader(TensorDataset(x, h), batch_size=None, num_workers=2))    # rows: views of x and h
    assert [r[0].tolist() for r in got] == x.tolist() and all(r[1].dtype is torch.bfloat16 for r in got)
    np.testing.assert_array_equal(np.stack([r[1]._view_array() for r in got]), h._realize()._view_array())
    sample = (x[3], {"h": h[1:3], "n": 5}, [x])
    out = compact(sample)
    assert out[0].tolist() == [12.0, 13.0, 14.0, 15.0] and out[0]._storage.node.numel == 4
    assert out[1]["h"].dtype is torch.bfloat16 and out[1]["n"] == 5 and out[2][0] is x     # a whole tensor stays
    np.testing.assert_array_equal(out[1]["h"]._view_array(), h._realize()._view_array()[1:3])
    assert len(pickle.dumps(out[0])) * 5 < len(pickle.dumps(x[3]))       # not the whole storage
