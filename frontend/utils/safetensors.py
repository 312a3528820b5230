"""`fusegrad.utils.safetensors`: state_dicts in the safetensors format that model hubs use, with the
API of `safetensors.torch` (`save_file`, `load_file`, `save`, `load`, `safe_open`), and no
dependency on the `safetensors` package.

The format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
N bytes of UTF-8 JSON `{name: {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
"__metadata__": {str: str}}` padded with spaces to a multiple of 8, then the tensors' bytes,
row-major and little-endian, one after the other. Files are written as the reference writes them,
byte for byte: tensors ordered by dtype (widest first, in the reference's order) then name, compact
JSON, metadata first. A file is read only after its header is checked entirely (`_read_header`):
every violation is a `SafetensorError` saying what is wrong, never a crash or a wrong tensor.
"""
from __future__ import annotations

import io
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple, Union

import numpy as np

from .. import dtypes as D
from .. import trace_hooks as _trace_hooks
from ..device import as_device
from ..prims import layout as _layout
from ..runtime import aligned_empty
from ..tensor import Tensor
from ..tensor_base import TensorBase

__all__ = ["SafetensorError", "save", "save_file", "load", "load_file", "safe_open"]

PathLike = Union[str, "os.PathLike[str]"]
DeviceLike = Union[str, int, Any]

MAX_HEADER_SIZE = 100_000_000             # the reference's limit on N
_METADATA = "__metadata__"
# The dtypes of the format with their widths in bits, in the reference's order (its Rust enum's: the
# order files list tensors in, widest first); the last column is fusegrad's dtype, where it has one.
_FORMAT_DTYPES: tuple[tuple[str, int, D.DType | None], ...] = (
    ("BOOL", 8, D.bool_), ("F4", 4, None), ("F6_E2M3", 6, None), ("F6_E3M2", 6, None), ("U8", 8, D.uint8),
    ("I8", 8, None), ("F8_E5M2", 8, None), ("F8_E4M3", 8, None), ("F8_E8M0", 8, None), ("I16", 16, None),
    ("U16", 16, None), ("F16", 16, D.float16), ("BF16", 16, D.bfloat16), ("I32", 32, D.int32), ("U32", 32, None),
    ("F32", 32, D.float32), ("C64", 64, None), ("F64", 64, D.float64), ("I64", 64, D.int64), ("U64", 64, None),
)
_BITS = {name: bits for name, bits, _ in _FORMAT_DTYPES}
_RANK = {name: rank for rank, (name, _, _) in enumerate(_FORMAT_DTYPES)}
_TO_FUSEGRAD = {name: dt for name, _, dt in _FORMAT_DTYPES if dt is not None}
_FROM_FUSEGRAD = {dt: name for name, dt in _TO_FUSEGRAD.items()}


class SafetensorError(ValueError):
    """A safetensors file (or bytes) that is not valid, or tensors that cannot be saved as one."""


class _Entry(NamedTuple):
    name: str
    dtype: str                 # the format's name: "F32"
    shape: tuple[int, ...]
    begin: int                 # byte offsets in the data section
    end: int


# ---------------------------------------------------------------- saving

def save(tensors: dict[str, TensorBase], metadata: dict[str, str] | None = None) -> bytes:
    """The safetensors bytes of `tensors` (name -> tensor) and optional text `metadata`."""
    header, arrays = _prepare(tensors, metadata)
    return b"".join([header] + [a.tobytes() for a in arrays])


