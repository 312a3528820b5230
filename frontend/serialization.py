"""Checkpoints in PyTorch's own format: `fusegrad.save(obj, f)` and `fusegrad.load(f)`.

A checkpoint is PyTorch's zip archive (the format of `torch.save` since 1.6): the record
`archive/data.pkl` pickles the object, and each storage's bytes are a record
`archive/data/<key>`, stored uncompressed and aligned to 64 bytes. In the pickle a tensor is
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)` and a
storage is the persistent id `('storage', torch.FloatStorage, key, location, numel)`; dtypes,
`Size` and `device` are the globals `torch.float32`, `torch.Size`, `torch.device`. Those torch
names are written and read as names, so fusegrad and PyTorch load each other's checkpoints
without PyTorch installed. Tensors that share a storage (views) share one record and, after
loading, one fusegrad storage.

Loading is safe by default, as in PyTorch: `weights_only=True` unpickles with an allow-list
(tensors, storages, dtypes, Size, device, plain containers and values, and what
`add_safe_globals` registers) and refuses any other global before calling anything.
`weights_only=False` loads any pickle, which can run arbitrary code: only for trusted files.
A damaged file (truncated, bad checksum, inconsistent sizes) raises a RuntimeError naming
what is wrong; nothing is read outside a record's bytes.
"""
from __future__ import annotations

import builtins
import codecs
import copyreg
import io
import os
import pickle
import secrets
import struct
import sys
import weakref
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import IO, Any, Union

import numpy as np

from . import cuda as _cuda
from . import dtypes as D
from . import trace_hooks
from .conversion import row_major
from .creation import strided_view
from .device import device as Device
from .nn.parameter import Parameter
from .runtime import aligned_empty
from .source import errors_at_user_line
from .tensor import Size, Tensor

FileLike = Union[str, "os.PathLike[str]", IO[bytes]]
MapLocation = Union[None, str, Device, dict, Callable[..., Any]]

DEFAULT_PROTOCOL = 2          # what torch.save writes
ALIGNMENT = 64                # storage records start at multiples of this (torch's .storage_alignment)
ARCHIVE = "archive"           # the records' folder (torch.save names it after the file; any name loads)
MAX_PICKLE_BYTES = 1 << 30    # a data.pkl larger than this is not a checkpoint (the tensors' bytes are records)

# torch's storage classes <-> fusegrad dtypes (torch.<Name>Storage in the pickle)
_STORAGE_DTYPES: dict[str, D.DType] = {
    "FloatStorage": D.float32, "DoubleStorage": D.float64, "HalfStorage": D.float16,
    "BFloat16Storage": D.bfloat16, "LongStorage": D.int64, "IntStorage": D.int32,
    "ByteStorage": D.uint8, "BoolStorage": D.bool_, "UntypedStorage": D.uint8,
}
_STORAGE_NAMES = {dt: name for name, dt in _STORAGE_DTYPES.items() if name != "UntypedStorage"}
# torch storages fusegrad has no dtype for (a checkpoint holding one is refused by name)
_FOREIGN_STORAGES = ("CharStorage", "ShortStorage", "ComplexFloatStorage", "ComplexDoubleStorage",
                     "Float8_e4m3fnStorage", "Float8_e5m2Storage", "QInt8Storage", "QUInt8Storage")


class _TorchName:
    """A global that the checkpoint names (`torch._utils._rebuild_tensor_v2`, `torch.float32`)
    without PyTorch being importable: pickled as the GLOBAL opcode with that name."""

    _made: dict[tuple[str, str], _TorchName] = {}
    __slots__ = ("module", "name")
    module: str
    name: str

    def __new__(cls, module: str, name: str) -> _TorchName:
        key = (module, name)
        if key not in cls._made:       # one object per name: the pickle memoizes it
            obj = super().__new__(cls)
            obj.module, obj.name = module, name
            cls._made[key] = obj
        return cls._made[key]

    def __call__(self, *args: Any) -> Any:        # pickle's REDUCE requires a callable
        raise TypeError(f"{self.module}.{self.name} is only a name in a checkpoint")

    def __reduce__(self) -> str:
        return self.name


_REBUILD_TENSOR = _TorchName("torch._utils", "_rebuild_tensor_v2")
_REBUILD_PARAMETER = _TorchName("torch._utils", "_rebuild_parameter")


