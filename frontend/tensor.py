"""`Tensor`: a lazy value with PyTorch's interface.

A tensor is a view of a Storage (storage.py): a base tensor shows the storage's value, a
view applies a chain of movement primitives to its base's value. `_value()` gives the IR
node and grad_fn that stand for the tensor now; ops (ops.py) build on them without computing
anything. Values are computed when asked for: `.item()`, `.numpy()`, `print`, `float(t)`.

Autograd state follows PyTorch: a leaf may require grad (its gradient accumulates in
`.grad`); a tensor made by recorded ops has a `grad_fn`; `.detach()` and `.data` share the
storage without the history.
"""
from __future__ import annotations

import builtins

import numpy as np

from . import dtypes as D
from . import placement as _placement
from .compiler.ir import Node
from .device import CPU, as_device
from .grad_fn import AccumulateGrad
from .grad_mode import is_grad_enabled
from .printing import format_tensor
from .realize import MAX_PENDING_DEPTH, realize
from .runtime import aligned_empty
from .storage import Storage, computed, set_buffer
from .trace_hooks import current as _tracing


class Size(tuple):
    """`fusegrad.Size([2, 3])`: a tuple of dims."""

    def __repr__(self):
        return f"fusegrad.Size([{', '.join(map(str, self))}])"

    __str__ = __repr__

    def __getitem__(self, index):
        item = tuple.__getitem__(self, index)
        return Size(item) if isinstance(index, slice) else item

    def __add__(self, other):
        out = tuple.__add__(self, other)
        return out if out is NotImplemented else Size(out)

    def __radd__(self, other):
        return Size(other + tuple(self)) if isinstance(other, tuple) else NotImplemented

    def __mul__(self, times):
        return Size(tuple.__mul__(self, times))

    __rmul__ = __mul__

    def numel(self) -> int:
        n = 1
        for d in self:
            n *= d
        return n


def leaf_node(array: np.ndarray, dtype=None) -> Node:
    """A node whose value is already computed: `array` (C-contiguous, a supported dtype)."""
    node = Node("input", (), _NO_ATTRS, array.shape, dtype or D.from_numpy(array.dtype))
    set_buffer(node, array)
    return node


_NO_ATTRS: dict = {}


class _Operators:
    """Python's operators on tensors (ops.py). A binary operator answers NotImplemented for an
    operand that is not a tensor or a number, so Python can try the other operand."""

    __slots__ = ()

    def __add__(self, other):
        return _ops.add(self, other) if _is_operand(other) else NotImplemented

    def __sub__(self, other):
        return _ops.sub(self, other) if _is_operand(other) else NotImplemented

    def __mul__(self, other):
        return _ops.mul(self, other) if _is_operand(other) else NotImplemented

    def __truediv__(self, other):
        return _ops.div(self, other) if _is_operand(other) else NotImplemented

    def __floordiv__(self, other):
        return _ops.floor_divide(self, other) if _is_operand(other) else NotImplemented

    def __mod__(self, other):
        return _ops.remainder(self, other) if _is_operand(other) else NotImplemented

    def __pow__(self, other):
        return _ops.pow(self, other) if _is_operand(other) else NotImplemented

    def __lt__(self, other):
        return _ops.lt(self, other) if _is_operand(other) else NotImplemented

    def __le__(self, other):
        return _ops.le(self, other) if _is_operand(other) else NotImplemented

    def __gt__(self, other):
        return _ops.gt(self, other) if _is_operand(other) else NotImplemented

    def __ge__(self, other):
        return _ops.ge(self, other) if _is_operand(other) else NotImplemented

    def __eq__(self, other):
        return _ops.eq(self, other) if _is_operand(other) else NotImplemented

    def __ne__(self, other):
        return _ops.ne(self, other) if _is_operand(other) else NotImplemented

    def __radd__(self, other):
        return _ops.add(other, self) if _is_operand(other) else NotImplemented

    def __rsub__(self, other):
        return _ops.sub(other, self) if _is_operand(other) else NotImplemented

    def __rmul__(self, other):
        return _ops.mul(other, self) if _is_operand(other) else NotImplemented

    def __rtruediv__(self, other):
        return _ops.div(other, self) if _is_operand(other) else NotImplemented

    def __rfloordiv__(self, other):
        return _ops.floor_divide(other, self) if _is_operand(other) else NotImplemented

    def __rmod__(self, other):
        return _ops.remainder(other, self) if _is_operand(other) else NotImplemented

    def __rpow__(self, other):
        return _ops.pow(other, self) if _is_operand(other) else NotImplemented

    def __and__(self, other):
        return _ops.bitwise("and", self, other) if _is_operand(other) else NotImplemented

    def __or__(self, other):
        return _ops.bitwise("or", self, other) if _is_operand(other) else NotImplemented

    def __xor__(self, other):
        return _ops.bitwise("xor", self, other) if _is_operand(other) else NotImplemented

    def __rand__(self, other):
        return _ops.bitwise("and", other, self) if _is_operand(other) else NotImplemented

    def __ror__(self, other):
        return _ops.bitwise("or", other, self) if _is_operand(other) else NotImplemented

    def __neg__(self):
        return _ops.neg(self)

    def __abs__(self):
        return _ops.abs(self)

    def __invert__(self):
        return _ops.logical_not(self)

    def __pos__(self):
        return self

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __getitem__(self, index):
        return _indexing.getitem(self, index)

    def __setitem__(self, index, value):
        return _indexing.setitem(self, index, value)

    def __iadd__(self, other):
        return _inplace_ops.add_(self, other)

    def __isub__(self, other):
        return _inplace_ops.sub_(self, other)

    def __imul__(self, other):
        return _inplace_ops.mul_(self, other)

    def __itruediv__(self, other):
        return _inplace_ops.div_(self, other)

    def __ipow__(self, other):
        return _inplace_ops.pow_(self, other)