def save_file(tensors: dict[str, TensorBase], filename: PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write `tensors` (name -> tensor) and optional text `metadata` to `filename` as safetensors."""
    header, arrays = _prepare(tensors, metadata)
    with open(filename, "wb") as f:
        f.write(header)
        for a in arrays:
            if a.size:
                f.write(a.reshape(-1).view(np.uint8).data)


def _prepare(tensors: dict[str, TensorBase], metadata: dict[str, str] | None) -> tuple[bytes, list[np.ndarray]]:
    """The header (its length included) and the tensors' data arrays, in file order."""
    if not isinstance(tensors, dict):
        raise ValueError(f"Expected a dict of [str, fusegrad.Tensor] but received {type(tensors)}")
    for name, t in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be str, not {type(name).__name__} ({name!r})")
        if name == _METADATA:
            raise ValueError(f"a tensor cannot be named {_METADATA!r}: the header keeps that name for the metadata")
        if not isinstance(t, TensorBase):
            raise ValueError(f"Key `{name}` is invalid, expected fusegrad.Tensor but received {type(t)}")
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a dict of str to str, not {type(metadata).__name__}")
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"metadata must map str to str; got {k!r}: {v!r} ({type(v).__name__})")
    _check_not_shared(tensors)
    order = sorted(tensors, key=lambda name: (-_RANK[_FROM_FUSEGRAD[tensors[name].dtype]], name))
    header: dict[str, Any] = {} if metadata is None else {_METADATA: dict(metadata)}
    arrays = []
    offset = 0
    for name in order:
        t = tensors[name]
        a = _elements(t)
        header[name] = {"dtype": _FROM_FUSEGRAD[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        arrays.append(a)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text, arrays


def _elements(t: TensorBase) -> np.ndarray:
    """`t`'s buffer elements (bfloat16 as its bits), row-major and little-endian: a view where
    they are already so, else a copy (a non-contiguous view is saved by value)."""
    _trace_hooks.value_read(t)
    t._realize()
    a = t._view_array()
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))


def _check_not_shared(tensors: dict[str, TensorBase]) -> None:
    """The reference's refusal of tensors whose memory overlaps (tied weights, a tensor and its
    view): saved apart, they would load as separate copies. Tensors of one storage that do not
    overlap (slices side by side) are saved, each with its own bytes."""
    spans: dict[int, list[tuple[int, float, str]]] = {}
    for name, t in tensors.items():
        if t.numel() == 0:
            continue
        view = _layout(t).single
        if view is None:           # (not a plain strided view: assume it covers the whole storage)
            low, high = 0, math.inf
        else:
            low = view.offset + sum((n - 1) * s for n, s in zip(view.shape, view.strides) if s < 0)
            high = view.offset + sum((n - 1) * s for n, s in zip(view.shape, view.strides) if s > 0) + 1
        spans.setdefault(id(t._storage), []).append((low, high, name))
    failing = []
    for group in spans.values():
        group.sort()
        cluster, stop = [group[0][2]], group[0][1]
        for low, high, name in group[1:]:
            if low < stop:
                cluster.append(name)
            else:
                failing += [cluster] if len(cluster) > 1 else []
                cluster = [name]
            stop = max(stop, high)
        failing += [cluster] if len(cluster) > 1 else []
    if failing:
        listed = ", ".join("{" + ", ".join(repr(n) for n in sorted(c)) + "}" for c in sorted(failing))
        raise RuntimeError(f"Some tensors share memory, this will lead to duplicate memory on disk and potential "
                           f"differences when loading them again: [{listed}]. Save clones instead (e.g. "
                           f"`{{name: t.clone() for name, t in tensors.items()}}`), or only the full tensors and "
                           f"reslice them after loading.")


# ---------------------------------------------------------------- loading

def load(data: bytes) -> dict[str, Tensor]:
    """The tensors (name -> tensor, by name) in safetensors `data` (bytes or any buffer)."""
    view = memoryview(data).cast("B")
    entries, _, start = _read_header(lambda n, at: bytes(view[at:at + n]), len(view))
    _check_dtypes(entries)
    return {e.name: _tensor(e, _copier(np.frombuffer(view, np.uint8, e.end - e.begin, start + e.begin)))
            for e in sorted(entries, key=lambda e: e.name)}