# ---------------------------------------------------------------------------------- saving

class _SavedStorage:
    """One storage's bytes as they will be written: the record `data/<key>`."""
    __slots__ = ("key", "array", "dtype", "location")

    def __init__(self, key: str, array: np.ndarray, dtype: D.DType, location: str) -> None:
        self.key, self.array, self.dtype, self.location = key, array, dtype, location


# pickle's pure-Python pickler: unlike the C one it can write a GLOBAL for a name that is not
# importable here (typeshed declares too little of it for a typed subclass)
_PythonPickler: Any = pickle._Pickler


class _CheckpointPickler(_PythonPickler):
    """pickle's Python pickler, writing fusegrad tensors, dtypes, Size and device under the
    torch names PyTorch writes, and each storage once, as a persistent id."""

    dispatch = dict(_PythonPickler.dispatch)

    def __init__(self, file: IO[bytes], protocol: int) -> None:
        super().__init__(file, protocol)
        self.storages: dict[int, _SavedStorage] = {}     # id(fusegrad Storage or copied array) -> record
        self._keep: list[Any] = []                       # what those ids belong to, alive until written

    def _save_torch_name(self, obj: _TorchName) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))
        self.memoize(obj)

    dispatch[_TorchName] = _save_torch_name

    def _save_dtype(self, obj: D.DType) -> None:
        self.save(_TorchName("torch", obj.name))

    dispatch[D.DType] = _save_dtype

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, _SavedStorage):
            return ("storage", _TorchName("torch", _STORAGE_NAMES[obj.dtype]), obj.key, obj.location,
                    obj.array.size)
        return None

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, Tensor):
            if isinstance(obj, Parameter):
                return _REBUILD_PARAMETER, (obj.detach(), obj.requires_grad, OrderedDict())
            storage, offset, size, stride = self._layout(obj)
            return _REBUILD_TENSOR, (storage, offset, size, stride, obj.requires_grad, OrderedDict())
        if isinstance(obj, Size):
            return _TorchName("torch", "Size"), (tuple(obj),)
        if isinstance(obj, Device):
            return _TorchName("torch", "device"), (str(obj),)
        return NotImplemented

    def _layout(self, t: Tensor) -> tuple[_SavedStorage, int, tuple[int, ...], tuple[int, ...]]:
        """The record holding `t`'s storage, and `t` as (offset, size, stride) in it."""
        memory, offset, size, stride, location = host_layout(t)
        record = self.storages.get(id(memory))
        if record is None:
            record = _SavedStorage(str(len(self.storages)), memory.reshape(-1), t.dtype, location)
            self.storages[id(memory)] = record
            self._keep.append(memory)
        return record, offset, size, stride


