"""`Tensor`: a lazy value with PyTorch's interface.

What a tensor is (a view of a Storage, lazy until `.item()`/`.numpy()`/`print`, PyTorch's
autograd state) is described in tensor_base.py, which holds that data half.

This module assembles the class (issue 12: imports point one way): `TensorBase`
(tensor_base.py) holds the data half, each op module a mixin of methods (ops.MathMethods,
shape_ops.ShapeMethods, indexing.IndexingMethods, inplace.InplaceMethods,
rearrange.RearrangeMethods, compound.CompoundMethods, sorting.SortingMethods,
scattering.ScatterMethods, sampling.SamplingMethods), and Tensor adds
what needs the layers above them: `backward()`/`retain_grad()` (the autograd engine),
device and dtype conversion, the legacy constructor, and `_result`/`_wrap`, through which
the op modules build plain Tensors from their operands without importing this module.
The functions that make tensors from nothing (creation.py, random.py) sit above it.
"""
from __future__ import annotations

import builtins
import copy
from typing import Any

import numpy as np

from . import dtypes as D
from . import placement as _placement
from . import trace_hooks as _trace_hooks
from .autograd.engine import backward as _backward
from .autograd.engine import retain_grad as _retain_grad
from .compiler.ir import Node, make
from .compound import CompoundMethods
from .conversion import legacy_constructor_array
from .device import as_device
from .grad_mode import is_grad_enabled
from .indexing import IndexingMethods
from .inplace import InplaceMethods
from .ops import MathMethods, cast
from .prims import torch_name
from .realize import MAX_PENDING_DEPTH, realize
from .rearrange import RearrangeMethods
from .runtime import aligned_empty
from .sampling import SamplingMethods
from .scattering import ScatterMethods
from .shape_ops import ShapeMethods
from .sorting import SortingMethods
from .source import user_loc
from .storage import Storage, computed
from .tensor_base import Size as Size
from .tensor_base import TensorBase
from .tensor_base import leaf_node as leaf_node

_new_object = object.__new__
_value_device = _placement.value_device
_trace_active = _trace_hooks.active


