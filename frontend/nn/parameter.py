"""`nn.Parameter`: a leaf tensor that a Module registers as one of its parameters.

A Parameter shares the storage of the tensor it wraps (as PyTorch's shares its memory), is a
leaf that requires grad, and marks its storage as `state`: every in-place update of it (an
optimizer step, `p -= lr * p.grad`) is realized at the update, so eager training loops keep
bounded graphs and the update of a step compiles once and is replayed from the cache.
"""
from __future__ import annotations

from ..autograd.grad_mode import no_grad
from ..creation import empty
from ..realize import realize
from ..tensor import Tensor


class Parameter(Tensor):
    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True) -> Parameter:
        if data is None:
            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter(): argument 'data' must be Tensor, not {type(data).__name__}")
        if data._base is not None or data._storage.grad_fn is not None:
            with no_grad():   # a view or a computed value: the parameter gets a storage of its own
                data = data.clone()
        storage = data._storage
        storage.state = True
        realize([storage])
        p = cls._new(storage)
        if requires_grad:
            p.requires_grad_(True)
        return p

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True) -> None:
        pass   # everything happens in __new__ (Tensor.__init__ is the legacy constructor)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__