def _copier(raw: np.ndarray) -> Callable[[np.ndarray], None]:
    def fill(dst: np.ndarray) -> None:
        dst[...] = raw
    return fill


def load_file(filename: PathLike, device: DeviceLike = "cpu") -> dict[str, Tensor]:
    """The tensors (name -> tensor, by name) in safetensors file `filename`, on `device`."""
    with safe_open(filename, framework="pt", device=device) as f:
        _check_dtypes(f._entries.values())
        return f.get_tensors()


class safe_open:  # noqa: N801 - the reference's name
    """A safetensors file opened for reading tensors one at a time (its header is read and checked
    at once; each tensor's bytes when it is asked for):

        with safe_open("model.safetensors", framework="pt") as f:
            w = f.get_tensor("weight")
    """

    def __init__(self, filename: PathLike, framework: str = "pt", device: DeviceLike = "cpu") -> None:
        if framework not in ("pt", "torch", "pytorch", "fusegrad"):
            raise ValueError(f"fusegrad's safe_open makes fusegrad tensors (framework='pt'), not {framework!r}")
        self._device = as_device(device)
        self._file: io.BufferedReader | None = open(filename, "rb")
        try:
            size = os.fstat(self._file.fileno()).st_size
            entries, self._metadata, self._start = _read_header(self._read, size)
        except BaseException:
            self.close()
            raise
        self._entries = {e.name: e for e in entries}

    def _read(self, n: int, at: int) -> bytes:
        assert self._file is not None
        self._file.seek(at)
        return self._file.read(n)

    def __enter__(self) -> safe_open:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        file, self._file = getattr(self, "_file", None), None
        if file is not None:
            file.close()

    def __del__(self) -> None:
        self.close()

    def keys(self) -> list[str]:
        """The tensors' names, sorted."""
        return sorted(self._entries)

    def offset_keys(self) -> list[str]:
        """The tensors' names in the order of their data in the file."""
        return [e.name for e in sorted(self._entries.values(), key=lambda e: (e.begin, e.end))]

    def metadata(self) -> dict[str, str] | None:
        """The header's text metadata (None when the file has none)."""
        return None if self._metadata is None else dict(self._metadata)

    def get_tensor(self, name: str) -> Tensor:
        """The tensor `name`, read from the file now."""
        if self._file is None:
            raise SafetensorError("the file is closed (safe_open was used outside its `with` block)")
        e = self._entries.get(name)
        if e is None:
            raise SafetensorError(f"File does not contain tensor {name}")
        _check_dtypes([e])
        file = self._file
        file.seek(self._start + e.begin)

        def fill(dst: np.ndarray) -> None:
            if file.readinto(dst.data) != dst.size:
                raise SafetensorError(f"the file ended inside tensor {name!r} (it changed after it was opened?)")
        t = _tensor(e, fill)
        return t if self._device.type == "cpu" else t.to(self._device)

    def get_tensors(self) -> dict[str, Tensor]:
        """Every tensor, by name."""
        return {name: self.get_tensor(name) for name in self.keys()}

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())


def _tensor(e: _Entry, fill: Callable[[np.ndarray], None]) -> Tensor:
    """A new tensor for entry `e`, its aligned buffer filled by `fill` (given the buffer's bytes as
    a uint8 array, to fill with the file's little-endian bytes)."""
    dt = _TO_FUSEGRAD[e.dtype]
    buffer = aligned_empty(e.shape, dt.np)
    if buffer.size:
        fill(buffer.reshape(-1).view(np.uint8))
        if sys.byteorder != "little":
            buffer.byteswap(inplace=True)
        if dt is D.bool_:                      # any nonzero byte is True; a bool buffer holds 0 or 1
            np.not_equal(buffer.view(np.uint8), 0, out=buffer)
    return Tensor._from_array(buffer, dtype=dt)


