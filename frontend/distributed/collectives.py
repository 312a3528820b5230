"""The collectives on tensors, as `torch.distributed`: all_reduce, broadcast, all_gather,
all_gather_into_tensor, reduce_scatter, reduce_scatter_tensor and barrier.

Each works in place on the tensors it is given. A CPU tensor is realized, and MPI reads and
writes its storage's memory directly (zero-copy: the numpy view of the buffer goes to mpi4py's
uppercase, buffer-protocol calls); only a tensor whose view is not contiguous is copied to a
contiguous array and written back, and 16-bit floats are reduced in float32 (MPI has no
bfloat16). A write is an in-place update as fusegrad's own are: the storage's version moves,
and a pending value computed from the old contents (`y = x * 2` before `all_reduce(x)`) keeps
reading the old contents, which are copied aside only when something still reads them.
A CUDA tensor goes through host memory: copied to the host, reduced there, copied back
(`Tensor.copy_`); simple and obviously correct rather than fast (no CUDA-aware MPI).

Every collective first checks, with one small Allgather, that all ranks call the same one with
the same shapes and dtypes (backend.py), and every MPI operation is nonblocking and bounded by
the group's timeout (process_group.py). `async_op=True` returns a `Work` whose `wait()`
completes the transfer (the check has run already); without it, the call returns when done.

Inside `@fusegrad.compile`, `all_reduce` becomes a node of the traced program (a host call to
MPI between kernels, fusegrad.distributed.traced); the others run eagerly only.
"""
from __future__ import annotations

import sys
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import numpy as np

from .. import dtypes as D
from .. import trace_hooks
from ..autograd.grad_mode import no_grad
from ..creation import as_tensor
from ..realize import realize
from ..source import errors_at_user_line
from ..storage import set_buffer
from ..tensor import Tensor
from ..tensor_base import leaf_node
from .backend import RedOpType, ReduceOp, as_op, check_signature, describe, mpi_buffer, mpi_op
from .process_group import ProcessGroup, resolve, wait
from .process_group import mpi as _mpi

try:       # the compiled path (another module; optional until it lands)
    from . import traced as _traced
except ImportError:       # pragma: no cover - depends on the checkout
    _traced = None  # type: ignore[assignment]

__all__ = ["ReduceOp", "RedOpType", "Work", "all_reduce", "all_reduce_coalesced", "broadcast", "all_gather",
           "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor", "barrier"]


class Work:
    """A collective started with `async_op=True`: `wait()` completes it (raising, as the call
    would, if it times out), `is_completed()` polls."""

    def __init__(self, what: str, group: ProcessGroup, started: float, request: Any = None,
                 finish: Callable[[], None] | None = None, result: list | None = None) -> None:
        self._what, self._group, self._started = what, group, started
        self._request, self._finish = request, finish
        self._result = result or []
        self._done = request is None and finish is None

    def _complete(self) -> None:
        self._done = True
        finish, self._finish = self._finish, None
        if finish is not None:
            finish()

    def wait(self, timeout: timedelta | None = None) -> bool:
        """Block until the collective is done (or the group's timeout passes: DistBackendError)."""
        if not self._done:
            if self._request is not None:
                wait(self._request, self._what, self._group, self._started)
            self._complete()
        return True

    def is_completed(self) -> bool:
        if not self._done and (self._request is None or self._request.Test()):
            self._complete()
        return self._done

    def is_success(self) -> bool:
        return self.is_completed()

    def result(self) -> list:
        self.wait()
        return self._result


def _run(what: str, group: ProcessGroup, started: float, request: Any, finish: Callable[[], None] | None,
         async_op: bool, result: list) -> Work | None:
    if async_op:
        return Work(what, group, started, request, finish, result)
    if request is not None:
        wait(request, what, group, started)
    if finish is not None:
        finish()
    return None


# ------------------------------------------------------------------ tensors as host arrays

def _check_tensor(t: Any, what: str, name: str = "tensor") -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"Invalid function argument. Expected parameter `{name}` of type fusegrad.Tensor but got "
                        f"{type(t).__name__} instead ({what}).")
    if trace_hooks.active():
        raise RuntimeError(f"fusegrad.distributed.{what} cannot run inside @fusegrad.compile: only all_reduce is "
                           f"compiled (as a host call in the program); call {what} outside the compiled function")
    return t


