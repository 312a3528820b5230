"""`DistributedDataParallel`: data-parallel training across processes, as PyTorch's DDP.

    dist.init_process_group("mpi")
    model = DistributedDataParallel(model)       # rank 0's parameters and buffers everywhere
    loss_fn(model(x_shard), y_shard).backward()  # gradients averaged across the ranks
    optimizer.step()                             # the same update on every rank

At construction the module's parameters and buffers are broadcast from rank 0 (which also
checks that every rank holds the same shapes), and the parameters that require grad are cut
into buckets of about `bucket_cap_mb` (25 MB), in reverse registration order (close to the
order backward produces gradients), one dtype and device per bucket.

After the gradients: each parameter has a post-accumulate-grad hook (autograd/engine.py); the
first one that fires in a backward that follows a synchronizing forward queues one callback
for the end of that backward (the engine's `queue_callback`), when every `.grad` is
accumulated and realized. It averages the gradients with `_average_gradients`: per bucket,
eagerly, the gradients are copied into one flat buffer, all-reduced in place with one MPI
Allreduce, divided by the world size and copied back into each `.grad` (a bucket of one
parameter is reduced in the gradient's own memory). While `@fusegrad.compile` traces the
step, the same function builds `cat` of the bucket's gradients, an `all_reduce` node (the
compiled program calls MPI between its kernels) and the split back into `.grad`, so a
compiled DDP step stays one native call.

Whether a forward synchronizes is PyTorch's rule: not inside `no_sync()` (gradients then
accumulate locally; the backward after the next forward outside it averages the sum).
Communication does not overlap the backward: fusegrad computes the whole backward as one
program, and the reduction starts when it is done.
"""
from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

from ... import trace_hooks
from ...autograd.engine import HookHandle, queue_callback, register_post_accumulate_grad_hook
from ...autograd.grad_mode import is_grad_enabled, no_grad
from ...creation import zeros_like
from ...distributed import collectives, process_group
from ...distributed.backend import RedOpType
from ...shape_ops import cat
from ...tensor import Tensor
from ..modules.module import Module
from ..parameter import Parameter

try:       # the compiled path (an all_reduce primitive in the traced program)
    from ...distributed import traced as _traced
except ImportError:       # pragma: no cover - depends on the checkout
    _traced = None  # type: ignore[assignment]

__all__ = ["DistributedDataParallel"]

_MB = 1024 * 1024
UNUSED = ("Expected to have finished reduction in the prior iteration before starting a new one. This error indicates "
          "that your module has parameters that were not used in producing loss ({names}). You can enable unused "
          "parameter detection by passing the keyword argument `find_unused_parameters=True` to "
          "`fusegrad.nn.parallel.DistributedDataParallel`, and by making sure all `forward` function outputs "
          "participate in calculating loss.")