class _OpMethods:
    """Tensor methods of the elementwise, reduction and matrix ops (ops.py)."""

    __slots__ = ()

    def add(self, *args, **kwargs):
        return _ops.add(self, *args, **kwargs)

    def sub(self, *args, **kwargs):
        return _ops.sub(self, *args, **kwargs)

    def mul(self, *args, **kwargs):
        return _ops.mul(self, *args, **kwargs)

    def div(self, *args, **kwargs):
        return _ops.div(self, *args, **kwargs)

    def true_divide(self, *args, **kwargs):
        return _ops.div(self, *args, **kwargs)

    def floor_divide(self, *args, **kwargs):
        return _ops.floor_divide(self, *args, **kwargs)

    def remainder(self, *args, **kwargs):
        return _ops.remainder(self, *args, **kwargs)

    def fmod(self, *args, **kwargs):
        return _ops.fmod(self, *args, **kwargs)

    def pow(self, *args, **kwargs):
        return _ops.pow(self, *args, **kwargs)

    def maximum(self, *args, **kwargs):
        return _ops.maximum(self, *args, **kwargs)

    def minimum(self, *args, **kwargs):
        return _ops.minimum(self, *args, **kwargs)

    def lt(self, *args, **kwargs):
        return _ops.lt(self, *args, **kwargs)

    def le(self, *args, **kwargs):
        return _ops.le(self, *args, **kwargs)

    def gt(self, *args, **kwargs):
        return _ops.gt(self, *args, **kwargs)

    def ge(self, *args, **kwargs):
        return _ops.ge(self, *args, **kwargs)

    def eq(self, *args, **kwargs):
        return _ops.eq(self, *args, **kwargs)

    def ne(self, *args, **kwargs):
        return _ops.ne(self, *args, **kwargs)

    def logical_not(self, *args, **kwargs):
        return _ops.logical_not(self, *args, **kwargs)

    def logical_and(self, *args, **kwargs):
        return _ops.logical_and(self, *args, **kwargs)

    def logical_or(self, *args, **kwargs):
        return _ops.logical_or(self, *args, **kwargs)

    def logical_xor(self, *args, **kwargs):
        return _ops.logical_xor(self, *args, **kwargs)

    def exp(self, *args, **kwargs):
        return _ops.exp(self, *args, **kwargs)

    def log(self, *args, **kwargs):
        return _ops.log(self, *args, **kwargs)

    def sqrt(self, *args, **kwargs):
        return _ops.sqrt(self, *args, **kwargs)

    def rsqrt(self, *args, **kwargs):
        return _ops.rsqrt(self, *args, **kwargs)

    def reciprocal(self, *args, **kwargs):
        return _ops.reciprocal(self, *args, **kwargs)

    def sin(self, *args, **kwargs):
        return _ops.sin(self, *args, **kwargs)

    def cos(self, *args, **kwargs):
        return _ops.cos(self, *args, **kwargs)

    def tanh(self, *args, **kwargs):
        return _ops.tanh(self, *args, **kwargs)

    def erf(self, *args, **kwargs):
        return _ops.erf(self, *args, **kwargs)

    def sigmoid(self, *args, **kwargs):
        return _ops.sigmoid(self, *args, **kwargs)

    def relu(self, *args, **kwargs):
        return _ops.relu(self, *args, **kwargs)

    def abs(self, *args, **kwargs):
        return _ops.abs(self, *args, **kwargs)

    def neg(self, *args, **kwargs):
        return _ops.neg(self, *args, **kwargs)

    def negative(self, *args, **kwargs):
        return _ops.neg(self, *args, **kwargs)

    def sign(self, *args, **kwargs):
        return _ops.sign(self, *args, **kwargs)

    def floor(self, *args, **kwargs):
        return _ops.floor(self, *args, **kwargs)

    def ceil(self, *args, **kwargs):
        return _ops.ceil(self, *args, **kwargs)

    def round(self, *args, **kwargs):
        return _ops.round(self, *args, **kwargs)

    def clamp(self, *args, **kwargs):
        return _ops.clamp(self, *args, **kwargs)

    def clip(self, *args, **kwargs):
        return _ops.clamp(self, *args, **kwargs)

    def sum(self, *args, **kwargs):
        return _ops.sum(self, *args, **kwargs)

    def mean(self, *args, **kwargs):
        return _ops.mean(self, *args, **kwargs)

    def prod(self, *args, **kwargs):
        return _ops.prod(self, *args, **kwargs)

    def max(self, *args, **kwargs):
        return _ops.max(self, *args, **kwargs)

    def min(self, *args, **kwargs):
        return _ops.min(self, *args, **kwargs)

    def amax(self, *args, **kwargs):
        return _ops.amax(self, *args, **kwargs)

    def amin(self, *args, **kwargs):
        return _ops.amin(self, *args, **kwargs)

    def all(self, *args, **kwargs):
        return _ops.all(self, *args, **kwargs)

    def any(self, *args, **kwargs):
        return _ops.any(self, *args, **kwargs)

    def argmax(self, *args, **kwargs):
        return _ops.argmax(self, *args, **kwargs)

    def argmin(self, *args, **kwargs):
        return _ops.argmin(self, *args, **kwargs)

    def softmax(self, *args, **kwargs):
        return _ops.softmax(self, *args, **kwargs)

    def log_softmax(self, *args, **kwargs):
        return _ops.log_softmax(self, *args, **kwargs)

    def logsumexp(self, *args, **kwargs):
        return _ops.logsumexp(self, *args, **kwargs)

    def matmul(self, *args, **kwargs):
        return _ops.matmul(self, *args, **kwargs)

    def mm(self, *args, **kwargs):
        return _ops.mm(self, *args, **kwargs)

    def bmm(self, *args, **kwargs):
        return _ops.bmm(self, *args, **kwargs)

    def dot(self, *args, **kwargs):
        return _ops.dot(self, *args, **kwargs)

    def mv(self, *args, **kwargs):
        return _ops.matmul(self, *args, **kwargs)

    def where(self, condition, other):
        return _ops.where(condition, self, other)

    def square(self):
        return _ops.mul(self, self)