def _begin_write(t: Tensor) -> None:
    """Make the coming write into t's (realized) storage memory an in-place update: its version
    moves and, when anything but the storage still holds the node of its value (a pending op, a
    saved autograd input, a view's cache), the storage's value becomes a new leaf over the same
    memory and the old node gets the old contents in a copy; when nothing does, MPI simply writes
    in place (the usual case: no copy)."""
    s = t._storage
    t._vcache = None                  # a view's cached node holds the old value: drop it first
    if not s.readonly and sys.getrefcount(s.node) <= 2 and not trace_hooks.active():
        s.version += 1                # nothing but the storage holds its value's node: write in place
        return
    s.set_value(s.node, s.grad_fn)    # version += 1; a read-only buffer gets a writable copy of its own
    old = weakref.ref(s.node)
    fresh = leaf_node(s.buffer, s.node.dtype)
    s.node, s.holder = fresh, weakref.ref(fresh)
    held = old()
    if held is not None:              # something still reads the old value: it keeps it, in a copy
        set_buffer(held, s.buffer.copy())


class _Host:
    """One tensor's memory as a C-contiguous numpy array for MPI: the storage buffer itself when
    the tensor's view of it is contiguous (zero-copy), else a copy that `done()` writes back.
    `arithmetic`: the collective computes on the values (16-bit floats go as float32, bools as
    0/1 bytes); otherwise they travel as their bits."""

    def __init__(self, t: Tensor, writes: bool, arithmetic: bool) -> None:
        self.tensor, self.writes = t, writes
        dtype = t.dtype
        self.cuda = t.device.type == "cuda"
        self.staged = self.cuda or (arithmetic and dtype.is_storage_float)
        self.copied = self.staged
        if self.cuda:         # host staging: a copy in, a copy_ back; laid out as a CPU tensor's array
            values = t.detach()._host_values()
            if dtype.is_storage_float:
                values = values.astype(np.float32) if arithmetic else D.to_storage(values, dtype).view(np.uint16)
            self.array = np.ascontiguousarray(values, np.uint8 if dtype is D.bool_ else None)
            return
        realize([t._storage])
        view = t._view_array()
        if writes and any(st == 0 and n > 1 for st, n in zip(view.strides, view.shape)):
            raise RuntimeError("unsupported operation: more than one element of the written-to tensor refers to a "
                               "single memory location. Please clone() the tensor before performing the operation.")
        if writes:
            _begin_write(t)
            view = t._view_array()
        self.view = view
        if self.staged:       # float16/bfloat16 reduce in float32
            self.array = np.ascontiguousarray(D.from_storage(view, dtype), np.float32)
            return
        self.copied = not view.flags.c_contiguous
        array = np.ascontiguousarray(view) if self.copied else view
        if dtype is D.bool_:
            array = array.view(np.uint8)
        elif dtype.is_storage_float:
            array = array.view(np.uint16)
        self.array = array

    def done(self) -> None:
        """Write the result back where MPI did not write it directly."""
        if not (self.writes and self.copied):
            return
        t = self.tensor
        if self.cuda:
            values = self.array
            if values.dtype == np.uint16:            # a 16-bit float's bits
                values = D.from_storage(values, D.bfloat16) if t.dtype is D.bfloat16 else values.view(np.float16)
            elif t.dtype is D.bool_:
                values = values.astype(np.bool_)
            with no_grad():
                t.copy_(as_tensor(np.ascontiguousarray(values)).to(device=t.device, dtype=t.dtype))
        elif self.staged:
            self.view[...] = D.to_storage(self.array, t.dtype)
        else:
            self.view[...] = self.array.view(self.view.dtype)


def _plain(t: Tensor, dtype: Any) -> bool:
    """A CPU tensor that is its storage's whole value (no view), of a dtype MPI reduces as it is:
    MPI can work in the storage buffer itself once it is realized."""
    return (t._base is None and not dtype.is_storage_float and dtype is not D.bool_
            and (t._storage.device is None or t._storage.device.type != "cuda"))


def _hosts(tensors: Sequence[Tensor], writes: bool, arithmetic: bool) -> list[_Host]:
    """Host arrays of several tensors, their pending values realized in one program."""
    cpu = [t._storage for t in tensors if t.device.type != "cuda"]
    if len(cpu) > 1:
        realize(cpu)
    return [_Host(t, writes, arithmetic) for t in tensors]


def _bytes(array: np.ndarray) -> list:
    return [array.reshape(-1).view(np.uint8), _mpi().BYTE]