def host_layout(t: Tensor) -> tuple[np.ndarray, int, tuple[int, ...], tuple[int, ...], str]:
    """`t` realized, as (memory, offset, size, stride, location): `memory` is its storage's host
    buffer (the same array for every view of one CPU storage) and (offset, size, stride) place
    `t` in it, in elements. A view numpy could only express by copying is its own memory."""
    if trace_hooks.active():
        raise RuntimeError("a tensor cannot be saved or pickled inside a compiled function: "
                           "save the results the function returns")
    location = str(t.device)
    if t.device.type != "cpu":
        t = t.detach().cpu()          # (views of one GPU storage are saved as copies of their own)
    t._realize()
    memory = t._storage.buffer
    view = t._view_array()
    size = tuple(view.shape)
    if view.size and not np.shares_memory(view, memory):
        memory = view = _aligned(view)
    if not view.size:
        return memory, 0, size, row_major(size), location
    itemsize = memory.itemsize
    offset = (view.__array_interface__["data"][0] - memory.__array_interface__["data"][0]) // itemsize
    return memory, int(offset), size, tuple(s // itemsize for s in view.strides), location


@errors_at_user_line
def save(obj: Any, f: FileLike, pickle_module: Any = None, pickle_protocol: int = DEFAULT_PROTOCOL,
         _use_new_zipfile_serialization: bool = True) -> None:
    """Write `obj` (tensors, state_dicts, nested containers, plain values) to `f` (a path or a
    binary file) as PyTorch's zip checkpoint."""
    if pickle_module is not None and pickle_module is not pickle:
        raise ValueError("fusegrad.save writes with the standard pickle module only")
    if not _use_new_zipfile_serialization:
        raise NotImplementedError("fusegrad.save writes the zip checkpoint format only "
                                  "(_use_new_zipfile_serialization=False is PyTorch's pre-1.6 format)")
    data = io.BytesIO()
    pickler = _CheckpointPickler(data, pickle_protocol)
    pickler.dump(obj)
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as out:
            _write_archive(out, data.getbuffer(), pickler.storages.values())
    elif getattr(f, "seekable", lambda: False)():
        _write_archive(f, data.getbuffer(), pickler.storages.values())
    else:                                   # a stream: build the archive in memory, then copy it
        buf = io.BytesIO()
        _write_archive(buf, data.getbuffer(), pickler.storages.values())
        f.write(buf.getbuffer())


def _write_archive(out: IO[bytes], pickled: memoryview, storages: Iterable[_SavedStorage]) -> None:
    start = out.tell()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        def record(name: str, payload: Any) -> None:
            _write_aligned(zf, out, start, f"{ARCHIVE}/{name}", payload)
        record("data.pkl", pickled)
        record(".format_version", b"1")
        record(".storage_alignment", str(ALIGNMENT).encode())
        record("byteorder", sys.byteorder.encode())
        for s in storages:
            record(f"data/{s.key}", np.ascontiguousarray(s.array).view(np.uint8).data)
        record("version", b"3\n")
        record(".data/serialization_id", str(secrets.randbits(128)).zfill(40).encode())


def _write_aligned(zf: zipfile.ZipFile, out: IO[bytes], start: int, name: str, payload: Any) -> None:
    """One uncompressed record whose bytes start at a multiple of ALIGNMENT from the archive's
    start: the local header's extra field pads it (PyTorch's 'FB' field of 'Z's)."""
    size = memoryview(payload).nbytes
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = size
    zip64 = size * 1.05 > zipfile.ZIP64_LIMIT          # zipfile then adds a 20-byte zip64 field after ours
    header = 30 + len(name.encode("utf-8")) + 4 + (20 if zip64 else 0)
    pad = -(out.tell() - start + header) % ALIGNMENT
    info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    with zf.open(info, "w", force_zip64=zip64) as w:
        w.write(payload)


# --------------------------------------------------------------------------------- loading

class CheckpointError(RuntimeError):
    """A file that is not a readable checkpoint (damaged, truncated, inconsistent)."""


class UnsafeGlobalError(pickle.UnpicklingError):
    """weights_only=True met a global outside the allow-list."""


class _StorageType:
    """A storage class named in the pickle (torch.FloatStorage): its fusegrad dtype."""
    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: D.DType) -> None:
        self.name, self.dtype = name, dtype