class _ShapeMethods:
    """Tensor methods that change shape or layout (shape_ops.py) and index (indexing.py)."""

    __slots__ = ()

    def view(self, *args, **kwargs):
        return _shape_ops.view(self, *args, **kwargs)

    def reshape(self, *args, **kwargs):
        return _shape_ops.reshape(self, *args, **kwargs)

    def flatten(self, *args, **kwargs):
        return _shape_ops.flatten(self, *args, **kwargs)

    def permute(self, *args, **kwargs):
        return _shape_ops.permute(self, *args, **kwargs)

    def transpose(self, *args, **kwargs):
        return _shape_ops.transpose(self, *args, **kwargs)

    def t(self, *args, **kwargs):
        return _shape_ops.t_(self, *args, **kwargs)

    def expand(self, *args, **kwargs):
        return _shape_ops.expand(self, *args, **kwargs)

    def expand_as(self, *args, **kwargs):
        return _shape_ops.expand_as(self, *args, **kwargs)

    def squeeze(self, *args, **kwargs):
        return _shape_ops.squeeze(self, *args, **kwargs)

    def unsqueeze(self, *args, **kwargs):
        return _shape_ops.unsqueeze(self, *args, **kwargs)

    def narrow(self, *args, **kwargs):
        return _shape_ops.narrow(self, *args, **kwargs)

    def contiguous(self, *args, **kwargs):
        return _shape_ops.contiguous(self, *args, **kwargs)

    def clone(self, *args, **kwargs):
        return _shape_ops.clone(self, *args, **kwargs)

    def view_as(self, other):
        return _shape_ops.view(self, tuple(other.shape))

    def reshape_as(self, other):
        return _shape_ops.reshape(self, tuple(other.shape))

    @property
    def T(self):
        return _shape_ops.permute(self, tuple(reversed(range(self.dim())))) if self.dim() >= 2 else self

    @property
    def mT(self):
        return _shape_ops.transpose(self, -2, -1)

    def gather(self, dim, index):
        return _shape_ops.gather_along(self, _ops.normalize_dims(self, dim, "gather")[0], index)

    def index_select(self, *args, **kwargs):
        return _indexing.index_select(self, *args, **kwargs)

    def masked_fill(self, *args, **kwargs):
        return _indexing.masked_fill(self, *args, **kwargs)

    def scatter_add(self, *args, **kwargs):
        return _indexing.scatter_add(self, *args, **kwargs)