def _finisher(hosts: Sequence[_Host], after: Callable[[], None] | None = None) -> Callable[[], None]:
    def finish() -> None:
        if after is not None:
            after()
        for h in hosts:
            h.done()
    return finish


# ------------------------------------------------------------------ the collectives

@errors_at_user_line
def all_reduce(tensor: Tensor, op: Any = RedOpType.SUM, group: ProcessGroup | None = None,
               async_op: bool = False) -> Work | None:
    """Reduce `tensor` across the group's ranks, in place: every rank gets the result."""
    g = resolve(group)
    op = as_op(op)
    if trace_hooks.active() and isinstance(tensor, Tensor):
        return _traced_all_reduce(tensor, op, g, async_op)
    t = _check_tensor(tensor, "all_reduce")
    started = time.monotonic()
    dtype = t.dtype
    host_dtype = np.dtype(np.float32) if dtype.is_storage_float else dtype.np
    mop = mpi_op(op, host_dtype, dtype is D.bool_)
    if not async_op and g.size() > 1 and _plain(t, dtype):     # the common case, with as little Python as can be
        realize([t._storage])
        _begin_write(t)
        array = t._storage.buffer
        check_signature(g, "all_reduce", describe("all_reduce", tuple(array.shape), dtype, op=op.name), started)
        if array.size:
            wait(g.comm.Iallreduce(_mpi().IN_PLACE, mpi_buffer(array), mop), "all_reduce", g, started)
        if op is RedOpType.AVG:
            np.divide(array, g.size(), out=array)
        return None
    h = _Host(t, writes=True, arithmetic=True)
    buffer = mpi_buffer(h.array)
    check_signature(g, "all_reduce", describe("all_reduce", tuple(t.shape), t.dtype, op=op.name), started)
    request = g.comm.Iallreduce(_mpi().IN_PLACE, buffer, mop) if g.size() > 1 and h.array.size else None

    def average() -> None:
        if op is RedOpType.AVG:
            np.divide(h.array, g.size(), out=h.array)
    return _run("all_reduce", g, started, request, _finisher([h], average), async_op, [t])


@errors_at_user_line
def all_reduce_coalesced(tensors: Sequence[Tensor], op: Any = RedOpType.SUM, group: ProcessGroup | None = None,
                         async_op: bool = False) -> Work | None:
    """All-reduce several tensors of one dtype with one MPI Allreduce: copied into one flat buffer,
    reduced in place, copied back (a single tensor is reduced in its own memory)."""
    tensors = list(tensors)
    if len(tensors) == 1:
        return all_reduce(tensors[0], op, group, async_op)
    g = resolve(group)
    op = as_op(op)
    ts = [_check_tensor(t, "all_reduce_coalesced", "tensors") for t in tensors]
    if not ts or any(t.dtype is not ts[0].dtype for t in ts):
        raise ValueError("all_reduce_coalesced: needs one or more tensors, all of one dtype")
    started = time.monotonic()
    host_dtype = np.dtype(np.float32) if ts[0].dtype.is_storage_float else ts[0].dtype.np
    mop = mpi_op(op, host_dtype, ts[0].dtype is D.bool_)
    desc = f"all_reduce_coalesced(shapes={[list(t.shape) for t in ts]}, dtype={ts[0].dtype.name}, op={op.name})"
    hosts = _hosts(ts, writes=True, arithmetic=True)
    flat = np.empty(sum(h.array.size for h in hosts), hosts[0].array.dtype)
    np.concatenate([h.array.reshape(-1) for h in hosts], out=flat)
    check_signature(g, "all_reduce_coalesced", desc, started)
    request = g.comm.Iallreduce(_mpi().IN_PLACE, mpi_buffer(flat), mop) if g.size() > 1 and flat.size else None

    def scatter_back() -> None:           # one pass per tensor: copied back (and averaged) into its memory
        start = 0
        for h in hosts:
            n = h.array.size
            part, dst = flat[start:start + n].reshape(h.array.shape), h.array
            if op is RedOpType.AVG:
                np.divide(part, g.size(), out=dst)
            else:
                dst[...] = part
            start += n
            h.done()
    return _run("all_reduce_coalesced", g, started, request, scatter_back, async_op, ts)


