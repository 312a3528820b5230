"""The compile cache: compiled objects and programs by key, in memory and on disk.

Keys hash what an entry depends on (program source, target CPU and features, llvmlite and
fusegrad versions), so an entry is never used where it was not compiled for. `OBJECTS` holds
machine code (`<key>.o`); `PROGRAMS` holds compiled `Program`s (`<key>.prog`) as JSON, read
back by `Program.from_json`, which validates every field: nothing on disk is ever unpickled.

Disk entries are trusted only if this user wrote them:
- The folder (FUSEGRAD_CACHE_DIR; default the user cache folder, e.g. ~/.cache/fusegrad;
  FUSEGRAD_CACHE_DIR="" turns the disk cache off) is created 0700. As SSH does with its keys,
  a folder not owned by this user, or writable by group or others, is refused with a warning
  and the disk cache is off for this process; so is one whose key file is unsafe.
- The folder holds a per-user secret, `.key` (32 random bytes, mode 0600, created with the
  folder). Each entry is `MAGIC`, the HMAC-SHA256 (hex) under that secret of the entry's file
  name and payload, a newline, then the payload. An entry whose MAC does not verify (corrupted,
  truncated, written under another key, or renamed from another entry) is discarded with a
  warning and rebuilt; an entry of the old unauthenticated format is discarded quietly.
- Writes go to a `.tmp-*` file renamed into place, removed if the write fails; `.tmp-*` files
  older than `STALE_TMP_SECONDS` are removed when the folder is opened.

Both levels are bounded. On disk, a hit refreshes the entry's mtime and a write that takes
the folder's entries over FUSEGRAD_CACHE_MAX_MB (MiB, default 1024) removes the least
recently used ones. In memory each cache keeps at most `max_entries` objects (LRU). Counts
are in each cache's `stats`.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..compiler.program import Program

MAGIC = b"FGCACHE2\n"
OLD_MAGIC = b"FGOBJ1\n"            # unauthenticated entries of earlier versions
KEY_FILE = ".key"
SECRET_BYTES = 32
TMP_PREFIX = ".tmp-"
STALE_TMP_SECONDS = 600
DEFAULT_MAX_MB = 1024
DEFAULT_MAX_ENTRIES = 4096
_SUFFIXES: set = set()             # entry suffixes of every cache: what eviction may remove


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


def max_disk_bytes() -> int:
    """The bound on the folder's entries: FUSEGRAD_CACHE_MAX_MB mebibytes (default 1 GiB)."""
    value = os.environ.get("FUSEGRAD_CACHE_MAX_MB", "")
    try:
        mb = float(value) if value else DEFAULT_MAX_MB
    except ValueError:
        warnings.warn(f"fusegrad: FUSEGRAD_CACHE_MAX_MB={value!r} is not a number; using {DEFAULT_MAX_MB}",
                      stacklevel=3)
        mb = DEFAULT_MAX_MB
    return max(0, int(mb * 2**20))


def _warn(message: str) -> None:
    warnings.warn(f"fusegrad: {message}", stacklevel=4)


def _remove_quietly(path: str) -> bool:
    try:
        os.remove(path)
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- the folder and its key

class UnsafeFolder(Exception):
    """A cache folder (or its key file) that another user could write."""


def _unsafe(st: os.stat_result, group_other_bits: int, access: str) -> str | None:
    """Why a file with this status must not be trusted, or None."""
    if st.st_uid != os.getuid():
        return f"is owned by uid {st.st_uid}, not by this user (uid {os.getuid()})"
    if st.st_mode & group_other_bits:
        return f"has mode {stat.S_IMODE(st.st_mode):o}; it must not be {access} by group or others"
    return None


def _check_folder(path: str) -> os.stat_result:
    st = os.stat(path)
    problem = "is not a folder" if not stat.S_ISDIR(st.st_mode) else _unsafe(st, 0o022, "writable")
    if problem:
        raise UnsafeFolder(f"the compile cache folder {path} {problem}")
    return st


