"""The compile cache trusts only what this user wrote (runtime/cache.py) and stays bounded.

Programs are stored as validated JSON (never pickle), every entry carries an HMAC under a
per-user key, folders open to other users are refused, and memory and disk are LRU-bounded.
Each test uses its own cache folder (FUSEGRAD_CACHE_DIR via monkeypatch).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import shlex
import time

import numpy as np
import pytest

import fusegrad as torch
from fusegrad import realize
from fusegrad.compiler import compile as compile_graph
from fusegrad.compiler.ir import Graph, Node, float32, int64, make
from fusegrad.compiler.program import Program, ProgramFormatError
from fusegrad.runtime import cache
from fusegrad.runtime.cache import OBJECTS, PROGRAMS, ObjectCache

OLD_MAGIC = b"FGOBJ1\n"
KEY_A, KEY_B = "a" * 64, "b" * 64


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A fresh, private cache folder in use, with empty memory caches."""
    path = tmp_path / "cache"
    path.mkdir(mode=0o700)
    path.chmod(0o700)
    use_folder(monkeypatch, path)
    return path


def use_folder(monkeypatch, path) -> None:
    monkeypatch.setenv("FUSEGRAD_CACHE_DIR", str(path))
    forget_memory()


def forget_memory() -> None:
    """As if in a new process: only the disk cache remembers."""
    OBJECTS.memory.clear()
    PROGRAMS.memory.clear()
    realize.clear_cache()


# ---------------------------------------------------------------- a real program, end to end

W = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(4, 3)


def run_program() -> np.ndarray:
    """A freshly traced @compile function (so its program comes from the caches), run once."""
    @torch.compile
    def f(x, w):
        return ((x @ w).tanh() * 2.0 + 1.0).sum(1)
    return f(torch.tensor(np.arange(8, dtype=np.float32).reshape(2, 4) / 8), torch.tensor(W)).numpy().copy()


EXPECTED = (np.tanh((np.arange(8, dtype=np.float32).reshape(2, 4) / 8) @ W) * 2 + 1).sum(1)


def entries(path, suffix: str) -> list:
    return sorted(p for p in path.iterdir() if p.suffix == suffix)


def payload_of(entry) -> bytes:
    """The payload of an entry file: what follows its magic and digest lines."""
    return entry.read_bytes().split(b"\n", 2)[2]


