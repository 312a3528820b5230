"""DataLoader worker processes: the loop each worker runs, `get_worker_info`, and how results
and errors travel back to the main process (as PyTorch's `_utils/worker.py`).

A worker takes `(task index, batch indices)` from its own index queue, fetches and collates
the batch (fetch.py) and puts `(task index, batch)` on the result queue it shares with the
other workers. None on its index queue ends it; so does the main process's "done" event
while it waits for a task (the None can be lost: when the main process's iterator is
collected as part of a reference cycle, the index queue's own finalizer may have stopped its
feeder thread first), and so does the main process's death.

A worker seeds Python's `random`, numpy's global generator and fusegrad's default generator
from the main process's base seed plus its id, as PyTorch seeds its workers, and runs
fusegrad's kernels on one thread (as PyTorch sets `torch.set_num_threads(1)` in workers).
An exception type that cannot be pickled (a class defined in a function) comes back as a
RuntimeError with the same message.

An exception in a worker travels as an `ExceptionWrapper` (its type and formatted
traceback) and is raised again in the main process; a result that cannot be pickled becomes
such an error too (`ResultQueue`), rather than being lost in the queue's feeder thread.

Tensors cross the process boundary by pickling (serialization.py: a tensor pickles as its
realized storage and its place in it). A result's tensors that view part of a larger
storage, such as rows of a dataset tensor, are first copied out (`compact`), so that a
sample does not carry the whole dataset.
"""
from __future__ import annotations

import os
import queue
import random
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from multiprocessing.queues import Queue
from types import TracebackType
from typing import Any

import numpy as np

from ... import philox
from ...runtime import aligned_empty, set_num_threads
from ...tensor import Tensor
from .fetch import ITERABLE, IterableDatasetFetcher, MapDatasetFetcher, make_fetcher

__all__ = ["WorkerInfo", "get_worker_info"]

WORKER_POLL_S = 0.25       # how often an idle worker checks that the main process still runs and wants it


@dataclass(frozen=True)
class WorkerInfo:
    """What `get_worker_info()` tells code running in a worker: its `id` (0 .. num_workers-1),
    `num_workers`, the `seed` its generators were seeded with, and its copy of the `dataset`."""

    id: int
    num_workers: int
    seed: int
    dataset: Any


_worker_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """This worker's WorkerInfo inside a DataLoader worker process; None in the main process.
    An IterableDataset uses it to shard its stream between the workers."""
    return _worker_info


class KeyErrorMessage(str):
    """A KeyError's message printed as it is (KeyError prints the repr of its argument)."""

    def __repr__(self) -> str:
        return str(self)


class ExceptionWrapper:
    """An exception caught in a worker, as its type and formatted traceback (what pickles)."""

    def __init__(self, exc_info: tuple[type[BaseException], BaseException, TracebackType | None] | None = None,
                 where: str = "in background") -> None:
        if exc_info is None:
            exc_type, exc, tb = _current_exception()
        else:
            exc_type, exc, tb = exc_info
        self.exc_type: type[BaseException] = exc_type
        self.exc_name = exc_type.__name__
        self.exc_msg = "".join(traceback.format_exception(exc_type, exc, tb))
        self.where = where

    def reraise(self) -> None:
        """Raise the exception again here: 'Caught ValueError in DataLoader worker process 0.
        Original Traceback (most recent call last): ...'."""
        msg: str = f"Caught {self.exc_name} {self.where}.\nOriginal {self.exc_msg}"
        if self.exc_type is KeyError:
            msg = KeyErrorMessage(msg)
        elif getattr(self.exc_type, "message", None):
            raise self.exc_type(message=msg)  # type: ignore[call-arg]
        try:
            exception = self.exc_type(msg)
        except Exception:
            raise RuntimeError(msg) from None
        raise exception

    def without_type(self) -> ExceptionWrapper:
        """This error raised as a RuntimeError (for an exception type that cannot be pickled)."""
        out = object.__new__(ExceptionWrapper)
        out.__dict__.update(self.__dict__, exc_type=RuntimeError)
        return out


def _current_exception() -> tuple[type[BaseException], BaseException, TracebackType | None]:
    exc_type, exc, tb = sys.exc_info()
    assert exc_type is not None and exc is not None, "ExceptionWrapper() outside an except block"
    return exc_type, exc, tb


@dataclass(frozen=True)
class IterableDatasetStopIteration:
    """A worker's answer once its copy of an IterableDataset is exhausted."""

    worker_id: int


@dataclass(frozen=True)
class ResumeIteration:
    """Start a new epoch (persistent workers): the worker answers with itself as acknowledgment."""

    seed: int | None = None


class ResultQueue(Queue):
    """The workers' shared result queue. A multiprocessing Queue pickles in a feeder thread and
    only prints what fails there, which would leave the main process waiting forever for the
    result; this queue sends the failure back in the result's place."""

    def __init__(self, ctx: BaseContext) -> None:
        super().__init__(0, ctx=ctx)

    def _on_queue_feeder_error(self, e: Exception, obj: object) -> None:
        if not (isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], int)):
            traceback.print_exc()
            return
        task, data = obj
        if isinstance(data, ExceptionWrapper):      # the exception's own type does not pickle
            self.put((task, data.without_type()))
            return
        info = get_worker_info()
        where = f"in DataLoader worker process {info.id if info is not None else '?'}"
        self.put((task, ExceptionWrapper((type(e), e, e.__traceback__), where)))