def _create_secret(folder: str, key_path: str) -> None:
    """Write a fresh secret to `key_path` unless another process got there first."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX)     # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(SECRET_BYTES))
        os.link(tmp, key_path)                                      # atomic, never replaces
    except FileExistsError:
        pass
    finally:
        _remove_quietly(tmp)


def _read_secret(key_path: str) -> bytes:
    fd = os.open(key_path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        problem = "is not a file" if not stat.S_ISREG(st.st_mode) else _unsafe(st, 0o077, "readable or writable")
        secret = f.read(SECRET_BYTES + 1)
    if problem is None and len(secret) != SECRET_BYTES:
        problem = f"holds {len(secret)} bytes, not {SECRET_BYTES}"
    if problem:
        raise UnsafeFolder(f"the compile cache key {key_path} {problem}")
    return secret


def _remove_stale_temps(folder: str) -> None:
    """Remove `.tmp-*` files that a crashed or killed process left behind."""
    cutoff = time.time() - STALE_TMP_SECONDS
    with os.scandir(folder) as entries:
        for e in entries:
            if e.name.startswith(TMP_PREFIX) and e.stat(follow_symlinks=False).st_mtime < cutoff:
                _remove_quietly(e.path)


class Folder:
    """An opened, checked cache folder and this user's secret for its entries."""

    def __init__(self, path: str, secret: bytes, st: os.stat_result):
        self.path, self.secret, self.identity = path, secret, (st.st_dev, st.st_ino)

    @classmethod
    def open(cls, path: str) -> Folder:
        """Create (0700) or check the folder, then create or check its key; UnsafeFolder or
        OSError when it cannot be used."""
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = _check_folder(path)
        key_path = os.path.join(path, KEY_FILE)
        if not os.path.lexists(key_path):
            _create_secret(path, key_path)
        secret = _read_secret(key_path)
        _remove_stale_temps(path)
        return cls(path, secret, st)

    def unchanged(self) -> bool:
        """Is the folder still there, the same one, and still safe?"""
        try:
            st = _check_folder(self.path)
        except (OSError, UnsafeFolder):
            return False
        return (st.st_dev, st.st_ino) == self.identity

    def mac(self, name: str, payload: bytes) -> bytes:
        return hmac.new(self.secret, MAGIC + name.encode() + b"\n" + payload, hashlib.sha256).hexdigest().encode()

    def seal(self, name: str, payload: bytes) -> bytes:
        return MAGIC + self.mac(name, payload) + b"\n" + payload

    def unseal(self, name: str, data: bytes) -> bytes | None:
        """The payload of entry `name` if its MAC verifies, else None."""
        if not data.startswith(MAGIC):
            return None
        digest, newline, payload = data[len(MAGIC):].partition(b"\n")
        if not newline or not hmac.compare_digest(digest, self.mac(name, payload)):
            return None
        return payload

    def entry(self, name: str) -> str:
        return os.path.join(self.path, name)

    def read(self, name: str) -> bytes | None:
        try:
            with open(self.entry(name), "rb") as f:
                return f.read()
        except OSError:
            return None

    def touch(self, name: str) -> None:
        try:
            os.utime(self.entry(name))
        except OSError:
            pass

    def write(self, name: str, payload: bytes) -> None:
        """Write the entry atomically; the temp file is removed if anything fails."""
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=TMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self.seal(name, payload))
            os.replace(tmp, self.entry(name))
        except BaseException:
            _remove_quietly(tmp)
            raise

    def entries(self) -> list:
        """(mtime, size, name) of every cache entry in the folder."""
        found = []
        with os.scandir(self.path) as it:
            for e in it:
                if _is_entry_name(e.name):
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError:                # removed by another process meanwhile
                        continue
                    found.append((st.st_mtime, st.st_size, e.name))
        return found

    def evict(self, limit: int) -> int:
        """Remove least recently used entries until they total at most `limit` bytes."""
        found = self.entries()
        total, removed = sum(size for _, size, _ in found), 0
        for _, size, name in sorted(found):
            if total <= limit:
                break
            removed += _remove_quietly(self.entry(name))
            total -= size
        return removed


def _is_key(key: str) -> bool:
    return len(key) >= 16 and all(c in "0123456789abcdef" for c in key)


def _is_entry_name(name: str) -> bool:
    stem, dot, suffix = name.partition(".")
    return bool(dot) and "." + suffix in _SUFFIXES and _is_key(stem)


_FOLDERS: dict = {}                # path -> Folder, or None where refused or unusable
_FOLDERS_LOCK = threading.Lock()