def _check_dtypes(entries: Iterable[_Entry]) -> None:
    for e in entries:
        if e.dtype not in _TO_FUSEGRAD:
            raise SafetensorError(f"tensor {e.name!r} has dtype {e.dtype}, which fusegrad does not have (it reads "
                                  f"{', '.join(_TO_FUSEGRAD)})")


def _read_header(read: Callable[[int, int], bytes], size: int) -> tuple[list[_Entry], dict[str, str] | None, int]:
    """The tensors and metadata of a safetensors file of `size` bytes (`read(n, at)` gives n bytes
    at offset `at`), and where its data starts; SafetensorError for anything invalid."""
    if size < 8:
        raise SafetensorError(f"not a safetensors file: {size} bytes, fewer than the 8 of the header length")
    n = int.from_bytes(read(8, 0), "little")
    if n > MAX_HEADER_SIZE:
        raise SafetensorError(f"header too large: its length says {n} bytes, more than the {MAX_HEADER_SIZE} allowed")
    if 8 + n > size:
        raise SafetensorError(f"invalid header length {n}: the file has only {size - 8} bytes after it "
                              "(truncated, or not a safetensors file)")
    raw = read(n, 8)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as err:
        raise SafetensorError(f"the header is not valid UTF-8: {err}") from None
    except json.JSONDecodeError as err:
        raise SafetensorError(f"the header is not valid JSON: {err}") from None
    if not isinstance(header, dict):
        raise SafetensorError(f"the header is not a JSON object but a {type(header).__name__}")
    metadata = header.pop(_METADATA, None)
    if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise SafetensorError(f"the header's {_METADATA} must be an object of strings, not {metadata!r:.200}")
    entries = [_entry(name, info) for name, info in header.items()]
    data_size = size - 8 - n
    expected = 0
    for e in sorted(entries, key=lambda e: (e.begin, e.end)):
        if e.begin != expected:
            what = "overlaps the tensor before it" if e.begin < expected else "leaves a gap after the tensor before it"
            raise SafetensorError(f"invalid data_offsets [{e.begin}, {e.end}] of tensor {e.name!r}: it {what} "
                                  f"(the data so far ends at {expected})")
        bits = math.prod(e.shape) * _BITS[e.dtype]
        if bits % 8 or bits // 8 != e.end - e.begin:
            raise SafetensorError(f"tensor {e.name!r} has {e.end - e.begin} bytes of data but dtype {e.dtype} and "
                                  f"shape {list(e.shape)} need {bits / 8:g}")
        expected = e.end
    if expected != data_size:
        raise SafetensorError(f"the tensors' data takes {expected} bytes but the file has {data_size} after the "
                              f"header ({'truncated' if data_size < expected else 'bytes no tensor covers'})")
    return entries, metadata, 8 + n


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        names = [k for k in out if [p[0] for p in pairs].count(k) > 1]
        raise SafetensorError(f"the header names {names[0]!r} twice")
    return out


def _entry(name: str, info: Any) -> _Entry:
    """One tensor's header entry, checked: a known dtype, a shape of non-negative ints, two offsets."""
    if not isinstance(info, dict):
        raise SafetensorError(f"the header entry of tensor {name!r} is not an object: {info!r:.200}")
    missing = [k for k in ("dtype", "shape", "data_offsets") if k not in info]
    if missing:
        raise SafetensorError(f"the header entry of tensor {name!r} has no {', '.join(missing)}")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in _BITS:
        raise SafetensorError(f"tensor {name!r} has unknown dtype {dtype!r} (safetensors has "
                              f"{', '.join(_BITS)})")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise SafetensorError(f"tensor {name!r} has an invalid shape {shape!r:.200} (a list of non-negative ints)")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)) or \
            offsets[1] < offsets[0]:
        raise SafetensorError(f"tensor {name!r} has invalid data_offsets {offsets!r:.200} (two non-negative ints, "
                              "begin <= end)")
    return _Entry(name, dtype, tuple(shape), offsets[0], offsets[1])


def _is_count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0