class DistributedDataParallel(Module):
    """Wrap `module` for data-parallel training: every rank runs the same model on its share of
    the data and, after `backward()`, holds the average of all ranks' gradients.

    `bucket_cap_mb` sizes the gradient buckets (one Allreduce each); `broadcast_buffers`
    re-broadcasts rank 0's buffers (BatchNorm statistics) before every forward;
    `find_unused_parameters=True` allows parameters that get no gradient (those unused on every
    rank keep `.grad` None, the others count as zero where unused); `init_sync=False` skips the
    initial broadcast. `device_ids`, `output_device`, `dim`, `gradient_as_bucket_view` and
    `static_graph` are accepted for PyTorch scripts and change nothing here."""

    def __init__(self, module: Module, device_ids: Any = None, output_device: Any = None, dim: int = 0,
                 broadcast_buffers: bool | None = True, init_sync: bool = True,
                 process_group: process_group.ProcessGroup | None = None, bucket_cap_mb: float | None = None,
                 find_unused_parameters: bool = False, check_reduction: bool = False,
                 gradient_as_bucket_view: bool = False, static_graph: bool = False, **kwargs: Any) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel wraps a fusegrad.nn.Module, not {type(module).__name__}")
        self.module = module
        self._group = process_group_of(process_group)
        self.broadcast_buffers = bool(broadcast_buffers) if broadcast_buffers is not None else True
        self.find_unused_parameters = bool(find_unused_parameters)
        self.bucket_cap_mb = float(bucket_cap_mb) if bucket_cap_mb is not None else 25.0
        self.require_backward_grad_sync = True
        self.require_forward_param_sync = True
        self._sync_next_backward = False           # set by a forward that synchronizes, cleared by the reduction
        self._queued = False
        seen: set[int] = set()
        self._params: list[Parameter] = []
        for p in module.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                self._params.append(p)
        if not self._params:
            raise RuntimeError("DistributedDataParallel is not needed when a module doesn't have any parameter that "
                               "requires a gradient.")
        self._buckets = _buckets(self._params, self.bucket_cap_mb * _MB)
        if init_sync:
            with no_grad():
                for t in [*module.parameters(), *module.buffers()]:
                    collectives.broadcast(t.detach(), 0, self._group)
        me = weakref.ref(self)
        self._hooks: list[HookHandle] = [register_post_accumulate_grad_hook(p, _make_hook(me)) for p in self._params]
        weakref.finalize(self, _remove, list(self._hooks))      # a dropped wrapper leaves no hooks behind

    # ------------------------------------------------------------ the module's face

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        if self.broadcast_buffers and self._group.size() > 1:
            self._broadcast_buffers()
        if is_grad_enabled():
            self._sync_next_backward = self.require_backward_grad_sync
            self._queued = False
        return self.module(*inputs, **kwargs)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Gradients of the backward passes after forwards inside this block accumulate locally,
        without communication; the first backward after a forward outside it averages them."""
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    @property
    def process_group(self) -> process_group.ProcessGroup:
        return self._group

    # ------------------------------------------------------------ after backward

    def _grad_ready(self) -> None:
        if self._sync_next_backward and not self._queued:
            self._queued = True
            queue_callback(self._after_backward)

    def _after_backward(self) -> None:
        self._queued = False
        self._sync_next_backward = False
        self._average_gradients()

    def _average_gradients(self) -> None:
        """Average every parameter's `.grad` across the ranks: one all-reduce per bucket, eager
        (MPI on the realized gradients) or, while a trace records, as nodes of the traced program."""
        size = self._group.size()
        if size == 1:
            return
        buckets = self._buckets
        if self.find_unused_parameters and not trace_hooks.active():
            buckets = self._drop_globally_unused(buckets)
        traced = trace_hooks.active()
        for bucket in buckets:
            grads = [p.grad for p in bucket]
            missing = [p for p, g in zip(bucket, grads) if g is None]
            if missing:
                if not self.find_unused_parameters:
                    raise RuntimeError(UNUSED.format(names=", ".join(self._name_of(p) for p in missing)))
                with no_grad():
                    for p in missing:
                        p.grad = zeros_like(p.detach())
                grads = [p.grad for p in bucket]
            if traced:
                self._reduce_traced(bucket, grads)
            else:
                collectives.all_reduce_coalesced(grads, RedOpType.AVG, self._group)

    def _reduce_traced(self, bucket: list[Parameter], grads: list[Tensor]) -> None:
        if _traced is None:
            raise RuntimeError("DistributedDataParallel cannot be compiled in this build (no "
                               "fusegrad.distributed.traced): run the training step eagerly")
        with no_grad():
            flat = cat([g.reshape(-1) for g in grads])
            reduced = _traced.all_reduce_lazy(flat, "avg", self._group.group_id)
            start = 0
            for p, g in zip(bucket, grads):
                n = g.numel()
                p.grad = reduced[start:start + n].reshape(tuple(g.shape))
                start += n

    def _drop_globally_unused(self, buckets: list[list[Parameter]]) -> list[list[Parameter]]:
        """The buckets without the parameters that got no gradient on any rank (they keep None)."""
        used = Tensor._from_array(_used_flags(self._params))
        collectives.all_reduce(used, RedOpType.MAX, self._group)
        anywhere = {id(p) for p, flag in zip(self._params, used.tolist()) if flag}
        kept = [[p for p in b if id(p) in anywhere] for b in buckets]
        return [b for b in kept if b]

    def _broadcast_buffers(self) -> None:
        buffers = list(self.module.buffers())
        if not buffers:
            return
        with no_grad():
            if trace_hooks.active():      # rank 0's values: a sum where the other ranks add zeros
                if _traced is None:
                    raise RuntimeError("DistributedDataParallel(broadcast_buffers=True) cannot be compiled in this "
                                       "build (no fusegrad.distributed.traced)")
                for b in buffers:
                    mine = b if self._group.rank() == 0 else zeros_like(b)
                    b.copy_(_traced.all_reduce_lazy(mine, "sum", self._group.group_id))
            else:
                for b in buffers:
                    collectives.broadcast(b, 0, self._group)

    def _name_of(self, p: Parameter) -> str:
        for name, q in self.module.named_parameters():
            if q is p:
                return name
        return "?"

    def extra_repr(self) -> str:
        return ""


def process_group_of(group: process_group.ProcessGroup | None) -> process_group.ProcessGroup:
    return process_group.resolve(group)


def _make_hook(ddp: weakref.ReferenceType) -> Any:
    def hook(_: Any) -> None:
        d = ddp()
        if d is not None:
            d._grad_ready()
    return hook


def _remove(hooks: list[HookHandle]) -> None:
    for h in hooks:
        h.remove()


def _used_flags(params: list[Parameter]) -> np.ndarray:
    return np.array([p.grad is not None for p in params], np.uint8)


def _buckets(params: list[Parameter], cap_bytes: float) -> list[list[Parameter]]:
    """Parameters in reverse order, cut into buckets of about `cap_bytes`, one dtype and device each."""
    buckets: list[list[Parameter]] = []
    open_: dict[tuple, tuple[list[Parameter], list[int]]] = {}
    for p in reversed(params):
        key = (p.dtype, str(p.device))
        bucket, size = open_.get(key, (None, [0]))
        if bucket is None or (size[0] and size[0] + p.numel() * p.element_size() > cap_bytes):
            bucket, size = [], [0]
            buckets.append(bucket)
            open_[key] = (bucket, size)
        bucket.append(p)
        size[0] += p.numel() * p.element_size()
    return buckets