def _traced_all_reduce(t: Tensor, op: RedOpType, g: ProcessGroup, async_op: bool) -> Work | None:
    """all_reduce inside @fusegrad.compile: a node of the traced program (an MPI host call)."""
    if _traced is None:
        raise RuntimeError("fusegrad.distributed.all_reduce cannot be compiled in this build (no "
                           "fusegrad.distributed.traced): call it outside @fusegrad.compile")
    with no_grad():
        t.copy_(_traced.all_reduce_lazy(t, op.name.lower(), g.group_id))
    return _run("all_reduce", g, time.monotonic(), None, None, async_op, [t])


@errors_at_user_line
def broadcast(tensor: Tensor, src: int = 0, group: ProcessGroup | None = None, async_op: bool = False,
              group_src: int | None = None) -> Work | None:
    """Copy rank `src`'s `tensor` into `tensor` on every other rank."""
    g = resolve(group)
    t = _check_tensor(tensor, "broadcast")
    src = src if group_src is None else group_src
    if not 0 <= src < g.size():
        raise ValueError(f"broadcast: src={src} is not a rank of the group (size {g.size()})")
    started = time.monotonic()
    h = _Host(t, writes=g.rank() != src, arithmetic=False)
    check_signature(g, "broadcast", describe("broadcast", tuple(t.shape), t.dtype, src=src), started)
    request = g.comm.Ibcast(_bytes(h.array), root=src) if g.size() > 1 and h.array.size else None
    return _run("broadcast", g, started, request, _finisher([h]), async_op, [t])


def _same(t: Tensor, like: Tensor, what: str, name: str) -> None:
    if tuple(t.shape) != tuple(like.shape) or t.dtype is not like.dtype or t.device != like.device:
        raise ValueError(f"{what}: {name} has shape {list(t.shape)}, dtype {t.dtype.name} and device {t.device}, "
                         f"but the tensor has shape {list(like.shape)}, dtype {like.dtype.name} and device "
                         f"{like.device}: they must match")


@errors_at_user_line
def all_gather(tensor_list: list[Tensor], tensor: Tensor, group: ProcessGroup | None = None,
               async_op: bool = False) -> Work | None:
    """Every rank's `tensor` into `tensor_list` (one tensor per rank, in rank order) on every rank."""
    g = resolve(group)
    t = _check_tensor(tensor, "all_gather")
    outs = [_check_tensor(o, "all_gather", "tensor_list") for o in tensor_list]
    if len(outs) != g.size():
        raise ValueError(f"all_gather: tensor_list has {len(outs)} tensors; it needs one per rank ({g.size()})")
    for i, o in enumerate(outs):
        _same(o, t, "all_gather", f"tensor_list[{i}]")
    started = time.monotonic()
    src = _Host(t, writes=False, arithmetic=False)
    gathered = np.empty((g.size(), *src.array.shape), src.array.dtype)
    check_signature(g, "all_gather", describe("all_gather", tuple(t.shape), t.dtype), started)
    request = g.comm.Iallgather(_bytes(src.array), _bytes(gathered)) if gathered.size else None

    def scatter_out() -> None:
        hosts = _hosts(outs, writes=True, arithmetic=False)
        for h, part in zip(hosts, gathered):
            h.array[...] = part
            h.done()
    return _run("all_gather", g, started, request, scatter_out, async_op, outs)


@errors_at_user_line
def all_gather_into_tensor(output_tensor: Tensor, input_tensor: Tensor, group: ProcessGroup | None = None,
                           async_op: bool = False) -> Work | None:
    """Every rank's `input_tensor`, concatenated in rank order along dim 0 (or stacked: shape
    (world_size, *input.shape)), into `output_tensor`."""
    g = resolve(group)
    out = _check_tensor(output_tensor, "all_gather_into_tensor", "output_tensor")
    inp = _check_tensor(input_tensor, "all_gather_into_tensor", "input_tensor")
    _check_split(out, inp, g, "all_gather_into_tensor", "output_tensor", "input_tensor")
    started = time.monotonic()
    src = _Host(inp, writes=False, arithmetic=False)
    dst = _Host(out, writes=True, arithmetic=False)
    check_signature(g, "all_gather_into_tensor", describe("all_gather_into_tensor", tuple(inp.shape), inp.dtype),
                    started)
    request = g.comm.Iallgather(_bytes(src.array), _bytes(dst.array)) if dst.array.size else None
    return _run("all_gather_into_tensor", g, started, request, _finisher([dst]), async_op, [out])


