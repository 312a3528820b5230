"""`TensorBase`: the data half of `Tensor`, below the op modules.

A tensor is a view of a Storage (storage.py): a base tensor shows the storage's value, a
view applies a chain of movement primitives to its base's value. `_value()` gives the IR
node and grad_fn that stand for the tensor now; ops (ops.py) build on them without computing
anything. Values are computed when asked for: `.item()`, `.numpy()`, `print`, `float(t)`.

Autograd state follows PyTorch: a leaf may require grad (its gradient accumulates in
`.grad`); a tensor made by recorded ops has a `grad_fn`; `.detach()` and `.data` share the
storage without the history.

The layers (issue 12): this module holds everything a tensor is and does without calling an
op module: storage and view chain, shape/dtype/device, requires_grad/grad, reading values,
repr. The op modules (ops, shape_ops, indexing, inplace) import only this layer and the
primitive layer (prims.py); each defines a mixin of Tensor methods, and tensor.py composes
`Tensor` from this class and those mixins. An op builds its result through one of its tensor
operands: `x._result(node, grad_fn)` and `x._wrap(storage, ...)` are defined by `Tensor`
and always make a plain `Tensor` (a Parameter operand too), so no op module imports the
class it builds. A bare TensorBase is a complete value without the op methods; the only ones
made are constants built with no tensor to take the class from (`ops.const` without `like=`),
and ops on them build their results through their other, full, operands.
"""
from __future__ import annotations

import builtins
import ctypes
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import numpy as np

from . import dtypes as D
from . import placement as _placement
from . import trace_hooks as _trace_hooks
from .compiler.ir import AxisError, Node, make
from .device import CPU
from .device import device as Device
from .grad_fn import AccumulateGrad, Function
from .grad_mode import is_grad_enabled, is_inference_mode_enabled
from .printing import format_tensor
from .realize import MAX_PENDING_DEPTH, realize
from .source import user_loc
from .storage import Storage, computed, set_buffer
from .trace_hooks import current as _tracing

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

_T = TypeVar("_T", bound="TensorBase")
Value = tuple[Node, Any]          # (IR node, grad_fn or AccumulateGrad or None)


class Size(tuple):
    """`fusegrad.Size([2, 3])`: a tuple of dims."""

    def __repr__(self) -> str:
        return f"fusegrad.Size([{', '.join(map(str, self))}])"

    __str__ = __repr__

    def __getitem__(self, index: Any) -> Any:
        item = tuple.__getitem__(self, index)
        return Size(item) if isinstance(index, slice) else item

    def __add__(self, other: Any) -> Any:
        out = tuple.__add__(self, other)
        return out if out is NotImplemented else Size(out)

    def __radd__(self, other: Any) -> Any:
        return Size(other + tuple(self)) if isinstance(other, tuple) else NotImplemented

    def __mul__(self, times: Any) -> Size:
        return Size(tuple.__mul__(self, times))

    __rmul__ = __mul__

    def numel(self) -> int:
        n = 1
        for d in self:
            n *= d
        return n


def leaf_node(array: np.ndarray, dtype: D.DType | None = None) -> Node:
    """A node whose value is already computed: `array` (C-contiguous, a supported dtype)."""
    node = Node("input", (), _NO_ATTRS, array.shape, dtype or D.of_buffer(array.dtype))
    set_buffer(node, array)
    return node


_NO_ATTRS: dict = {}


def apply(op: str, values: Iterable[Value] | Sequence[Value], attrs: dict | None = None, *,
          shape: Any = None, dtype: Any = None, record: bool = True, loc: Any = None) -> Value:
    """One primitive on (node, grad_fn) values: the new (node, grad_fn)."""
    node = make(op, [v[0] for v in values], attrs, loc or user_loc(), shape=shape, dtype=dtype)
    fn = None
    if record and node.dtype.is_floating_point:
        nexts = tuple(v[1] for v in values)
        if builtins.any(f is not None for f in nexts):
            fn = Function(op, node.attrs, node.inputs, node, nexts)
    return node, fn


