"""backward() and grad(): walking grad_fn records with the compiler's VJP rules.

The walk visits each Function after every Function that feeds it a cotangent (reverse
topological order), applies `compiler.passes.autodiff.vjp` to get the cotangents of its
inputs, and passes them on. Cotangents are IR nodes, so the backward pass is new lazy nodes
in the same graph as the forward pass: realized together, fused and compiled. With
`create_graph=True` they are tensors recording their own history instead, so the result can
be differentiated again.

The engine sits below Tensor (tensor.py imports it for `backward()` and `retain_grad()`): the
tensors it makes (gradients, create_graph's recording values, seeds) are built through the
tensors it is given (`t._result(node)`, see tensor_base.py), never from the Tensor class.

Two hooks let library code act on a backward as a whole (DistributedDataParallel averages the
gradients across processes with them): `register_post_accumulate_grad_hook(leaf, hook)` calls
`hook(leaf)` each time a backward() accumulated into `leaf.grad`, and `queue_callback(fn)`,
called while a backward() runs (from such a hook, say), runs `fn()` once that backward() is
done: every `.grad` accumulated and, outside a trace, realized.
"""
from __future__ import annotations

import contextvars
import itertools
import weakref
from collections.abc import Callable
from typing import Any

from .. import ops
from ..compiler.passes.autodiff import node_emit, vjp
from ..grad_fn import AccumulateGrad, Function
from ..grad_mode import set_grad_enabled
from ..inplace import assign, defer, deferred, tensor_emitter
from ..realize import realize, realize_later_now
from ..source import user_loc
from ..tensor_base import TensorBase
from .function import OutputSlot, PythonBackward

FREED = ("Trying to backward through the graph a second time (or directly access saved tensors after they have "
         "already been freed). Saved intermediate values of the graph are freed when you call .backward() or "
         "autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time or "
         "if you need to access saved tensors after calling backward.")


def _topo(roots) -> list:
    """Functions reachable from `roots`, each before everything it feeds (reverse postorder)."""
    order, seen = [], set()
    for root in roots:
        stack = [(root, False)]
        while stack:
            fn, done = stack.pop()
            if done:
                order.append(fn)
                continue
            if id(fn) in seen:
                continue
            seen.add(id(fn))
            stack.append((fn, True))
            for nxt in getattr(fn, "next", ()):
                if nxt is not None and id(nxt) not in seen:
                    stack.append((nxt, False))
    return order[::-1]


class _Emitters:
    """Emit cotangents as IR nodes, or, for create_graph, as recording tensors built through
    `like` (a tensor the walk was given: a seed)."""

    def __init__(self, create_graph: bool, like: TensorBase | None):
        self.create_graph = create_graph
        self.like = like
        if create_graph:
            self.emit = tensor_emitter(like)
        else:
            self.emit = node_emit(user_loc())

    def values(self, fn: Function) -> tuple:
        if not self.create_graph:
            return fn.inputs, fn.output
        like: Any = self.like
        inputs = tuple(like._result(x, nxt) for x, nxt in zip(fn.inputs, fn.next))
        return inputs, like._result(fn.output, fn)

    def seed(self, g):
        if self.create_graph:
            return g
        return g._value()[0]

    def add(self, a, b):
        return self.emit("add", a, b)


RETAINED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # grad_fn -> [weakref to tensor]


def retain_grad(tensor) -> None:
    """Make backward() fill `tensor.grad` although it is not a leaf (PyTorch's retain_grad)."""
    if not tensor.requires_grad:
        raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
    if tensor.is_leaf:
        return
    fn = tensor._value()[1]
    refs = RETAINED.setdefault(fn, [])
    if not any(r() is tensor for r in refs):
        refs.append(weakref.ref(tensor))
    tensor._retains_grad = True


POST_ACCUMULATE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # AccumulateGrad -> {id: hook}
_HOOK_IDS = itertools.count()
_CALLBACKS: contextvars.ContextVar[list | None] = contextvars.ContextVar("fusegrad_backward_callbacks", default=None)