class _InplaceMethods:
    """Tensor methods that update a tensor in place (inplace.py)."""

    __slots__ = ()

    def add_(self, *args, **kwargs):
        return _inplace_ops.add_(self, *args, **kwargs)

    def sub_(self, *args, **kwargs):
        return _inplace_ops.sub_(self, *args, **kwargs)

    def mul_(self, *args, **kwargs):
        return _inplace_ops.mul_(self, *args, **kwargs)

    def div_(self, *args, **kwargs):
        return _inplace_ops.div_(self, *args, **kwargs)

    def pow_(self, *args, **kwargs):
        return _inplace_ops.pow_(self, *args, **kwargs)

    def clamp_(self, *args, **kwargs):
        return _inplace_ops.clamp_(self, *args, **kwargs)

    def zero_(self, *args, **kwargs):
        return _inplace_ops.zero_(self, *args, **kwargs)

    def fill_(self, *args, **kwargs):
        return _inplace_ops.fill_(self, *args, **kwargs)

    def copy_(self, *args, **kwargs):
        return _inplace_ops.copy_(self, *args, **kwargs)

    def random_(self, *args, **kwargs):
        return _inplace_ops.random_(self, *args, **kwargs)

    def uniform_(self, *args, **kwargs):
        return _inplace_ops.uniform_(self, *args, **kwargs)

    def normal_(self, *args, **kwargs):
        return _inplace_ops.normal_(self, *args, **kwargs)

    def masked_fill_(self, *args, **kwargs):
        return _inplace_ops.masked_fill_(self, *args, **kwargs)

    def neg_(self, *args, **kwargs):
        return _inplace_ops.neg_(self, *args, **kwargs)

    def exp_(self, *args, **kwargs):
        return _inplace_ops.exp_(self, *args, **kwargs)

    def erf_(self, *args, **kwargs):
        return _inplace_ops.erf_(self, *args, **kwargs)

    def log_(self, *args, **kwargs):
        return _inplace_ops.log_(self, *args, **kwargs)

    def sqrt_(self, *args, **kwargs):
        return _inplace_ops.sqrt_(self, *args, **kwargs)

    def abs_(self, *args, **kwargs):
        return _inplace_ops.abs_(self, *args, **kwargs)

    def relu_(self, *args, **kwargs):
        return _inplace_ops.relu_(self, *args, **kwargs)

    def sigmoid_(self, *args, **kwargs):
        return _inplace_ops.sigmoid_(self, *args, **kwargs)

    def tanh_(self, *args, **kwargs):
        return _inplace_ops.tanh_(self, *args, **kwargs)

    def floor_(self, *args, **kwargs):
        return _inplace_ops.floor_(self, *args, **kwargs)

    def round_(self, *args, **kwargs):
        return _inplace_ops.round_(self, *args, **kwargs)

    def fmod_(self, *args, **kwargs):
        return _inplace_ops.fmod_(self, *args, **kwargs)

    def remainder_(self, *args, **kwargs):
        return _inplace_ops.remainder_(self, *args, **kwargs)

    def clip_(self, *args, **kwargs):
        return _inplace_ops.clamp_(self, *args, **kwargs)