def _check_split(big: Tensor, small: Tensor, g: ProcessGroup, what: str, big_name: str, small_name: str) -> None:
    """`big` must hold world_size `small`s: shape (world * d0, ...) or (world, *small.shape)."""
    n = g.size()
    shape, small_shape = tuple(big.shape), tuple(small.shape)
    stacked = shape == (n, *small_shape)
    concatenated = bool(small_shape) and shape == (n * small_shape[0], *small_shape[1:])
    if not (stacked or concatenated):
        raise ValueError(f"{what}: {big_name} of shape {list(shape)} must be world_size ({n}) times {small_name} of "
                         f"shape {list(small_shape)} (concatenated along dim 0, or stacked)")
    if big.dtype is not small.dtype:
        raise TypeError(f"{what}: {big_name} is {big.dtype.name} but {small_name} is {small.dtype.name}")


@errors_at_user_line
def reduce_scatter(output: Tensor, input_list: list[Tensor], op: Any = RedOpType.SUM,
                   group: ProcessGroup | None = None, async_op: bool = False) -> Work | None:
    """Reduce `input_list[i]` across the ranks into `output` on rank i."""
    g = resolve(group)
    op = as_op(op)
    out = _check_tensor(output, "reduce_scatter", "output")
    ins = [_check_tensor(x, "reduce_scatter", "input_list") for x in input_list]
    if len(ins) != g.size():
        raise ValueError(f"reduce_scatter: input_list has {len(ins)} tensors; it needs one per rank ({g.size()})")
    for i, x in enumerate(ins):
        _same(x, out, "reduce_scatter", f"input_list[{i}]")
    started = time.monotonic()
    host_dtype = np.dtype(np.float32) if out.dtype.is_storage_float else out.dtype.np
    mop = mpi_op(op, host_dtype, out.dtype is D.bool_)
    parts = [h.array for h in _hosts(ins, writes=False, arithmetic=True)]
    dst = _Host(out, writes=True, arithmetic=True)
    send = np.concatenate([p.reshape(-1) for p in parts])
    check_signature(g, "reduce_scatter", describe("reduce_scatter", tuple(out.shape), out.dtype, op=op.name),
                    started)
    return _reduce_scatter(g, started, send, dst, op, mop, async_op, "reduce_scatter")


@errors_at_user_line
def reduce_scatter_tensor(output: Tensor, input: Tensor, op: Any = RedOpType.SUM,
                          group: ProcessGroup | None = None, async_op: bool = False) -> Work | None:
    """Reduce `input` (world_size blocks along dim 0, or stacked) across the ranks; block i into
    `output` on rank i."""
    g = resolve(group)
    op = as_op(op)
    out = _check_tensor(output, "reduce_scatter_tensor", "output")
    inp = _check_tensor(input, "reduce_scatter_tensor", "input")
    _check_split(inp, out, g, "reduce_scatter_tensor", "input", "output")
    started = time.monotonic()
    host_dtype = np.dtype(np.float32) if out.dtype.is_storage_float else out.dtype.np
    mop = mpi_op(op, host_dtype, out.dtype is D.bool_)
    send = _Host(inp, writes=False, arithmetic=True).array      # C-contiguous (a copy where the view is not)
    dst = _Host(out, writes=True, arithmetic=True)
    check_signature(g, "reduce_scatter_tensor",
                    describe("reduce_scatter_tensor", tuple(out.shape), out.dtype, op=op.name), started)
    return _reduce_scatter(g, started, send, dst, op, mop, async_op, "reduce_scatter_tensor")


def _reduce_scatter(g: ProcessGroup, started: float, send: np.ndarray, dst: _Host, op: RedOpType, mop: Any,
                    async_op: bool, what: str) -> Work | None:
    request = None
    if dst.array.size:
        if g.size() > 1:
            request = g.comm.Ireduce_scatter_block(mpi_buffer(send), mpi_buffer(dst.array), mop)
        else:
            dst.array.reshape(-1)[...] = send.reshape(-1)

    def average() -> None:
        if op is RedOpType.AVG:
            np.divide(dst.array, g.size(), out=dst.array)
    return _run(what, g, started, request, _finisher([dst], average), async_op, [dst.tensor])


@errors_at_user_line
def barrier(group: ProcessGroup | None = None, async_op: bool = False, device_ids: Any = None,
            timeout: timedelta | None = None) -> Work | None:
    """Wait until every rank of the group has called barrier."""
    g = resolve(group)
    started = time.monotonic()
    check_signature(g, "barrier", "barrier()", started)
    request = g.comm.Ibarrier() if g.size() > 1 else None
    return _run("barrier", g, started, request, None, async_op, [])