class HookHandle:
    """What registering a hook returns: `remove()` unregisters it (PyTorch's RemovableHandle)."""

    def __init__(self, table: dict, key: int) -> None:
        self._table, self.id = table, key

    def remove(self) -> None:
        self._table.pop(self.id, None)


def register_post_accumulate_grad_hook(tensor, hook: Callable[[Any], None]) -> HookHandle:
    """Call `hook(tensor)` each time a backward() has accumulated a gradient into `tensor.grad`
    (a leaf that requires grad), as PyTorch's `Tensor.register_post_accumulate_grad_hook`."""
    fn = tensor._value()[1]
    if not isinstance(fn, AccumulateGrad):
        raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors"
                           if fn is not None else
                           "cannot register a hook on a tensor that doesn't require gradient")
    hooks = POST_ACCUMULATE.setdefault(fn, {})
    key = next(_HOOK_IDS)
    hooks[key] = hook
    return HookHandle(hooks, key)


def _post_accumulate(fn) -> None:
    hooks = POST_ACCUMULATE.get(fn) if isinstance(fn, AccumulateGrad) else None
    if hooks:
        for hook in list(hooks.values()):
            hook(fn.variable)


def queue_callback(callback: Callable[[], None]) -> None:
    """Run `callback()` when the backward() running now is done (every gradient accumulated,
    and realized unless a trace is recording), as PyTorch's
    `Variable._execution_engine.queue_callback`. Callable only while a backward() runs."""
    queued = _CALLBACKS.get()
    if queued is None:
        raise RuntimeError("Final callbacks can only be installed during backward pass.")
    queued.append(callback)


def run(roots, seeds, retain_graph: bool, create_graph: bool, capture=None) -> dict:
    """Propagate `seeds` from the `roots` functions; accumulate into leaves or, with `capture`
    (a set of function ids), return the cotangents reaching those functions instead."""
    em = _Emitters(create_graph, seeds[0] if seeds else None)
    ct: dict[int, object] = {}
    for fn, g in zip(roots, seeds):
        g = em.seed(g)
        ct[id(fn)] = g if id(fn) not in ct else em.add(ct[id(fn)], g)
    captured = {}
    with set_grad_enabled(create_graph):
        for fn in _topo(roots):
            g = ct.pop(id(fn), None)
            if g is None:
                continue
            if capture is None and fn in RETAINED:
                for ref in RETAINED[fn]:
                    t = ref()
                    if t is not None:
                        accumulate(t, g, create_graph)     # retain_grad(): the non-leaf's .grad
            if capture is not None and id(fn) in capture:
                captured[id(fn)] = g
                if isinstance(fn, AccumulateGrad):
                    continue
            if isinstance(fn, AccumulateGrad):
                if capture is None:
                    accumulate(fn.variable, g, create_graph)
                    _post_accumulate(fn)
                continue
            if isinstance(fn, OutputSlot):         # one output of a custom Function: to its record
                slots: Any = ct.setdefault(id(fn.node), {})
                slots[fn.index] = g if fn.index not in slots else em.add(slots[fn.index], g)
                continue
            if fn.freed:
                raise RuntimeError(FREED)
            if isinstance(fn, PythonBackward):     # a custom Function: the user's backward
                cotangents = fn.run_backward(g if isinstance(g, dict) else {0: g}, create_graph)
            else:
                needs = tuple(n is not None for n in fn.next)
                inputs, output = em.values(fn)
                cotangents = vjp(em.emit, fn.op, fn.attrs, inputs, output, g, needs)
            for nxt, c in zip(fn.next, cotangents):
                if nxt is not None and c is not None:
                    ct[id(nxt)] = c if id(nxt) not in ct else em.add(ct[id(nxt)], c)
            if not retain_graph:
                fn.release()
    return captured


