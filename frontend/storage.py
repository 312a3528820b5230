"""Storage: the value a tensor and all its views share, as a lazy IR node.

PyTorch tensors share memory; fusegrad's share a Storage instead. Its `node` is the current
value: a leaf node (op "input") whose buffer is computed, or a pending node after lazy ops or
in-place updates.

IR nodes never change (compiler/ir/graph.py), so what is known about their values at run time
lives here, in one table keyed by node identity: `set_buffer(leaf, array)` records a leaf's
buffer, `set_computed(node, leaf)` records that a pending node's value was computed and is now
the value of `leaf`, and `computed(node)` gives the leaf holding a node's value (or None while
it is pending). An entry lives as long as its node (a weak reference drops it).
An in-place op replaces `node` by an updated value (functionalization), so every tensor that
shares the storage (views, `.data`, `.detach()`) sees the update when it next reads it.

`buffer` is the memory of the last computed value. Its identity survives in-place updates:
the next realization writes into the same array, so a numpy array from `.numpy()` or given
to `from_numpy` keeps seeing the tensor's values.
"""
from __future__ import annotations

import weakref

from . import trace_hooks
from .compiler.ir import Node as _Node
from .grad_mode import is_inference_mode_enabled
from .runtime import aligned_empty
from .trace_hooks import current as _tracing

_VALUES: dict = {}             # id(node) -> (weakref to node, its buffer or the leaf holding its value)


def _forget(ref, _values=_VALUES):
    key = ref.key
    entry = _values.get(key)
    if entry is not None and entry[0] is ref:
        _values.pop(key, None)


class _Ref(weakref.ref):
    __slots__ = ("key",)


def _entry_ref(node):
    entry = _VALUES.get(id(node))
    if entry is not None and entry[0]() is node:
        return entry[0]
    ref = _Ref(node, _forget)
    ref.key = id(node)
    return ref


def set_buffer(leaf, array) -> None:
    """`leaf`'s value is computed and is `array`."""
    _VALUES[id(leaf)] = (_entry_ref(leaf), array)


def set_computed(node, leaf) -> None:
    """The pending `node` was computed: its value is `leaf`'s (a leaf with a buffer)."""
    _VALUES[id(node)] = (_entry_ref(node), leaf)


def buffer_of(node):
    """The buffer holding `node`'s value, or None while it is pending."""
    entry = _VALUES.get(id(node))
    if entry is None or entry[0]() is not node:
        return None
    v = entry[1]
    if v.__class__ is _Node:
        entry = _VALUES.get(id(v))
        return entry[1] if entry is not None and entry[0]() is v else None
    return v


def computed(node):
    """The leaf whose buffer holds `node`'s value (`node` itself for a leaf), or None."""
    entry = _VALUES.get(id(node))
    if entry is None or entry[0]() is not node:
        return None
    v = entry[1]
    return v if v.__class__ is _Node else node


_OWNERS: dict = {}             # id(buffer) -> weakref to the storage whose memory it is
_PRUNE_AT = [1024]


def _register_buffer(storage) -> None:
    _OWNERS[id(storage.buffer)] = weakref.ref(storage)
    if len(_OWNERS) > _PRUNE_AT[0]:        # drop dead entries now and then (cheaper than callbacks)
        # dict.copy() runs no Python code, so no other thread can add an entry mid-copy (list(d.items())
        # allocates a tuple per item, and a garbage collection there may switch threads)
        for key in [k for k, ref in _OWNERS.copy().items() if ref() is None]:
            _OWNERS.pop(key, None)
        _PRUNE_AT[0] = max(1024, 2 * len(_OWNERS))


def buffer_owner(array):
    """The storage whose buffer `array` is, or None."""
    ref = _OWNERS.get(id(array))
    s = ref() if ref is not None else None
    return s if s is not None and s.buffer is array else None


class Storage:
    __slots__ = ("node", "buffer", "holder", "version", "grad_fn", "state", "exported", "readonly", "program",
                 "device", "inference", "__weakref__")

    def __init__(self, node, buffer=None, grad_fn=None, device=None):
        self.node = node
        self.buffer = buffer            # numpy array holding the last computed value, or None
        self.holder = weakref.ref(node) if buffer is not None else None   # node whose value is in buffer
        self.version = 0
        self.grad_fn = grad_fn          # autograd history of the value (None for leaves)
        self.state = False              # parameters, optimizer state, .grad: realize at every update
        self.exported = False           # numpy shares `buffer`: in-place ops realize at once
        self.readonly = False           # `buffer` must not be written (a read-only numpy array)
        self.program = None             # the compiled program that computed the value
        self.device = device
        self.inference = is_inference_mode_enabled()   # made under inference_mode: an inference tensor
        if buffer is not None:
            _register_buffer(self)
        if _tracing() is not None:
            trace_hooks.storage_created(self)

    @property
    def realized(self) -> bool:
        return computed(self.node) is not None

    def set_value(self, node, grad_fn) -> None:
        """An in-place update: the storage now holds `node` (pending until realized)."""
        if self.readonly:
            self._copy_on_write()
        trace_hooks.storage_updated(self, self.node, self.grad_fn)
        self.node = node
        self.grad_fn = grad_fn
        self.version += 1

    def _copy_on_write(self) -> None:
        """Give the storage its own copy of a read-only buffer before the first update is written,
        so the update never writes the read-only memory (which may be mapped read-only)."""
        copy = aligned_empty(self.buffer.shape, self.buffer.dtype)
        copy[...] = self.buffer
        self.buffer = copy
        self.readonly = False
        _register_buffer(self)