def open_folder() -> Folder | None:
    """The configured cache folder, opened and checked once per process (reopened if it was
    removed or replaced); None when the disk cache is off."""
    path = cache_dir()
    if path is None:
        return None
    with _FOLDERS_LOCK:
        folder = _FOLDERS.get(path, False)
        if folder is False or (folder is not None and not folder.unchanged()):
            folder = _FOLDERS[path] = _open_or_warn(path)
        return folder


def _open_or_warn(path: str) -> Folder | None:
    try:
        return Folder.open(path)
    except UnsafeFolder as e:
        _warn(f"{e}; the disk compile cache is off for this process")
    except OSError as e:
        _warn(f"cannot use the compile cache folder {path} ({e}); the disk compile cache is off")
    return None


# ---------------------------------------------------------------- the caches

class ObjectCache:
    """Entries by key: in memory (LRU, at most `max_entries`) and on disk as `<key><suffix>`,
    payload bytes decoded by `load` (ValueError if not valid) and encoded by `save`."""

    def __init__(self, suffix: str = ".o", load=bytes, save=bytes, max_entries: int = DEFAULT_MAX_ENTRIES):
        self.suffix, self.load, self.save = suffix, load, save
        self.max_entries = max_entries
        self.memory: OrderedDict = OrderedDict()
        self.stats = {"memory_hits": 0, "disk_hits": 0, "compiles": 0, "corrupt": 0, "stale": 0,
                      "evictions": 0, "disk_evictions": 0}
        self._lock = threading.Lock()
        _SUFFIXES.add(suffix)

    def get(self, key: str):
        obj = self._recall(key)
        if obj is not None:
            return obj
        payload = self._read_disk(key)
        if payload is None:
            return None
        try:
            obj = self.load(payload)
        except ValueError:          # ours, but written by another version: rebuilt
            return None
        self.stats["disk_hits"] += 1
        self._remember(key, obj)
        return obj

    def put(self, key: str, obj) -> None:
        name = self._name(key)
        self._remember(key, obj)
        folder = open_folder()
        if folder is None:
            return
        try:
            folder.write(name, self.save(obj))
            self.stats["disk_evictions"] += folder.evict(max_disk_bytes())
        except (OSError, ValueError, TypeError) as e:   # a full disk must not stop the program
            _warn(f"could not write the compile cache in {folder.path}: {e}")

    def _name(self, key: str) -> str:
        if not _is_key(key):
            raise ValueError(f"cache keys are lowercase hex digests, not {key!r}")
        return key + self.suffix

    def _recall(self, key: str):
        with self._lock:
            obj = self.memory.get(key)
            if obj is not None:
                self.memory.move_to_end(key)
                self.stats["memory_hits"] += 1
        return obj

    def _remember(self, key: str, obj) -> None:
        with self._lock:
            self.memory[key] = obj
            self.memory.move_to_end(key)
            while len(self.memory) > self.max_entries:
                self.memory.popitem(last=False)
                self.stats["evictions"] += 1

    def _read_disk(self, key: str) -> bytes | None:
        """The verified payload of `key` on disk (its mtime refreshed), or None."""
        folder = open_folder()
        if folder is None:
            return None
        name = self._name(key)
        data = folder.read(name)
        if data is None:
            return None
        payload = folder.unseal(name, data)
        if payload is None:
            self._discard(folder, name, data)
            return None
        folder.touch(name)
        return payload

    def _discard(self, folder: Folder, name: str, data: bytes) -> None:
        """Remove an entry that failed verification: quietly if it is of the old format."""
        if data.startswith(OLD_MAGIC):
            self.stats["stale"] += 1
        else:
            self.stats["corrupt"] += 1
            _warn(f"discarding compile cache entry {folder.entry(name)}: it was not written by this "
                  f"user's fusegrad (bad MAC: corrupted or forged); it will be rebuilt")
        _remove_quietly(folder.entry(name))


def _load_program(payload: bytes) -> Program:
    from ..compiler.program import Program  # the runtime depends on the Program type only
    return Program.from_json(payload)


def _save_program(program: Program) -> bytes:
    return program.to_json().encode()


OBJECTS = ObjectCache()                                                      # machine code
PROGRAMS = ObjectCache(".prog", load=_load_program, save=_save_program)     # compiled Programs