def _is_operand(other) -> bool:
    """Whether a binary operator takes `other`: a tensor or a (Python or numpy) number."""
    return isinstance(other, (Tensor, int, float, bool)) or _ops._is_np_scalar(other)


class Tensor(_Operators, _OpMethods, _ShapeMethods, _InplaceMethods):
    __slots__ = ("_storage", "_base", "_view", "_detached", "_track", "_requires_grad", "_grad", "_acc",
                 "_vcache", "_retains_grad", "__weakref__", "__dict__")

    # ------------------------------------------------------------ construction

    def __init__(self, *args, device=None):
        """The legacy constructor: Tensor(2, 3) (uninitialised), Tensor([1, 2]), Tensor(ndarray) -> float32."""
        from .creation import legacy_constructor_array
        array = legacy_constructor_array(args, D.float32)
        self._init(Storage(leaf_node(array), buffer=array))

    def _init(self, storage, base=None, view=(), detached=False, track=False, requires_grad=False):
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
    def _new(cls, storage, **kw):
        return object.__new__(cls)._init(storage, **kw)

    @classmethod
    def _from_value(cls, node, fn=None):
        t = cls._new(Storage(node, grad_fn=fn, device=_placement.value_device(node)))
        if node.height > MAX_PENDING_DEPTH and not _trace_hooks.active() and computed(node) is None:
            realize([t._storage])
        return t

    @classmethod
    def _from_array(cls, array: np.ndarray, requires_grad=False, dtype=None):
        return cls._new(Storage(leaf_node(array, dtype), buffer=array), requires_grad=requires_grad)

    @classmethod
    def _view_of(cls, base, chain):
        t = cls._new(base._storage, base=base, view=chain, track=is_grad_enabled())
        t._value()   # build now: a bad shape raises at the user's line
        return t

    def _alias(self, detached=True):
        """A tensor sharing this one's storage and view (`.data`, `.detach()`)."""
        return Tensor._new(self._storage, base=self._base, view=self._view, detached=detached, track=self._track)

    # ------------------------------------------------------------ the current value

    def _value(self):
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
            node, fn = _ops.apply(op, [(node, fn)], attrs, record=fn is not None)
            if name is not None and fn is not None:
                fn._name = name
        self._vcache = (base_node, base_fn, node, fn)
        return node, fn

    def _accumulate(self):
        if self._acc is None:
            self._acc = AccumulateGrad(self)
        return self._acc

    def _realize(self):
        realize([self._storage])
        return self

    # ------------------------------------------------------------ metadata

    @property
    def shape(self) -> Size:
        return Size(self._value()[0].shape)

    def size(self, dim=None):
        shape = self.shape
        if dim is None:
            return shape
        return shape[_ops.normalize_dims(self, dim, "size")[0]]

    @property
    def dtype(self):
        return self._value()[0].dtype

    @property
    def device(self):
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

    def is_contiguous(self) -> bool:
        return _shape_ops.is_contiguous(self)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __hash__(self):
        return id(self)

    # ------------------------------------------------------------ autograd

    @property
    def grad_fn(self):
        fn = self._value()[1]
        return None if isinstance(fn, AccumulateGrad) else fn

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def requires_grad(self) -> bool:
        return self._value()[1] is not None

    @requires_grad.setter
    def requires_grad(self, value: bool):
        if not self.is_leaf:
            if not value:
                raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want to use "
                                   "a computed variable in a subgraph that doesn't require differentiation use "
                                   "var_no_grad = var.detach().")
            return
        if value and not self.dtype.is_floating_point:
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        if self._base is not None:
            raise RuntimeError("fusegrad: set requires_grad on the base tensor, not on a view")
        self._requires_grad = bool(value)
        _trace_hooks.state_changed()
        if value:        # a leaf that learns is state: its in-place updates realize at once
            self._storage.state = True

    def requires_grad_(self, requires_grad=True):
        self.requires_grad = requires_grad
        return self

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None and tuple(value.shape) != tuple(self.shape):
            raise RuntimeError("assigned grad has data of a different size")
        _trace_hooks.grad_set(self, value)      # before assigning: a trace records the old grad
        self._grad = value

    def retain_grad(self):
        from .autograd.engine import retain_grad
        retain_grad(self)

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        from .autograd.engine import backward
        backward([self], [gradient], retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    def detach(self):
        return self._alias(detached=True)

    def detach_(self):
        self._detached = True
        self._requires_grad = False
        self._vcache = None
        _trace_hooks.state_changed()
        return self

    @property
    def data(self):
        return self._alias(detached=True)

    @data.setter
    def data(self, other):
        self._storage, self._base, self._view = other._storage, other._base, other._view
        self._vcache = None
        _trace_hooks.state_changed()         # a trace that captured the old storage must recheck

    # ------------------------------------------------------------ values

    def numpy(self, *, force=False):
        if self.requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        if self.device.type == "cuda":
            raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor "
                            "to host memory first.")
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
        _trace_hooks.value_read(self)
        self._realize()
        return self._view_array()

    def __array__(self, dtype=None, copy=None):
        a = self._host_values()
        return a.astype(dtype) if dtype is not None else a

    def item(self):
        if self.numel() != 1:
            raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted to Scalar")
        return self._host_values().reshape(()).item()

    def tolist(self):
        return self._host_values().tolist()

    def __float__(self):
        return builtins.float(self._scalar("float"))

    def __int__(self):
        return builtins.int(self._scalar("int"))

    def __index__(self):
        if self.dtype.is_floating_point:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return builtins.int(self._scalar("int"))

    def __bool__(self):
        if self.numel() != 1:
            what = "no values" if self.numel() == 0 else "more than one value"
            raise RuntimeError(f"Boolean value of Tensor with {what} is ambiguous")
        return builtins.bool(self._scalar("bool"))

    def _scalar(self, what):
        if self.numel() != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return self._host_values().reshape(()).item()

    def __repr__(self):
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

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __format__(self, spec):
        if self.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec) if spec else repr(self)

    # ------------------------------------------------------------ conversion

    def to(self, *args, **kwargs):
        dtype, dev = None, None
        for a in list(args) + [kwargs.get("dtype"), kwargs.get("device")]:
            if a is None:
                continue
            if isinstance(a, Tensor):
                dtype, dev = a.dtype, a.device
            elif isinstance(a, D.DType):
                dtype = a
            else:
                dev = as_device(a)
        out = self
        if dev is not None and dev != self.device:
            out = _move(out, dev)
        if dtype is not None and dtype is not out.dtype:
            out = _ops.cast(out, dtype)
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to(as_device(device if device is not None else "cuda"))

    def type(self, dtype=None):
        if dtype is None:
            return f"torch.{_ops._torch_name(self.dtype)}Tensor"
        if isinstance(dtype, str) and dtype.endswith("Tensor"):
            dtype = {"FloatTensor": D.float32, "DoubleTensor": D.float64, "LongTensor": D.int64,
                     "IntTensor": D.int32, "ByteTensor": D.uint8, "BoolTensor": D.bool_}[dtype.split(".")[-1]]
        return _ops.cast(self, D.as_dtype(dtype))

    def float(self):
        return _ops.cast(self, D.float32)

    def double(self):
        return _ops.cast(self, D.float64)

    def long(self):
        return _ops.cast(self, D.int64)

    def int(self):
        return _ops.cast(self, D.int32)

    def bool(self):
        return _ops.cast(self, D.bool_)

    def byte(self):
        return _ops.cast(self, D.uint8)

    def type_as(self, other):
        return _ops.cast(self, other.dtype)


def _move(t, dest):
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
    out = Tensor._new(Storage(leaf_node(buffer), buffer=buffer, device=dest if dest.type == "cuda" else None))
    if t.requires_grad:
        out.requires_grad_(True)
    return out


from . import indexing as _indexing  # noqa: E402  (the methods above call into the op layer)
from . import inplace as _inplace_ops  # noqa: E402
from . import ops as _ops  # noqa: E402
from . import shape_ops as _shape_ops  # noqa: E402
from . import trace_hooks as _trace_hooks  # noqa: E402
