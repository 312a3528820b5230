"""The machine-code cache: compiled objects by key, in memory and on disk.

The key hashes the program source, the target CPU and its features, and the llvmlite and
fusegrad versions, so a cached object is never used where it was not compiled for. On disk
each entry is one file, `<key>.o`, written atomically (a temp file renamed into place) and
carrying a SHA-256 of its payload: a truncated or corrupted entry is detected, discarded
with a warning, and rebuilt. FUSEGRAD_CACHE_DIR chooses the folder (default: the user cache
folder); FUSEGRAD_CACHE_DIR="" turns the disk cache off.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import warnings

MAGIC = b"FGOBJ1\n"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("fusegrad")
    except PackageNotFoundError:
        return "0+unknown"


VERSION = _version()


def cache_dir() -> str | None:
    value = os.environ.get("FUSEGRAD_CACHE_DIR")
    if value is not None:
        return value or None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fusegrad")


class ObjectCache:
    """Entries by key: bytes on disk as `<key><suffix>`, decoded by `load` and encoded by `save`."""

    def __init__(self, suffix: str = ".o", load=bytes, save=bytes):
        self.suffix, self.load, self.save = suffix, load, save
        self.memory: dict = {}
        self.stats = {"memory_hits": 0, "disk_hits": 0, "compiles": 0, "corrupt": 0}

    def get(self, key: str):
        obj = self.memory.get(key)
        if obj is not None:
            self.stats["memory_hits"] += 1
            return obj
        data = self._read_disk(key)
        if data is None:
            return None
        try:
            obj = self.load(data)
        except Exception:          # written by another version: rebuild
            return None
        self.stats["disk_hits"] += 1
        self.memory[key] = obj
        return obj

    def put(self, key: str, obj) -> None:
        self.memory[key] = obj
        folder = cache_dir()
        if folder is None:
            return
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            data = self.save(obj)
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + hashlib.sha256(data).hexdigest().encode() + b"\n" + data)
            os.replace(tmp, os.path.join(folder, key + self.suffix))
        except OSError as e:   # a read-only or full disk must not stop the program
            warnings.warn(f"fusegrad: could not write the compile cache in {folder}: {e}", stacklevel=2)

    def _read_disk(self, key: str) -> bytes | None:
        folder = cache_dir()
        if folder is None:
            return None
        path = os.path.join(folder, key + self.suffix)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        header, _, rest = data.partition(b"\n")
        digest, _, obj = rest.partition(b"\n")
        if header + b"\n" != MAGIC or hashlib.sha256(obj).hexdigest().encode() != digest:
            self.stats["corrupt"] += 1
            warnings.warn(f"fusegrad: discarding a corrupted compile cache entry {path}; it will be rebuilt",
                          stacklevel=3)
            try:
                os.remove(path)
            except OSError:
                pass
            return None
        return obj


OBJECTS = ObjectCache()                                                 # machine code
PROGRAMS = ObjectCache(".prog", load=pickle.loads, save=pickle.dumps)    # compiled Programs