class ManagerWatchdog:
    """Whether the process that started this worker still runs."""

    def __init__(self) -> None:
        self.manager_pid = os.getppid()
        self.manager_dead = False

    def is_alive(self) -> bool:
        if not self.manager_dead:
            self.manager_dead = os.getppid() != self.manager_pid
        return not self.manager_dead


def numpy_seed_state(base_seed: int, worker_id: int) -> list[int]:
    """The 4 words PyTorch seeds numpy's global generator with in worker `worker_id`
    (`_generate_state`: base seed and id mixed with SeedSequence's hash)."""
    init_a, mult_a, init_b, mult_b = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
    mix_mult_l, mix_mult_r, xshift, mask = 0xCA01F9DD, 0x4973F715, 16, 0xFFFFFFFF
    entropy = [worker_id, base_seed & mask, base_seed >> 32, 0]
    hash_const_a = init_a

    def hash_(value: int) -> int:
        nonlocal hash_const_a
        value = (value ^ hash_const_a) & mask
        hash_const_a = (hash_const_a * mult_a) & mask
        value = (value * hash_const_a) & mask
        return (value ^ (value >> xshift)) & mask

    def mix(x: int, y: int) -> int:
        result = (((mix_mult_l * x) & mask) - ((mix_mult_r * y) & mask)) & mask
        return (result ^ (result >> xshift)) & mask

    pool = [hash_(e) for e in entropy]
    for i_src in range(4):
        for i_dst in range(4):
            if i_src != i_dst:
                pool[i_dst] = mix(pool[i_dst], hash_(pool[i_src]))
    hash_const_b = init_b
    state = []
    for value in pool:
        value = (value ^ hash_const_b) & mask
        hash_const_b = (hash_const_b * mult_b) & mask
        value = (value * hash_const_b) & mask
        state.append((value ^ (value >> xshift)) & mask)
    return state


def worker_loop(kind: int, dataset: Any, index_queue: Queue, result_queue: Queue, done_event: Any,
                auto_collation: bool, collate_fn: Callable[[Any], Any], drop_last: bool, base_seed: int,
                init_fn: Callable[[int], None] | None, worker_id: int, num_workers: int,
                persistent_workers: bool) -> None:
    """The body of worker process `worker_id` (see the module's docstring)."""
    global _worker_info
    try:
        set_num_threads(1)
        seed = base_seed + worker_id
        random.seed(seed)
        philox.manual_seed(seed)
        np.random.seed(numpy_seed_state(base_seed, worker_id))
        _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed, dataset=dataset)
        where = f"in DataLoader worker process {worker_id}"
        init_exception: ExceptionWrapper | None = None
        fetcher: MapDatasetFetcher | IterableDatasetFetcher | None = None
        try:
            if init_fn is not None:
                init_fn(worker_id)
            fetcher = make_fetcher(kind, dataset, auto_collation, collate_fn, drop_last)
        except Exception:
            init_exception = ExceptionWrapper(where=where)
        iteration_end = False
        watchdog = ManagerWatchdog()
        while watchdog.is_alive():
            try:
                r = index_queue.get(timeout=WORKER_POLL_S)
            except queue.Empty:
                if done_event.is_set():     # shut down, though the None sent after it may never come
                    break
                continue
            if isinstance(r, ResumeIteration):
                result_queue.put((r, None))
                iteration_end = False
                fetcher = make_fetcher(kind, dataset, auto_collation, collate_fn, drop_last)
                continue
            if r is None:
                break
            if done_event.is_set() or iteration_end:
                continue       # shutting down, or the dataset is exhausted: drop the task
            task, index = r
            data: Any
            if init_exception is not None:
                data, init_exception = init_exception, None
            else:
                try:
                    assert fetcher is not None
                    data = fetcher.fetch(index)
                except Exception as e:
                    if isinstance(e, StopIteration) and kind == ITERABLE:
                        data = IterableDatasetStopIteration(worker_id)
                        iteration_end = True
                    else:
                        data = ExceptionWrapper(where=where)
            result_queue.put((task, compact(data)))
            del data, task, index, r
    except KeyboardInterrupt:     # the main process gets the Ctrl-C too and shuts the workers down
        pass
    if done_event.is_set():
        result_queue.cancel_join_thread()
        result_queue.close()


# ---------------------------------------------------------------- tensors across processes

def compact(data: Any) -> Any:
    """`data` with each tensor that views part of a larger storage replaced by a copy of its
    own elements, inside the containers a collate function builds (list, tuple, namedtuple,
    dict; other objects pass as they are). A pickled tensor carries its whole storage (as
    PyTorch's `torch.save`), and a sample that is one row of a dataset tensor would carry the
    whole dataset; PyTorch's workers send the storage through shared memory instead."""
    if isinstance(data, Tensor):
        return _compact_tensor(data)
    kind = type(data)
    if kind is dict:
        return {k: compact(v) for k, v in data.items()}
    if kind is list or kind is tuple:
        return kind(compact(v) for v in data)
    if isinstance(data, tuple) and hasattr(data, "_fields"):     # namedtuple
        return kind(*(compact(v) for v in data))
    return data


def _compact_tensor(t: Tensor) -> Tensor:
    if t._base is None or t.requires_grad or t.device.type != "cpu" or t.numel() >= t._storage.node.numel:
        return t
    values = t._realize()._view_array()         # a bfloat16 tensor's bit patterns
    out = aligned_empty(values.shape, values.dtype)
    out[...] = values
    return Tensor._from_array(out, dtype=t.dtype)