def write_old_format(entry, payload: bytes) -> None:
    """An entry as earlier versions wrote it: magic, SHA-256 of the payload, payload."""
    entry.write_bytes(OLD_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


class Planted:
    """A pickle that runs a shell command when loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.marker)}",)


def test_program_entries_are_json_and_a_second_run_hits_the_disk(folder):
    np.testing.assert_allclose(run_program(), EXPECTED, rtol=1e-5)
    prog = entries(folder, ".prog")
    assert prog and payload_of(prog[0]).startswith(b"{")          # JSON, not a pickle
    assert json.loads(payload_of(prog[0]))["format"] == "fusegrad-program/1"
    forget_memory()
    programs, objects = PROGRAMS.stats["disk_hits"], OBJECTS.stats["disk_hits"]
    compiles = OBJECTS.stats["compiles"]
    np.testing.assert_allclose(run_program(), EXPECTED, rtol=1e-5)
    assert PROGRAMS.stats["disk_hits"] > programs and OBJECTS.stats["disk_hits"] > objects
    assert OBJECTS.stats["compiles"] == compiles


def test_a_planted_pickle_with_a_correct_old_checksum_is_never_run(folder, tmp_path):
    run_program()
    marker = tmp_path / "pwned"
    for entry in entries(folder, ".prog"):
        write_old_format(entry, pickle.dumps(Planted(marker)))
    forget_memory()
    hits = PROGRAMS.stats["disk_hits"]
    try:
        result = run_program()
    finally:
        assert not marker.exists(), "the planted pickle ran"
    np.testing.assert_allclose(result, EXPECTED, rtol=1e-5)
    assert PROGRAMS.stats["disk_hits"] == hits and PROGRAMS.stats["stale"] >= 1
    assert all(e.read_bytes().startswith(cache.MAGIC) for e in entries(folder, ".prog"))   # rebuilt


def test_a_planted_object_with_a_correct_old_checksum_is_not_loaded(folder):
    run_program()
    for entry in entries(folder, ".o"):
        write_old_format(entry, payload_of(entry))
    forget_memory()
    hits, compiles = OBJECTS.stats["disk_hits"], OBJECTS.stats["compiles"]
    np.testing.assert_allclose(run_program(), EXPECTED, rtol=1e-5)
    assert OBJECTS.stats["disk_hits"] == hits and OBJECTS.stats["compiles"] > compiles


# ---------------------------------------------------------------- the folder and its key

def test_the_folder_is_created_private_with_a_private_key(tmp_path, monkeypatch):
    path = tmp_path / "new" / "cache"
    use_folder(monkeypatch, path)
    ObjectCache().put(KEY_A, b"alpha")
    assert path.stat().st_mode & 0o777 == 0o700
    key = path / ".key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32


def test_a_group_writable_folder_is_refused_and_left_untouched(tmp_path, monkeypatch):
    path = tmp_path / "shared"
    path.mkdir()
    path.chmod(0o770)
    use_folder(monkeypatch, path)
    with pytest.warns(UserWarning, match="group or others"):
        np.testing.assert_allclose(run_program(), EXPECTED, rtol=1e-5)
    assert list(path.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0,
                    reason="simulating another user's folder needs root to chown it")
def test_a_folder_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "theirs"
    path.mkdir(mode=0o700)
    os.chown(path, 1, 1)
    use_folder(monkeypatch, path)
    with pytest.warns(UserWarning, match="owned by uid 1"):
        np.testing.assert_allclose(run_program(), EXPECTED, rtol=1e-5)
    assert list(path.iterdir()) == []


def test_a_key_file_readable_by_others_is_refused(folder):
    key = folder / ".key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)
    with pytest.warns(UserWarning, match="compile cache key"):
        ObjectCache().put(KEY_A, b"alpha")
    assert [p.name for p in folder.iterdir()] == [".key"]


# ---------------------------------------------------------------- entries: MAC, swaps

def test_an_entry_forged_under_another_key_is_rejected(folder):
    store = ObjectCache()
    store.put(KEY_A, b"alpha")
    key = folder / ".key"
    assert key.is_file() and key.stat().st_mode & 0o777 == 0o600
    entry = folder / (KEY_A + ".o")
    forged = hmac.new(os.urandom(32), cache.MAGIC + entry.name.encode() + b"\nforged", hashlib.sha256)
    entry.write_bytes(cache.MAGIC + forged.hexdigest().encode() + b"\nforged")
    store.memory.clear()
    with pytest.warns(UserWarning, match="not written by this user"):
        assert store.get(KEY_A) is None
    assert store.stats["corrupt"] == 1 and not entry.exists()


def test_an_entry_renamed_from_another_key_is_rejected(folder):
    store = ObjectCache()
    store.put(KEY_A, b"alpha")
    store.put(KEY_B, b"beta")
    (folder / (KEY_A + ".o")).write_bytes((folder / (KEY_B + ".o")).read_bytes())
    store.memory.clear()
    with pytest.warns(UserWarning, match="bad MAC"):
        assert store.get(KEY_A) is None
    assert store.get(KEY_B) == b"beta" and store.stats["disk_hits"] == 1


# ---------------------------------------------------------------- bounds and failed writes

def folder_bytes(path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if not p.name.startswith("."))


def test_eviction_keeps_the_folder_under_its_bound(folder, monkeypatch):
    monkeypatch.setenv("FUSEGRAD_CACHE_MAX_MB", str(20_000 / 2**20))
    store = ObjectCache()
    for i in range(40):
        store.put(f"{i:064x}", bytes(1000))
    assert folder_bytes(folder) <= 20_000
    assert store.stats["disk_evictions"] > 0 and (folder / f"{39:064x}.o").exists()


def test_a_disk_hit_makes_an_entry_recently_used(folder, monkeypatch):
    store = ObjectCache()
    names = [f"{i:064x}" for i in range(6)]
    for age, key in enumerate(names[:5]):
        store.put(key, bytes(1000))
        os.utime(folder / (key + ".o"), (time.time() - 100 + age,) * 2)    # names[0] oldest
    size = (folder / (names[0] + ".o")).stat().st_size
    monkeypatch.setenv("FUSEGRAD_CACHE_MAX_MB", str(5.5 * size / 2**20))
    store.memory.clear()
    assert store.get(names[0]) == bytes(1000)
    store.put(names[5], bytes(1000))
    assert (folder / (names[0] + ".o")).exists() and not (folder / (names[1] + ".o")).exists()


def test_the_memory_cache_is_lru_bounded(monkeypatch):
    monkeypatch.setenv("FUSEGRAD_CACHE_DIR", "")
    store = ObjectCache()
    store.max_entries = 3
    for key in (KEY_A, "c" * 64, "d" * 64):
        store.put(key, key)
    assert store.get(KEY_A) == KEY_A
    store.put("e" * 64, 1)
    store.put("f" * 64, 2)
    assert list(store.memory) == [KEY_A, "e" * 64, "f" * 64] and store.stats["evictions"] == 2


def temps(path) -> list:
    return [p.name for p in path.iterdir() if p.name.startswith(".tmp-")]


def test_a_failed_rename_leaves_no_temp_file(folder, monkeypatch):
    store = ObjectCache()
    store.put(KEY_A, b"alpha")

    def refuse(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(cache.os, "replace", refuse)
    with pytest.warns(UserWarning, match="disk full"):
        store.put(KEY_B, b"beta")
    assert temps(folder) == [] and not (folder / (KEY_B + ".o")).exists()


def test_a_failed_encoding_leaves_no_temp_file(folder):
    def unencodable(obj):
        raise ValueError("cannot encode")
    store = ObjectCache(save=unencodable)
    with pytest.warns(UserWarning, match="cannot encode"):
        store.put(KEY_A, b"alpha")
    assert temps(folder) == [] and store.get(KEY_A) == b"alpha"      # still in memory


def test_stale_temp_files_are_removed_when_the_folder_is_opened(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    path.mkdir(mode=0o700)
    (path / ".tmp-old").write_bytes(b"x")
    (path / ".tmp-new").write_bytes(b"x")
    os.utime(path / ".tmp-old", (time.time() - 3600,) * 2)
    use_folder(monkeypatch, path)
    assert ObjectCache().get(KEY_A) is None
    assert temps(path) == [".tmp-new"]


# ---------------------------------------------------------------- Program as JSON

def inp(name, shape, dt=float32):
    return Node("input", (), {"name": name}, tuple(shape), dt)


def const(v, dt=float32):
    return make("const", attrs={"value": v}, shape=(), dtype=dt)


def graphs():
    """A few graphs covering matmul, reductions, scatter and integer checks, in-place params."""
    x, w, b = inp("x", (5, 7)), inp("w", (3, 7)), inp("b", (3,))
    y = make("max", [make("add", [make("matmul", [x, make("permute", [w], {"perm": (1, 0)})]), b]), const(0.0)])
    e = make("exp", [make("sub", [y, make("reduce_max", [y], {"axes": (1,)})])])
    yield Graph("mlp", [x, w, b], [], {"y": y, "p": make("div", [e, make("sum", [e], {"axes": (1,)})])}, [])
    base, index, src = inp("base", (6, 4)), inp("index", (9, 4), int64), inp("src", (9, 4))
    yield Graph("scatter", [base, index, src], [], {"y": make("scatter_add", [base, index, src], {"axis": 0})}, [])
    a, c = inp("a", (10,), int64), inp("c", (10,), int64)
    yield Graph("div", [a, c], [], {"q": make("div", [a, c])}, [])
    p, g = Node("param", (), {"name": "w"}, (300,), float32), inp("g", (300,))
    yield Graph("update", [g], [p], {}, [(p, make("sub", [p, make("mul", [g, const(0.1)])]))])


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_programs_round_trip_through_json_exactly(target):
    for graph in graphs():
        program = compile_graph(graph, target)
        back = Program.from_json(program.to_json())
        assert back == program
        assert all(type(c) is tuple for c in back.checks)
        assert all(type(b.shape) is tuple for b in back.buffers)
        assert all(type(k.reads) is tuple for k in back.kernels)
        assert all(type(launch.args) is tuple for launch in back.launches)


def tampered(change) -> str:
    data = json.loads(compile_graph(next(graphs()), "cpu").to_json())
    change(data)
    return json.dumps(data)


@pytest.mark.parametrize("change", [
    lambda d: d["buffers"][1].update(role="shellcode"),
    lambda d: d["inputs"].append(999),
    lambda d: d["outputs"].update(y=1),                       # slot 1 is an input
    lambda d: d["kernels"][0].update(reads=[0, 1, 5000]),
    lambda d: d["buffers"][1].update(dtype="object"),
    lambda d: d["buffers"][1].update(shape=[5, "7"]),
    lambda d: d["buffers"][1].update(slot=True),
    lambda d: d["buffers"][1].update(extra=1),
    lambda d: d.update(arena_bytes=-1),
    lambda d: d.update(target="wasm"),
    lambda d: d.update(format="fusegrad-program/0"),
], ids=["role", "input slot", "output role", "kernel slot", "dtype", "shape", "bool slot", "extra field",
        "arena", "target", "format"])
def test_invalid_program_json_is_refused(change):
    with pytest.raises(ProgramFormatError):
        Program.from_json(tampered(change))


def test_text_that_is_not_json_is_refused():
    with pytest.raises(ProgramFormatError):
        Program.from_json(b"\x80\x04not json")