def accumulate(leaf, g, create_graph: bool) -> None:
    """leaf.grad += g (a new gradient tensor the first time), as PyTorch's AccumulateGrad."""
    grad = g if isinstance(g, TensorBase) else leaf._result(g)
    if not create_graph:
        grad = grad.detach()
    if leaf._grad is None:
        grad._storage.state = True
        leaf.grad = grad
        defer(grad._storage)
    elif create_graph:
        leaf.grad = ops.add(leaf._grad, grad)
    else:
        with set_grad_enabled(False):
            assign(leaf._grad, ops.add(leaf._grad, grad), "add_")


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    tensors = list(tensors)
    grads = list(grad_tensors) if grad_tensors is not None else [None] * len(tensors)
    roots, seeds = [], []
    for i, (t, g) in enumerate(zip(tensors, grads)):
        fn = t._value()[1]
        if fn is None:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
        roots.append(fn)
        seeds.append(_seed(t, g))
    retain = create_graph if retain_graph is None else retain_graph
    # a previous backward()'s gradients still pending (gradient accumulation over micro-batches):
    # computed now, so that one program holds at most one forward and backward, not k of them
    realize_later_now()
    callbacks: list = []
    token = _CALLBACKS.set(callbacks)
    try:
        # the gradients and the loss are computed with the next realization (typically the
        # optimizer step's: forward, backward and update in one program), or at once for
        # create_graph (tensors recording their history) and for callbacks (which read them)
        with deferred(with_next=not create_graph):
            if inputs is not None:
                leaves = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
                captured = run(roots, seeds, retain, create_graph, capture={id(x._value()[1]) for x in leaves})
                for x in leaves:
                    fn = x._value()[1]
                    g = captured.get(id(fn))
                    if g is not None:
                        accumulate(x, g, create_graph)
                        _post_accumulate(fn)
            else:
                run(roots, seeds, retain, create_graph)
            for t in tensors:      # the forward values are computed in the same program as the grads
                defer(t._storage)
        if callbacks:
            realize([])                # what backward() left to the next realization
        for callback in callbacks:     # queue_callback's, after the gradients are realized (a list that may grow)
            callback()
    finally:
        _CALLBACKS.reset(token)


def _seed(t, g):
    if g is None:
        if t.numel() != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        return ops.const(1.0, t.dtype, tuple(t.shape), like=t)
    if not isinstance(g, TensorBase):
        g = ops.const(g, t.dtype, tuple(t.shape), like=t)
    if tuple(g.shape) != tuple(t.shape):
        raise RuntimeError(f"Mismatch in shape: grad_output[0] has a shape of {g.shape} and output[0] has a shape "
                           f"of {t.shape}.")
    return g


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=None,
         materialize_grads=False):
    """Gradients of `outputs` with respect to `inputs`, returned instead of accumulated."""
    single = isinstance(inputs, TensorBase)
    outputs = [outputs] if isinstance(outputs, TensorBase) else list(outputs)
    inputs = [inputs] if single else list(inputs)
    grad_outputs = [grad_outputs] if isinstance(grad_outputs, TensorBase) else (
        list(grad_outputs) if grad_outputs is not None else [None] * len(outputs))
    roots, seeds = [], []
    for i, (t, g) in enumerate(zip(outputs, grad_outputs)):
        fn = t._value()[1]
        if fn is None:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
        roots.append(fn)
        seeds.append(_seed(t, g))
    targets = []
    for x in inputs:
        fn = x._value()[1]
        if fn is None:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
        targets.append(fn)
    retain = create_graph if retain_graph is None else retain_graph
    captured = run(roots, seeds, retain, create_graph, capture={id(f) for f in targets})
    result = []
    for x, fn in zip(inputs, targets):
        g = captured.get(id(fn))
        if g is None:
            if not (allow_unused or materialize_grads):
                raise RuntimeError("One of the differentiated Tensors appears to not have been used in the graph. "
                                   "Set allow_unused=True if this is the desired behavior.")
            result.append(ops.const(0.0, x.dtype, tuple(x.shape), like=x) if materialize_grads else None)
            continue
        result.append(g if isinstance(g, TensorBase) else x._result(g))
    return tuple(result)