class Tensor(MathMethods, ShapeMethods, IndexingMethods, InplaceMethods, RearrangeMethods, CompoundMethods,
             SortingMethods, ScatterMethods, SamplingMethods, TensorBase):
    __slots__ = ()

    def __init__(self, *args: Any, device: Any = None) -> None:
        """The legacy constructor: Tensor(2, 3) (uninitialised), Tensor([1, 2]), Tensor(ndarray) -> float32."""
        array = legacy_constructor_array(args, D.float32)
        self._init(Storage(leaf_node(array), buffer=array))

    # ------------------------------------------------------------ how the op modules build results

    def _result(self, node: Node, fn: Any = None) -> Tensor:
        """A new Tensor holding the value `node` (its autograd record `fn`): `_from_value`,
        made a plain Tensor whatever this operand's class (a Parameter's results are Tensors)."""
        t = _new_object(Tensor)._init(Storage(node, grad_fn=fn, device=_value_device(node)))
        if node.height > MAX_PENDING_DEPTH and not _trace_active() and computed(node) is None:
            realize([t._storage])
        return t

    def _wrap(self, storage: Storage, **kw: Any) -> Tensor:
        """A new plain Tensor over `storage` (`_init`'s keywords: view chain, autograd state)."""
        return _new_object(Tensor)._init(storage, **kw)

    # ------------------------------------------------------------ autograd

    def retain_grad(self) -> None:
        _retain_grad(self)

    def backward(self, gradient: Any = None, retain_graph: builtins.bool | None = None,
                 create_graph: builtins.bool = False, inputs: Any = None) -> None:
        _backward([self], [gradient], retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    # ------------------------------------------------------------ copy.deepcopy

    def __deepcopy__(self, memo: dict) -> Tensor:
        """PyTorch's deepcopy: a leaf's values in a storage of its own (views of one storage
        share one copy), its requires_grad, `.grad` and attributes; a non-leaf raises."""
        if self.grad_fn is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the deepcopy "
                               "protocol at the moment.  If you were attempting to deepcopy a module, this may be "
                               "because of a torch.nn.utils.weight_norm usage, see "
                               "https://github.com/pytorch/pytorch/pull/103001")
        if id(self) in memo:
            return memo[id(self)]
        storage = self._storage
        copied = memo.get(id(storage))
        if copied is None:
            node = storage.node          # the value now, copied by an identity node (as clone())
            copied = Storage(make("reshape", (node,), {"shape": node.shape}, user_loc()), device=storage.device)
            copied.state = storage.state
            if copied.state:
                realize([copied])
            memo[id(storage)] = copied
            memo.setdefault(f"_keep_{id(storage)}", storage)      # the id stays this storage's while memo lives
        if self._base is None:
            out = type(self)._new(copied)
        else:
            base = copy.deepcopy(self._base, memo)
            out = type(self)._new(copied, base=base, view=self._view, track=self._track)
        memo[id(self)] = out
        if self.requires_grad:
            out.requires_grad_(True)
        if self._grad is not None:
            out._grad = copy.deepcopy(self._grad, memo)
        if self.__dict__:
            out.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return out

    # ------------------------------------------------------------ conversion

    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        dtype, dev = None, None
        for a in list(args) + [kwargs.get("dtype"), kwargs.get("device")]:
            if a is None:
                continue
            if isinstance(a, TensorBase):
                dtype, dev = a.dtype, a.device
            elif isinstance(a, D.DType):
                dtype = a
            else:
                dev = as_device(a)
        out = self
        if dev is not None and dev != self.device:
            out = _move(out, dev)
        if dtype is not None and dtype is not out.dtype:
            out = cast(out, dtype)
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device: Any = None) -> Tensor:
        return self.to(as_device(device if device is not None else "cuda"))

    def type(self, dtype: Any = None) -> Any:
        if dtype is None:
            return f"torch.{torch_name(self.dtype)}Tensor"
        if isinstance(dtype, str) and dtype.endswith("Tensor"):
            dtype = {"FloatTensor": D.float32, "DoubleTensor": D.float64, "HalfTensor": D.float16,
                     "BFloat16Tensor": D.bfloat16, "LongTensor": D.int64,
                     "IntTensor": D.int32, "ByteTensor": D.uint8, "BoolTensor": D.bool_}[dtype.split(".")[-1]]
        return cast(self, D.as_dtype(dtype))

    def float(self) -> Tensor:
        return cast(self, D.float32)

    def double(self) -> Tensor:
        return cast(self, D.float64)

    def half(self) -> Tensor:
        return cast(self, D.float16)

    def bfloat16(self) -> Tensor:
        return cast(self, D.bfloat16)

    def long(self) -> Tensor:
        return cast(self, D.int64)

    def int(self) -> Tensor:
        return cast(self, D.int32)

    def bool(self) -> Tensor:
        return cast(self, D.bool_)

    def byte(self) -> Tensor:
        return cast(self, D.uint8)

    def type_as(self, other: TensorBase) -> Tensor:
        return cast(self, other.dtype)


def _move(t: Tensor, dest: Any) -> Tensor:
    """`t`'s value on device `dest`, as a new leaf (keeping requires_grad of a leaf)."""
    dest = as_device(dest)
    if t.requires_grad and not t.is_leaf and is_grad_enabled():
        raise RuntimeError("fusegrad: gradients do not flow through a copy between devices; move leaf "
                           "tensors (model.to(device), tensor(..., device=...)) before computing with them")
    if dest.type == "cuda":
        _placement.lazy_init()
        _placement.device_index(dest)
        t._realize()
        buffer = _placement.upload(t._view_array())
    else:
        t._realize()
        host = t._view_array()
        buffer = aligned_empty(host.shape, host.dtype)
        np.copyto(buffer, host)
    out = Tensor._new(Storage(leaf_node(buffer, t.dtype), buffer=buffer, device=dest if dest.type == "cuda" else None))
    if t.requires_grad:
        out.requires_grad_(True)
    return out