def normalize_dims(x: Any, dim: Any, op: str) -> tuple[int, ...]:
    """PyTorch's dim argument (an int, a sequence, None: all) as sorted non-negative dims of
    `x` (anything with a `dim()`), raising PyTorch's IndexError for a dim out of range."""
    rank = x.dim()
    if dim is None:
        return tuple(range(rank))
    dims = (dim,) if isinstance(dim, builtins.int) else tuple(dim)
    out = []
    for d in dims:
        lo, hi = (-rank, rank - 1) if rank else (-1, 0)
        if not lo <= d <= hi:
            raise AxisError(op, f"Dimension out of range (expected to be in range of [{lo}, {hi}], but got {d})",
                            user_loc())
        out.append(d % rank if rank else 0)
    return tuple(sorted(set(out)))


# ------------------------------------------------------------ DLPack capsules
# `__dlpack__` exports through numpy's own (numpy owns the DLManagedTensor and its deleter); numpy
# has no bfloat16, so a bfloat16 tensor's capsule (of its uint16 bits) has its dtype retagged in
# place. conversion.py parses the capsules fusegrad imports with the same structs and helpers.

class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32),
                ("ndim", ctypes.c_int32), ("dtype", DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


DL_UINT, DL_BFLOAT = 1, 4          # DLDataTypeCode
DL_CPU, DL_CUDA = 1, 2             # DLDeviceType
# Where the DLTensor sits in the struct a capsule holds: first in a DLManagedTensor ("dltensor");
# in a DLManagedTensorVersioned ("dltensor_versioned") after its version (two uint32), manager_ctx,
# deleter and flags (uint64).
DLTENSOR_OFFSET = {b"dltensor": 0, b"dltensor_versioned": 32}
# Own prototypes (not ctypes.pythonapi's shared function objects, whose argtypes others may set).
_capsule_name = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(("PyCapsule_GetName", ctypes.pythonapi))
_capsule_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi))


def dlpack_managed(capsule: Any) -> tuple[builtins.int, bytes] | None:
    """(address of its DLManagedTensor or DLManagedTensorVersioned, name) of an unconsumed DLPack
    capsule; None for anything else (another object, a capsule consumed already: "used_...")."""
    if type(capsule).__name__ != "PyCapsule":
        return None
    name = _capsule_name(capsule)
    if name not in DLTENSOR_OFFSET:
        return None
    return _capsule_pointer(capsule, name), name


def dlpack_tensor(capsule: Any) -> DLTensor | None:
    """The DLTensor inside an unconsumed DLPack capsule (writable in place), or None."""
    found = dlpack_managed(capsule)
    return None if found is None else DLTensor.from_address(found[0] + DLTENSOR_OFFSET[found[1]])