class _LoadedStorage:
    """One storage record, read and placed on its device; tensors over it are views of `flat`."""
    __slots__ = ("array", "dtype", "device", "flat")

    def __init__(self, array: np.ndarray, dtype: D.DType, device: Device) -> None:
        self.array, self.dtype, self.device = array, dtype, device
        self.flat: Tensor | None = None

    def tensor(self, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> Tensor:
        """The tensor (offset, size, stride) over this storage, sharing it with the others."""
        n = self.array.size
        numel = int(np.prod(size, dtype=np.int64))
        if numel and offset + sum((k - 1) * s for k, s in zip(size, stride)) >= n:
            raise CheckpointError(f"a tensor of size {list(size)}, stride {list(stride)} and offset {offset} "
                                  f"reaches past the end of its storage of {n} elements")
        if self.flat is None:
            if offset == 0 and numel == n and _contiguous(size, stride):
                self.flat = _placed(Tensor._from_array(self.array.reshape(size), dtype=self.dtype), self.device)
                return self.flat            # the common case: the storage is this one tensor
            self.flat = _placed(Tensor._from_array(self.array, dtype=self.dtype), self.device)
        flat = self.flat.reshape(-1)
        if not numel:
            return flat[0:0].reshape(size)
        if _contiguous(size, stride):
            return flat[offset:offset + numel].view(size)
        itemsize = self.array.itemsize
        a = np.lib.stride_tricks.as_strided(self.array[offset:], size, tuple(s * itemsize for s in stride))
        origin = self.array.__array_interface__["data"][0]

        def piece(memory: np.ndarray, lo: int, hi: int) -> Tensor:
            shift = (memory.__array_interface__["data"][0] - origin) // itemsize
            return flat[shift + lo:shift + hi]
        t = strided_view(a, piece)
        if t is None:        # a layout no view chain expresses (e.g. overlapping strides): a copy
            t = _placed(Tensor._from_array(_aligned(a), dtype=self.dtype), self.device)
        return t


def _contiguous(size: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    expected = 1
    for k, s in zip(reversed(size), reversed(stride)):
        if k != 1 and s != expected:
            return False
        expected *= k
    return True


def _aligned(a: np.ndarray) -> np.ndarray:
    out = aligned_empty(a.shape, a.dtype)
    np.copyto(out, a)
    return out


def _placed(t: Tensor, dev: Device) -> Tensor:
    return t if dev.type == "cpu" else t.to(dev)


_SAFE_BUILTINS = {"set", "frozenset", "bytearray", "complex", "slice", "range"}
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {}


def add_safe_globals(safe_globals: list[Any]) -> None:
    """Allow these classes or functions in `load(weights_only=True)` (trusted by you)."""
    for g in safe_globals:
        obj, name = (g if isinstance(g, tuple) else (g, None))
        module = getattr(obj, "__module__", None)
        qualname = name or getattr(obj, "__qualname__", None)
        if module is None or qualname is None:
            raise TypeError(f"add_safe_globals: {obj!r} has no module and name; pass (obj, 'module.name')")
        if name is not None and "." in name:
            module, _, qualname = name.rpartition(".")
        _SAFE_GLOBALS[(module, qualname)] = obj


def get_safe_globals() -> list[Any]:
    return list(_SAFE_GLOBALS.values())


def clear_safe_globals() -> None:
    _SAFE_GLOBALS.clear()


class _Loader:
    """What one `load` reads: the archive's records, the storages already made, where they go."""

    def __init__(self, zf: zipfile.ZipFile, prefix: str, map_location: MapLocation) -> None:
        self.zf, self.prefix, self.map_location = zf, prefix, map_location
        self.storages: dict[str, _LoadedStorage] = {}

    # the torch names a checkpoint's pickle may use, and what they are here
    def torch_global(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor_v3"):
            return self.rebuild_tensor
        if module == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
            return _rebuild_parameter
        if module == "torch._tensor" and name == "_rebuild_from_type_v2":
            return _rebuild_from_type
        if module == "torch":
            if name in _STORAGE_DTYPES:
                return _StorageType(name, _STORAGE_DTYPES[name])
            if name in _FOREIGN_STORAGES:
                raise CheckpointError(f"the checkpoint holds a torch.{name}, a dtype fusegrad does not have")
            if name == "Size":
                return Size
            if name == "device":
                return Device
            if name == "Tensor":
                return Tensor
            dt = D._NAMES.get(name)
            if dt is not None:
                return dt
        if (module, name) in (("torch.nn.parameter", "Parameter"), ("torch.nn", "Parameter")):
            return Parameter
        return None

    def persistent_load(self, pid: Any) -> _LoadedStorage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str) and isinstance(pid[3], str)
                and type(pid[4]) is int):
            raise CheckpointError(f"unknown persistent id in the pickle: {pid!r}"[:200])
        _, kind, key, location, numel = pid
        if key in self.storages:
            return self.storages[key]
        raw = self.zf.read(f"{self.prefix}data/{key}")     # KeyError: a missing record
        itemsize = kind.dtype.np.itemsize
        if numel < 0 or len(raw) != numel * itemsize:
            raise CheckpointError(f"storage record data/{key} holds {len(raw)} bytes, but its {kind.name} "
                                  f"of {numel} elements needs {numel * itemsize}")
        array = aligned_empty((numel,), kind.dtype.np)
        array.view(np.uint8)[:] = np.frombuffer(raw, np.uint8)
        storage = _LoadedStorage(array, kind.dtype, self.device_for(location, array, kind.dtype))
        self.storages[key] = storage
        return storage

    def device_for(self, location: str, array: np.ndarray, dtype: D.DType) -> Device:
        ml = self.map_location
        target: Any = location
        if isinstance(ml, (str, Device)):
            target = ml
        elif isinstance(ml, dict):
            target = ml.get(location, location)
        elif callable(ml):
            moved = ml(Tensor._from_array(array, dtype=dtype), location)
            target = moved.device if isinstance(moved, Tensor) else location
        elif ml is not None:
            raise TypeError(f"map_location should be a str, a device, a dict or a callable, not {type(ml).__name__}")
        try:
            dev = Device(target)
        except (RuntimeError, ValueError):
            raise CheckpointError(f"don't know how to restore data location {target!r}") from None
        if dev.type == "cuda" and not _cuda.is_available():
            raise RuntimeError("Attempting to deserialize object on a CUDA device but fusegrad.cuda.is_available() "
                               "is False. If you are running on a CPU-only machine, please use fusegrad.load with "
                               "map_location=fusegrad.device('cpu') to map your storages to the CPU.")
        return dev

    def rebuild_tensor(self, storage: Any, storage_offset: Any, size: Any, stride: Any,
                       requires_grad: Any = False, backward_hooks: Any = None, metadata: Any = None) -> Tensor:
        if not isinstance(storage, _LoadedStorage):
            raise CheckpointError("a tensor in the pickle is not built on a storage record")
        size, stride = _ints("size", size), _ints("stride", stride)
        offset = _ints("storage offset", (storage_offset,))[0]
        if len(size) != len(stride):
            raise CheckpointError(f"a tensor's size {list(size)} and stride {list(stride)} differ in length")
        t = storage.tensor(offset, size, stride)
        if requires_grad:
            t.requires_grad_(True)
        return t


def _ints(what: str, values: Any) -> tuple[int, ...]:
    if not isinstance(values, (tuple, list)) or not all(type(v) is int and v >= 0 for v in values):
        raise CheckpointError(f"a tensor's {what} is not a sequence of non-negative ints: {values!r}"[:200])
    return tuple(values)


def _rebuild_parameter(data: Any, requires_grad: Any = True, backward_hooks: Any = None, state: Any = None) -> Any:
    if not isinstance(data, Tensor):
        raise CheckpointError("a Parameter in the pickle does not wrap a tensor")
    return Parameter(data, bool(requires_grad))


def _rebuild_from_type(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    t = func(*args)
    if new_type is Parameter and not isinstance(t, Parameter):
        t = Parameter(t, t.requires_grad)
    return t


class _WeightsUnpickler(pickle.Unpickler):
    """Unpickles tensors, storages, dtypes and plain data; refuses every other global by name,
    before anything is imported or called."""

    def __init__(self, file: IO[bytes], loader: _Loader) -> None:
        super().__init__(file)
        self.loader = loader

    def find_class(self, module: str, name: str) -> Any:
        found = self.loader.torch_global(module, name)
        if found is not None:
            return found
        if module == "__builtin__":           # protocol 2 writes Python 2's name for builtins
            module = "builtins"
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("_codecs", "encode"):        # bytes under protocol 2
            return codecs.encode
        if module == "builtins" and name in _SAFE_BUILTINS:
            return getattr(builtins, name)
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        raise UnsafeGlobalError(
            f"Weights only load failed: the checkpoint references the global {module}.{name}, which "
            "fusegrad.load(weights_only=True) does not allow (it loads tensors, dtypes and plain Python data only; "
            "nothing was run). If you trust the file's source, allow that global with "
            "fusegrad.serialization.add_safe_globals([...]), or load with weights_only=False, which can run "
            "arbitrary code.")

    def persistent_load(self, pid: Any) -> Any:
        return self.loader.persistent_load(pid)


class _FullUnpickler(pickle.Unpickler):
    """Any pickle (weights_only=False): torch names resolve to fusegrad's, the rest as pickle does."""

    def __init__(self, file: IO[bytes], loader: _Loader) -> None:
        super().__init__(file)
        self.loader = loader

    def find_class(self, module: str, name: str) -> Any:
        found = self.loader.torch_global(module, name)
        return found if found is not None else super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        return self.loader.persistent_load(pid)


@errors_at_user_line
def load(f: FileLike, map_location: MapLocation = None, pickle_module: Any = None, *,
         weights_only: bool | None = None, mmap: bool | None = None, **pickle_load_args: Any) -> Any:
    """Read a checkpoint written by `fusegrad.save` or `torch.save` (the zip format)."""
    if pickle_module is not None and pickle_module is not pickle:
        raise ValueError("fusegrad.load reads with the standard pickle module only")
    if mmap:
        raise NotImplementedError("fusegrad.load(mmap=True) is not supported: storages are read into memory")
    weights_only = True if weights_only is None else weights_only
    name = os.fspath(f) if isinstance(f, (str, os.PathLike)) else getattr(f, "name", "the file")
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as opened:
            return _load(opened, name, map_location, weights_only)
    if not getattr(f, "seekable", lambda: False)():
        f = io.BytesIO(f.read())
    return _load(f, name, map_location, weights_only)


def _load(f: IO[bytes], name: Any, map_location: MapLocation, weights_only: bool) -> Any:
    try:
        zf = zipfile.ZipFile(f)
    except zipfile.BadZipFile:
        raise CheckpointError(
            f"{name} is not a zip checkpoint: fusegrad.load reads the format torch.save writes since PyTorch 1.6 "
            "(a truncated or damaged file also gives this error)") from None
    with zf:
        pickles = [n for n in zf.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError(f"{name} is a zip archive but not a checkpoint: it has no single <archive>/data.pkl")
        prefix = pickles[0][:-len("data.pkl")]
        loader = _Loader(zf, prefix, map_location)
        unpickler_class = _WeightsUnpickler if weights_only else _FullUnpickler
        try:
            info = zf.getinfo(pickles[0])
            if info.file_size > MAX_PICKLE_BYTES:
                raise CheckpointError(f"data.pkl is {info.file_size} bytes: not a checkpoint's pickle")
            unpickler = unpickler_class(io.BytesIO(zf.read(pickles[0])), loader)
            return unpickler.load()
        except (UnsafeGlobalError, CheckpointError):
            raise
        except Exception as e:
            if not weights_only and not isinstance(e, (zipfile.BadZipFile, KeyError, EOFError)):
                raise
            raise CheckpointError(f"{name} is damaged or not a fusegrad/PyTorch checkpoint: "
                                  f"{type(e).__name__}: {e}"[:500]) from e


# ------------------------------------------------------- pickle.dumps and copy of tensors
# `pickle` and `copy` find these through copyreg (the standard hook for classes defined
# elsewhere): a tensor pickles as its realized values, views of one storage as views of one
# array (pickle's memo keeps that array one object, and unpickling keeps it one storage).

_UNPICKLED: dict[int, tuple[weakref.ref, weakref.ref]] = {}    # id(array) -> (array, the tensor over it)


def _reduce_tensor(t: Tensor) -> tuple[Callable[..., Tensor], tuple]:
    memory, offset, size, stride, location = host_layout(t)
    return _unpickle_tensor, (memory, t.dtype.name, offset, size, stride, t.requires_grad, location)


def _reduce_parameter(p: Parameter) -> tuple[Callable[..., Parameter], tuple]:
    return _unpickle_parameter, (p.detach(), p.requires_grad)


def _unpickle_tensor(memory: np.ndarray, dtype: str, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                     requires_grad: bool, location: str) -> Tensor:
    key = id(memory)
    entry = _UNPICKLED.get(key)
    flat = entry[1]() if entry is not None and entry[0]() is memory else None
    array = memory.reshape(-1)
    if array.__array_interface__["data"][0] % ALIGNMENT:
        array = _aligned(array)
    storage = _LoadedStorage(array, D._NAMES[dtype], Device(location))
    storage.flat = flat
    t = storage.tensor(offset, tuple(size), tuple(stride))
    if flat is None:
        _UNPICKLED[key] = (weakref.ref(memory, lambda _: _UNPICKLED.pop(key, None)), weakref.ref(storage.flat))
    if requires_grad:
        t.requires_grad_(True)
    return t


def _unpickle_parameter(data: Tensor, requires_grad: bool) -> Parameter:
    return Parameter(data, requires_grad)


copyreg.pickle(Tensor, _reduce_tensor)
copyreg.pickle(Parameter, _reduce_parameter)
