"""Process groups on MPI: `init_process_group`, the group registry and the deadline-bounded wait.

`init_process_group(backend="mpi")` takes the rank and the world size from MPI (mpi4py, the
optional extra `fusegrad[distributed]`: `pip install "fusegrad[distributed]"` brings the
`mpich` wheel; a cluster's own MPI works as well), so the program is started by an MPI
launcher: `mpirun -n 4 python train.py`, `srun`, or plain `python train.py` (one process).
PyTorch's rendezvous arguments are accepted and checked against MPI's answer: `rank=`,
`world_size=`, and with `init_method="env://"` (the default) the `RANK`/`WORLD_SIZE`
variables that torchrun sets, when set.

Ranks that share a machine share its CPUs: each runs its kernels on (CPUs / ranks on the
machine) threads, unless the count was fixed (FUSEGRAD_NUM_THREADS, set_num_threads).

The default group's communicator is a duplicate of `MPI.COMM_WORLD`, so a program's own MPI
traffic never mixes with fusegrad's. Groups are registered by id (0 is the default group,
PyTorch's `group.WORLD`): `communicator(group_id)` gives the mpi4py communicator, which is
how code that holds only an id (a host call in a compiled program) finds it.

Every MPI operation is started nonblocking and completed by `wait`, which polls the request
until the group's timeout (`init_process_group(timeout=timedelta(...))`, PyTorch's default
of 30 minutes) has passed, then raises `DistBackendError` naming the collective: a rank that
exited or is stuck elsewhere makes the others fail instead of hanging. After a timeout the
group is unusable (its collectives raise at once), as in PyTorch.

Before its data moves, every collective (a compiled program's all_reduce too) checks that all
ranks are calling the same thing (`check_signature`): each rank contributes a fixed-size record
(a digest of its call's description, then the description itself: collective, shapes, dtypes,
op, root) to one small nonblocking Allgather.
If the digests differ, every rank raises the same RuntimeError naming what each rank called,
instead of hanging in, or corrupting memory through, a collective whose sizes disagree. The
check costs a few microseconds (one 256-byte Allgather) and is done on every call, so that
ranks that diverge after many agreeing calls are caught too.

mpi4py is imported on first use only: importing mpi4py starts MPI, and fusegrad must import
(and `is_available()` answer False) where it is not installed.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from .. import runtime
from ..source import errors_at_user_line
from . import traced

if TYPE_CHECKING:
    from mpi4py import MPI as MPIModule

__all__ = ["DistBackendError", "ProcessGroup", "is_available", "is_mpi_available", "is_initialized",
           "init_process_group", "destroy_process_group", "get_rank", "get_world_size", "get_backend",
           "communicator", "default_group", "resolve", "wait", "DEFAULT_TIMEOUT", "WORLD"]

DEFAULT_TIMEOUT = timedelta(minutes=30)        # PyTorch's default_pg_timeout
WORLD = 0                                      # the default group's id
NOT_INITIALIZED = ("Default process group has not been initialized, please make sure to call "
                   "init_process_group.")
_SPIN_SECONDS = 1.0         # poll without sleeping this long (MPI progresses only inside MPI calls), then nap


class DistBackendError(RuntimeError):
    """A collective failed in the backend: it timed out (a rank did not join) or the group is broken."""


def is_mpi_available() -> bool:
    """Whether mpi4py is installed (looked up without importing it: importing starts MPI)."""
    return importlib.util.find_spec("mpi4py") is not None


def is_available() -> bool:
    """Whether fusegrad.distributed can run here: it needs mpi4py (`fusegrad[distributed]`)."""
    return is_mpi_available()


_MPI: list = []


def mpi() -> MPIModule:
    """The `mpi4py.MPI` module, imported (and MPI started) on first use."""
    if _MPI:
        return _MPI[0]
    if not is_mpi_available():
        raise RuntimeError("fusegrad.distributed needs mpi4py and an MPI library: pip install "
                           "'fusegrad[distributed]' (mpi4py and the mpich wheel), or mpi4py built against your "
                           "cluster's MPI")
    from mpi4py import MPI
    _MPI.append(MPI)
    return MPI


class ProcessGroup:
    """A set of ranks and their MPI communicator (PyTorch's ProcessGroup): `rank()`, `size()`."""

    def __init__(self, comm: Any, group_id: int, timeout: timedelta) -> None:
        self.comm = comm
        self.group_id = group_id
        self.timeout = timeout
        self.broken: str | None = None        # why the group can no longer be used (a timeout)
        self.scratch: dict[str, Any] = {}     # small buffers the checks reuse
        self._rank = int(comm.Get_rank())
        self._size = int(comm.Get_size())

    def rank(self) -> int:
        return self._rank

    def size(self) -> int:
        return self._size

    def name(self) -> str:
        return "mpi"

    def __repr__(self) -> str:
        return f"ProcessGroup(mpi, id={self.group_id}, rank={self._rank}, size={self._size})"


_GROUPS: dict[int, ProcessGroup] = {}


def is_initialized() -> bool:
    """Whether the default process group was initialized (and not destroyed)."""
    return WORLD in _GROUPS


def default_group() -> ProcessGroup:
    group = _GROUPS.get(WORLD)
    if group is None:
        raise ValueError(NOT_INITIALIZED)
    return group


def resolve(group: ProcessGroup | None) -> ProcessGroup:
    """The group a collective runs on: `group`, or the default one (which must be initialized)."""
    if group is None:
        return default_group()
    if not isinstance(group, ProcessGroup):
        raise TypeError(f"group must be a fusegrad.distributed.ProcessGroup or None, not {type(group).__name__}")
    if _GROUPS.get(group.group_id) is not group:
        raise ValueError(f"{group!r} was destroyed: call init_process_group again")
    return group


def communicator(group_id: int = WORLD) -> Any:
    """The mpi4py communicator of the group with id `group_id` (0: the default group)."""
    group = _GROUPS.get(group_id)
    if group is None:
        raise ValueError(NOT_INITIALIZED if group_id == WORLD else f"no process group with id {group_id}")
    return group.comm


def group_of(group_id: int) -> ProcessGroup:
    group = _GROUPS.get(group_id)
    if group is None:
        raise ValueError(NOT_INITIALIZED if group_id == WORLD else f"no process group with id {group_id}")
    return group


def _url_ints(init_method: str) -> dict[str, int]:
    """`rank`/`world_size` given in an init_method URL's query (`tcp://host:port?rank=0&world_size=2`)."""
    query = parse_qs(urlparse(init_method).query)
    return {k: int(v[0]) for k, v in query.items() if k in ("rank", "world_size")}


def _check_against_mpi(what: str, given: int, actual: int, source: str) -> None:
    if given >= 0 and given != actual:
        raise ValueError(f"init_process_group: {what}={given} ({source}) but MPI says {what}={actual}: with the MPI "
                         f"backend the launcher (mpirun, srun) decides ranks; drop {source} or launch accordingly")


@errors_at_user_line
def init_process_group(backend: str | None = None, init_method: str | None = None, timeout: timedelta | None = None,
                       world_size: int = -1, rank: int = -1, store: Any = None, group_name: str = "",
                       pg_options: Any = None, device_id: Any = None) -> None:
    """Join the default process group: every process started by the MPI launcher, ranked by MPI.

    `backend` must be "mpi" (or None). `init_method`, `rank` and `world_size` are accepted for
    PyTorch scripts and checked against MPI's ranks (MPI's launcher did the rendezvous already).
    `timeout` bounds every collective of the group (default 30 minutes)."""
    if backend is not None and str(backend).lower() != "mpi":
        raise ValueError(f"fusegrad.distributed supports the 'mpi' backend only, not {backend!r}: call "
                         "init_process_group('mpi') and start the processes with mpirun/mpiexec/srun")
    if is_initialized():
        raise ValueError("trying to initialize the default process group twice!")
    if timeout is not None and not isinstance(timeout, timedelta):
        raise TypeError(f"Expected timeout argument to be of type datetime.timedelta, got {type(timeout).__name__}")
    if store is not None:
        raise ValueError("init_process_group: a store is not used by the MPI backend (MPI's launcher does the "
                         "rendezvous): drop store=")
    MPI = mpi()
    world = MPI.COMM_WORLD
    actual_rank, actual_size = int(world.Get_rank()), int(world.Get_size())
    _check_against_mpi("rank", rank, actual_rank, "the rank argument")
    _check_against_mpi("world_size", world_size, actual_size, "the world_size argument")
    if init_method is not None:
        for key, value in _url_ints(init_method).items():
            given, actual = (value, actual_rank) if key == "rank" else (value, actual_size)
            _check_against_mpi(key, given, actual, f"in init_method {init_method!r}")
    if init_method is None or init_method.startswith("env://"):
        for var, key, actual in (("RANK", "rank", actual_rank), ("WORLD_SIZE", "world_size", actual_size)):
            text = os.environ.get(var, "")
            if text:
                _check_against_mpi(key, int(text), actual, f"environment variable {var}")
    limit = timeout if timeout is not None else DEFAULT_TIMEOUT
    comm, request = world.Idup()
    probe = ProcessGroup(world, WORLD, limit)
    wait(request, "init_process_group", probe)
    _GROUPS[WORLD] = ProcessGroup(comm, WORLD, limit)
    _share_cpus(comm, MPI)
    traced.install_host_calls(communicator, _wait_compiled, _check_compiled)  # compiled programs' all_reduce: MPI


_THREADS_SET: list[bool] = [False]


def _share_cpus(comm: Any, MPI: Any) -> None:
    """Ranks on one machine split its CPUs: each runs kernels on cpus // ranks-here threads, unless
    the thread count is fixed (FUSEGRAD_NUM_THREADS, set_num_threads). Several ranks each using
    every CPU would oversubscribe them (torchrun sets OMP_NUM_THREADS=1 for the same reason)."""
    if comm.Get_size() == 1 or runtime.num_threads_fixed():
        return
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    here = int(local.Get_size())
    local.Free()
    if here > 1:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        runtime.set_num_threads(max(1, cpus // here))
        _THREADS_SET[0] = True


def destroy_process_group(group: ProcessGroup | None = None) -> None:
    """Leave the group (the default one: every group); MPI itself stays up until the process exits."""
    groups = list(_GROUPS.values()) if group is None or group.group_id == WORLD else [group]
    if (group is None or group.group_id == WORLD) and _THREADS_SET[0]:
        runtime.set_num_threads(None)         # back to the default thread policy
        _THREADS_SET[0] = False
    if group is None or group.group_id == WORLD:
        traced.install_host_calls(None)
    for g in groups:
        _GROUPS.pop(g.group_id, None)
        if g.broken is None:      # a group with a collective still pending (timed out) is left to MPI's exit
            try:
                g.comm.Free()
            except Exception:     # freeing is best effort: the group is gone either way
                pass


def get_rank(group: ProcessGroup | None = None) -> int:
    """This process's rank in `group` (the default group)."""
    return resolve(group).rank()


def get_world_size(group: ProcessGroup | None = None) -> int:
    """How many processes `group` (the default group) has."""
    return resolve(group).size()


def get_backend(group: ProcessGroup | None = None) -> str:
    resolve(group)
    return "mpi"


def wait(request: Any, what: str, group: ProcessGroup, started: float | None = None) -> None:
    """Complete the MPI `request` of collective `what`, or raise DistBackendError once the group's
    timeout has passed since `started` (now when None) and mark the group broken."""
    if request.Test():
        return
    start = time.monotonic() if started is None else started
    limit = group.timeout.total_seconds()
    deadline = start + limit
    spin_until = time.monotonic() + _SPIN_SECONDS
    nap = 1e-5
    while True:
        now = time.monotonic()
        if now > deadline:
            break
        if now > spin_until:
            time.sleep(nap)
            nap = min(nap * 2, 1e-3)
        for _ in range(64):
            if request.Test():
                return
    group.broken = (f"{what} timed out after {group.timeout} on rank {group.rank()} of {group.size()}")
    raise DistBackendError(
        f"fusegrad.distributed: {what} timed out after {group.timeout} (the process group's timeout) on rank "
        f"{group.rank()} of {group.size()}: another rank did not join it. It may have exited or crashed, be stuck "
        f"elsewhere, or be calling a different collective. The process group is unusable now; end the program "
        f"(MPI.COMM_WORLD.Abort() stops every rank).")


def _wait_compiled(request: Any, group_id: int) -> None:
    """Complete a compiled program's all_reduce (a host call) as every collective completes."""
    group = group_of(group_id)
    check_usable(group)
    wait(request, "all_reduce (in a compiled program)", group)


def _check_compiled(group_id: int, desc: str) -> None:
    """The signature check of a compiled program's all_reduce (described by `desc`)."""
    check_signature(group_of(group_id), "all_reduce (in a compiled program)", desc)


_RECORD = 256          # bytes per rank in the signature check: a 16-byte digest, then the description
_DIGEST = 16

_RECORDS: dict[str, tuple[np.ndarray, bytes]] = {}


def _record(desc: str) -> tuple[np.ndarray, bytes]:
    """The check's record of `desc` and its bytes repeated for a 2-rank comparison (kept: a
    training loop repeats a few descriptions)."""
    rec = _RECORDS.get(desc)
    if rec is None:
        if len(_RECORDS) > 4096:
            _RECORDS.clear()
        text = desc.encode()
        array = np.zeros(_RECORD, np.uint8)
        array[:_DIGEST] = np.frombuffer(hashlib.blake2b(text, digest_size=_DIGEST).digest(), np.uint8)
        body = text[:_RECORD - _DIGEST]
        array[_DIGEST:_DIGEST + len(body)] = np.frombuffer(body, np.uint8)
        rec = _RECORDS[desc] = (array, array.tobytes())
    return rec


def check_signature(group: ProcessGroup, what: str, desc: str, started: float | None = None) -> None:
    """Raise RuntimeError on every rank unless every rank of `group` calls the collective `desc`
    (a description of the call: name, shapes, dtypes, op, root) now."""
    check_usable(group)
    size = group.size()
    if size == 1:
        return
    rec, rec_bytes = _record(desc)
    out = group.scratch.get("check")
    if out is None:
        out = group.scratch["check"] = np.empty(_RECORD * size, np.uint8)
    byte = mpi().BYTE
    wait(group.comm.Iallgather([rec, byte], [out, byte]), what, group, started)
    if out.tobytes() == rec_bytes * size:       # (the descriptions too: equal digests, equal texts)
        return
    rows = out.reshape(size, _RECORD)
    seen = [bytes(row[_DIGEST:]).rstrip(b"\0").decode(errors="replace") for row in rows]
    mine = group.rank()
    other = next(r for r in range(size) if (rows[r, :_DIGEST] != rec[:_DIGEST]).any())
    listing = "; ".join(f"rank {r}: {d}" for r, d in enumerate(seen))
    raise RuntimeError(f"Detected mismatch between collectives on ranks. Rank {mine} is running collective: {desc}, "
                       f"but Rank {other} is running collective: {seen[other]} ({listing}). Every rank must call "
                       f"the same collectives in the same order with tensors of the same shape and dtype.")


def check_usable(group: ProcessGroup) -> None:
    if group.broken is not None:
        raise DistBackendError(f"fusegrad.distributed: the process group is unusable: {group.broken}")