class TensorBase:
    __slots__ = ("_storage", "_base", "_view", "_detached", "_track", "_requires_grad", "_grad", "_acc",
                 "_vcache", "_retains_grad", "__weakref__", "__dict__")

    _storage: Storage
    _base: Optional[TensorBase]
    _view: tuple
    _grad: Any
    _acc: Optional[AccumulateGrad]
    _vcache: Optional[tuple]

    # ------------------------------------------------------------ construction

    def _init(self: _T, storage: Storage, base: TensorBase | None = None, view: tuple = (), detached: bool = False,
              track: bool = False, requires_grad: bool = False) -> _T:
        self._storage = storage
        self._base = base
        self._view = view
        self._detached = detached
        self._track = track
        self._requires_grad = requires_grad
        self._grad = None
        self._acc = None
        self._vcache = None
        self._retains_grad = False
        return self

    @classmethod
    def _new(cls: type[_T], storage: Storage, **kw: Any) -> _T:
        return object.__new__(cls)._init(storage, **kw)

    @classmethod
    def _from_value(cls: type[_T], node: Node, fn: Any = None) -> _T:
        t = cls._new(Storage(node, grad_fn=fn, device=_placement.value_device(node)))
        if node.height > MAX_PENDING_DEPTH and not _trace_hooks.active() and computed(node) is None:
            realize([t._storage])
        return t

    @classmethod
    def _from_array(cls: type[_T], array: np.ndarray, requires_grad: bool = False, dtype: D.DType | None = None) -> _T:
        return cls._new(Storage(leaf_node(array, dtype), buffer=array), requires_grad=requires_grad)

    @classmethod
    def _view_of(cls: type[_T], base: TensorBase, chain: tuple) -> _T:
        t = cls._new(base._storage, base=base, view=chain, track=is_grad_enabled())
        t._value()   # build now: a bad shape raises at the user's line
        return t

    # The op modules build their results through an operand with these two; Tensor defines
    # them to make a plain Tensor whatever the operand's class (a Parameter's results are not
    # Parameters). Here, for a bare TensorBase: its own class.

    def _result(self, node: Node, fn: Any = None) -> TensorBase:
        """A new tensor holding the value `node` (with autograd record `fn`)."""
        return type(self)._from_value(node, fn)

    def _wrap(self, storage: Storage, **kw: Any) -> TensorBase:
        """A new tensor over `storage` (keywords: `_init`'s view, autograd and grad state)."""
        return type(self)._new(storage, **kw)

    def _alias(self, detached: bool = True) -> TensorBase:
        """A tensor sharing this one's storage and view (`.data`, `.detach()`)."""
        return self._wrap(self._storage, base=self._base, view=self._view, detached=detached, track=self._track)

    # ------------------------------------------------------------ the current value

    def _value(self) -> Value:
        """(IR node, grad_fn or AccumulateGrad or None) standing for this tensor now."""
        s = self._storage
        if self._base is None:
            if _tracing() is not None:
                _trace_hooks.tensor_used(self)   # a trace bakes in its storage and requires_grad
            fn = None if self._detached else s.grad_fn
            if fn is None and self._requires_grad:
                fn = self._accumulate()
            return s.node, fn
        base_node, base_fn = self._base._value()
        if self._detached or not self._track:
            base_fn = None
        c = self._vcache
        if c is not None and c[0] is base_node and c[1] is base_fn:
            return c[2], c[3]
        node, fn = base_node, base_fn
        for op, attrs, name in self._view:
            node, fn = apply(op, [(node, fn)], attrs, record=fn is not None)
            if name is not None and fn is not None:
                fn._name = name
        self._vcache = (base_node, base_fn, node, fn)
        return node, fn

    def _accumulate(self) -> AccumulateGrad:
        if self._acc is None:
            self._acc = AccumulateGrad(self)
        return self._acc

    def _realize(self: _T) -> _T:
        realize([self._storage])
        return self

    # ------------------------------------------------------------ metadata

    @property
    def shape(self) -> Size:
        return Size(self._value()[0].shape)

    def size(self, dim: int | None = None) -> Any:
        shape = self.shape
        if dim is None:
            return shape
        return shape[normalize_dims(self, dim, "size")[0]]

    @property
    def dtype(self) -> D.DType:
        return self._value()[0].dtype

    @property
    def device(self) -> Device:
        return self._storage.device or CPU

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def ndim(self) -> int:
        return len(self._value()[0].shape)

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return self._value()[0].numel

    nelement = numel

    def element_size(self) -> int:
        return self.dtype.itemsize

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __hash__(self) -> int:
        return id(self)

    # ------------------------------------------------------------ autograd

    @property
    def grad_fn(self) -> Function | None:
        fn = self._value()[1]
        return None if isinstance(fn, AccumulateGrad) else fn

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def requires_grad(self) -> bool:
        return self._value()[1] is not None

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if not self.is_leaf:
            if not value:
                raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want to use "
                                   "a computed variable in a subgraph that doesn't require differentiation use "
                                   "var_no_grad = var.detach().")
            return
        if value and not self.dtype.is_floating_point:
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        if value and self._storage.inference and not is_inference_mode_enabled():
            raise RuntimeError("Setting requires_grad=True on inference tensor outside InferenceMode is not allowed.")
        if self._base is not None:
            raise RuntimeError("fusegrad: set requires_grad on the base tensor, not on a view")
        self._requires_grad = bool(value)
        _trace_hooks.state_changed()
        if value:        # a leaf that learns is state: its in-place updates realize at once
            self._storage.state = True

    def requires_grad_(self: _T, requires_grad: bool = True) -> _T:
        self.requires_grad = requires_grad
        return self

    @property
    def grad(self) -> Any:
        return self._grad

    @grad.setter
    def grad(self, value: Any) -> None:
        if value is not None and tuple(value.shape) != tuple(self.shape):
            raise RuntimeError("assigned grad has data of a different size")
        _trace_hooks.grad_set(self, value)      # before assigning: a trace records the old grad
        self._grad = value

    def is_inference(self) -> bool:
        """Whether this tensor was made under `inference_mode` (PyTorch's inference tensors)."""
        return self._storage.inference

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def detach(self) -> Any:
        return self._alias(detached=True)

    def detach_(self: _T) -> _T:
        self._detached = True
        self._requires_grad = False
        self._vcache = None
        _trace_hooks.state_changed()
        return self

    @property
    def data(self) -> Any:
        return self._alias(detached=True)

    @data.setter
    def data(self, other: TensorBase) -> None:
        self._storage, self._base, self._view = other._storage, other._base, other._view
        self._vcache = None
        _trace_hooks.state_changed()         # a trace that captured the old storage must recheck

    # ------------------------------------------------------------ values

    def numpy(self, *, force: bool = False) -> np.ndarray:
        if self.requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        if self.device.type == "cuda":
            raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor "
                            "to host memory first.")
        if self.dtype is D.bfloat16:        # numpy has no bfloat16 (PyTorch's error)
            raise TypeError("Got unsupported ScalarType BFloat16")
        _trace_hooks.value_read(self)
        self._realize()
        self._storage.exported = True
        return self._view_array()

    def _view_array(self) -> np.ndarray:
        """The realized storage buffer seen through this tensor's view chain (no copy on the
        CPU; a GPU buffer is copied to the host first)."""
        a = _placement.host_array(self._storage.buffer)
        for op, attrs, _ in self._view:
            if op == "reshape":
                a = a.reshape(attrs["shape"])
            elif op == "permute":
                a = a.transpose(attrs["perm"])
            elif op == "expand":
                a = np.broadcast_to(a, attrs["shape"])
            elif op == "slice":
                a = a[tuple(slice(*r) for r in zip(attrs["starts"], attrs["stops"], attrs["steps"]))]
        return a

    def _host_values(self) -> np.ndarray:
        """The values on the host (a bfloat16 buffer's bits read as float32 values)."""
        _trace_hooks.value_read(self)
        self._realize()
        return D.from_storage(self._view_array(), self.dtype)

    def __array__(self, dtype: Any = None, copy: builtins.bool | None = None) -> np.ndarray:
        """numpy's array protocol: the tensor's own memory (a view, no copy) for a CPU tensor; numpy 2's
        `copy=True` gives a copy, `copy=False` raises ValueError where only a copy can do (another dtype,
        bfloat16, which numpy lacks, read as float32 values, or a CUDA tensor)."""
        shared = self.device.type != "cuda" and self.dtype is not D.bfloat16
        wanted = np.dtype(dtype) if dtype is not None else None
        if copy is False and not (shared and (wanted is None or wanted == self.dtype.np)):
            reason = (f"it is a {self.dtype.name} tensor and numpy has no bfloat16" if self.dtype is D.bfloat16
                      else "it is on a CUDA device" if not shared else
                      f"it holds {self.dtype.name} and {wanted} was asked for")
            raise ValueError(f"Unable to avoid copy while creating an array as requested: {reason}.")
        a = self._exported_array() if shared else self._host_values()
        if wanted is not None and wanted != a.dtype:
            return a.astype(wanted)
        return a.copy() if copy and shared else a

    def _exported_array(self) -> np.ndarray:
        """The realized CPU buffer seen through the view chain, shared with whoever asks (numpy,
        DLPack): marked exported, so that in-place updates realize at once into the same memory;
        writable when the buffer is (an expanded view too: broadcast_to's views are read-only)."""
        _trace_hooks.value_read(self)
        self._realize()
        self._storage.exported = True
        a = self._view_array()
        buffer = self._storage.buffer
        if not a.flags.writeable and buffer.flags.writeable and buffer.flags.c_contiguous and a.size:
            a = np.ndarray(a.shape, a.dtype, buffer=buffer, offset=a.ctypes.data - buffer.ctypes.data,
                           strides=a.strides)
        return a

    def __dlpack__(self, *, stream: Any = None, max_version: tuple[int, int] | None = None,
                   dl_device: Any = None, copy: builtins.bool | None = None) -> Any:
        """A DLPack capsule of this CPU tensor's memory (no copy unless `copy=True`), versioned
        (DLPack 1.x) when `max_version` allows it; numpy's own export, bfloat16 retagged."""
        if self.requires_grad:
            raise BufferError("Can't export tensors that require gradient, use tensor.detach()")
        if self.device.type == "cuda":
            raise BufferError("fusegrad cannot export CUDA tensors through DLPack yet (its GPU buffers are "
                              "pycuda allocations); use tensor.cpu() to export a copy in host memory")
        if stream is not None and stream != -1:
            raise AssertionError("stream should be None on cpu.")
        kwargs = {k: v for k, v in (("max_version", max_version), ("dl_device", dl_device), ("copy", copy))
                  if v is not None}
        exported: Any = self._exported_array()        # (numpy before 2.1 takes no keywords but stream)
        capsule = exported.__dlpack__(**kwargs)
        if self.dtype is D.bfloat16:
            dl = dlpack_tensor(capsule)
            assert dl is not None and (dl.dtype.code, dl.dtype.bits) == (DL_UINT, 16)
            dl.dtype.code = DL_BFLOAT
        return capsule

    def __dlpack_device__(self) -> tuple[builtins.int, builtins.int]:
        """(DLPack device type, index): (1, 0) for the CPU (kDLCPU), (2, 0) for cuda:0 (kDLCUDA)."""
        return (DL_CUDA, self.device.index or 0) if self.device.type == "cuda" else (DL_CPU, 0)

    def item(self) -> Any:
        if self.numel() != 1:
            raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted to Scalar")
        return self._host_values().reshape(()).item()

    def tolist(self) -> Any:
        return self._host_values().tolist()

    def __float__(self) -> builtins.float:
        return builtins.float(self._scalar("float"))

    def __int__(self) -> builtins.int:
        return builtins.int(self._scalar("int"))

    def __index__(self) -> builtins.int:
        if self.dtype.is_floating_point:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return builtins.int(self._scalar("int"))

    def __bool__(self) -> builtins.bool:
        if self.numel() != 1:
            what = "no values" if self.numel() == 0 else "more than one value"
            raise RuntimeError(f"Boolean value of Tensor with {what} is ambiguous")
        return builtins.bool(self._scalar("bool"))

    def _scalar(self, what: str) -> Any:
        if self.numel() != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return self._host_values().reshape(()).item()

    def __repr__(self) -> str:
        values = self._host_values()
        suffixes = []
        fn = self.grad_fn
        if fn is not None:
            suffixes.append(f"grad_fn=<{fn.name()}>")
        elif self.requires_grad:
            suffixes.append("requires_grad=True")
        dev = str(self.device) if self.device.type != "cpu" else None
        return format_tensor(values, dtype_name=self.dtype.name, suffixes=suffixes, device=dev)

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        if self.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec) if spec else repr(self)
