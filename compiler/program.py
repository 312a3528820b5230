"""`Program`: what the compiler hands the runtime. Plain data, no graphs, picklable.

A program is the source text of one module (LLVM IR for the CPU, PTX for CUDA) with its
entry point (CPU) or its launches in order (CUDA), the buffer table it expects (slot, role,
shape, dtype, arena offset), the checks its kernels can fail with, per-kernel facts for
dumps, and the text of every compiler stage. On the CPU the source is the runner module
(the same for every program, codegen/cpu_runner.py), and the kernels are in `modules`: one
LLVM module per distinct kernel, each with the structural key that the runtime caches its
machine code by (codegen/cpu_program.py); `calls` says which run, in order, on which slots.

`Program.to_json()` / `Program.from_json()` store a program as data only (the disk cache
never unpickles): JSON with a format tag, read back field by field with every type, slot,
role, dtype and arena range checked, so text that is not a program this code wrote raises
`ProgramFormatError` instead of building something the runtime would trip over.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .ir.dtypes import ALL as _DTYPES

STAGES = ("graph", "passes", "kernels", "llvm", "ptx")
ROLES = ("error", "input", "param", "output", "temp")
TARGETS = ("cpu", "cuda")
FORMAT = "fusegrad-program/1"
LLVM_PIPELINES = ("O3", "light")        # CPU: runtime/objects.py's PIPELINES
HOST_CALLS = ("fg_host_all_reduce",)   # CPU: table slot len(buffers) + i holds host call i's address


@dataclass(frozen=True)
class BufferInfo:
    slot: int
    role: str            # error | input | param | output | temp
    name: str
    shape: tuple
    dtype: str           # dtype name, e.g. 'float32'
    offset: int = -1     # byte offset in the arena (temps)


@dataclass(frozen=True)
class KernelInfo:
    name: str
    kind: str
    space: tuple
    fused: tuple         # '%3 mul' style names of the nodes it evaluates
    reads: tuple         # buffer slots
    writes: tuple
    bytes_moved: int
    parallel: bool
    reason: str          # why the kernel ends where it does, in words (fuse.py's Kernel.reasons)
    flops: int = 0       # arithmetic operations (pipeline._kernel_info says what counts)
    function: str = ""   # CPU: the symbol of its code (fgk_<key>), shared by kernels of one structure


@dataclass(frozen=True)
class Call:
    """One kernel of a CPU program as the runner calls it: its phase functions in order (the
    symbols its module exports), which of them run on every thread, the table slots of its
    arguments (0, the error word, first; host calls after the buffers, HOST_CALLS), the most
    threads it may use (0: any) and the program's id of its first check (-1: cannot fail)."""
    kernel: int           # index in Program.kernels (its profile slots)
    phases: tuple
    parallel: tuple
    args: tuple
    max_threads: int = 0
    first_check: int = -1


@dataclass(frozen=True)
class KernelModule:
    """One kernel module of a CPU program: LLVM IR text, the structural key its machine code
    is cached by (equal keys: equal code) and the LLVM pipeline that optimises it
    (LLVM_PIPELINES)."""
    key: str
    source: str
    pipeline: str = "O3"


@dataclass(frozen=True)
class Launch:
    """One kernel launch of a CUDA program: the PTX entry `function` of schedule kernel
    `kernel` (a scatter takes two or three), called with the device pointers of buffer-table
    slots `args` (slot 0, the error word, first), then, if `scratch_bytes`, a pointer to that
    much device memory that the runtime zeroes once and keeps for this launch. Kernels stride
    over blocks, so any grid of at most `grid` blocks of `block` threads covers the work."""
    function: str
    kernel: str
    args: tuple
    grid: int
    block: int
    scratch_bytes: int = 0


@dataclass
class Program:
    name: str
    target: str                      # 'cpu' | 'cuda'
    source: str                      # LLVM IR text or PTX text
    entry: str                       # CPU: the function running every kernel; CUDA: ''
    buffers: list
    inputs: list                     # slots, in the graph's input order
    params: list                     # slots, in the graph's param order
    outputs: dict                    # output name -> slot
    arena_bytes: int
    checks: list                     # (error code, message, source line); index = check id
    kernels: list                    # KernelInfo, in launch order
    stages: dict = field(default_factory=dict)   # stage name -> text
    key: str = ""                    # hash of the source, target and versions (cache key)
    launches: list = field(default_factory=list)   # CUDA: Launch records, in order
    modules: list = field(default_factory=list)    # CPU: KernelModule per distinct kernel
    calls: list = field(default_factory=list)      # CPU: Call per kernel that runs, in order

    @property
    def num_kernels(self) -> int:
        return len(self.kernels)

    def text(self, stage: str) -> str:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
        if stage not in self.stages:
            raise ValueError(f"stage {stage!r} was not produced for target {self.target!r}")
        return self.stages[stage]

    def slots(self, role: str) -> list:
        return [b for b in self.buffers if b.role == role]

    def to_json(self) -> str:
        """The program as JSON text (data only); `Program.from_json` reads it back equal."""
        return json.dumps({"format": FORMAT, **asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text) -> Program:
        """The program `to_json` wrote (str or UTF-8 bytes), validated; ProgramFormatError
        for anything else."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:      # JSONDecodeError, UnicodeDecodeError
            raise ProgramFormatError(f"not a JSON program: {e}") from None
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            raise ProgramFormatError(f"not a {FORMAT} record")
        program = _build(cls, _PROGRAM, data, "program")
        _check_consistent(program)
        return program


class ProgramFormatError(ValueError):
    """Serialized text that is not a valid Program."""


# ---------------------------------------------------------------- reading JSON back, checked

def _fail(what: str, value) -> None:
    raise ProgramFormatError(f"{what}: unexpected value {repr(value)[:80]}")


def _int(value, what: str, low: int = 0) -> int:
    if type(value) is not int or value < low:
        _fail(what, value)
    return value


def _positive(value, what: str) -> int:
    return _int(value, what, low=1)


def _offset(value, what: str) -> int:
    return _int(value, what, low=-1)


def _str(value, what: str) -> str:
    if type(value) is not str:
        _fail(what, value)
    return value


def _bool(value, what: str) -> bool:
    if type(value) is not bool:
        _fail(what, value)
    return value


def _one_of(choices: tuple):
    def check(value, what: str) -> str:
        if value not in choices:
            _fail(what, value)
        return value
    return check


def _list(value, what: str) -> list:
    if type(value) is not list:
        _fail(what, value)
    return value


def _list_of(item):
    def check(value, what: str) -> list:
        return [item(v, f"{what}[{i}]") for i, v in enumerate(_list(value, what))]
    return check


def _tuple_of(item):
    def check(value, what: str) -> tuple:
        return tuple(_list_of(item)(value, what))
    return check


def _dict_of(item):
    def check(value, what: str) -> dict:
        if type(value) is not dict:
            _fail(what, value)
        return {k: item(v, f"{what}[{k!r}]") for k, v in value.items()}
    return check


def _optional_str(value, what: str):
    return None if value is None else _str(value, what)


def _check_entry(value, what: str) -> tuple:
    """One entry of `checks`: (error code, message, source line or None)."""
    if len(_list(value, what)) != 3:
        _fail(what, value)
    code, message, loc = value
    return (_int(code, f"{what}.code"), _str(message, f"{what}.message"), _optional_str(loc, f"{what}.loc"))


def _record(cls, fields: dict):
    def check(value, what: str):
        return _build(cls, fields, value, what)
    return check


def _build(cls, fields: dict, value, what: str):
    """`cls(**value)` with each field read by its checker; exactly the fields of `cls`."""
    if type(value) is not dict or set(value) != set(fields):
        _fail(what, value)
    return cls(**{name: read(value[name], f"{what}.{name}") for name, read in fields.items()})


_DTYPE_SIZES = {d.name: d.itemsize for d in _DTYPES}
_SIZES = _tuple_of(_int)

_BUFFER = {"slot": _int, "role": _one_of(ROLES), "name": _str, "shape": _SIZES,
           "dtype": _one_of(tuple(_DTYPE_SIZES)), "offset": _offset}
_KERNEL = {"name": _str, "kind": _str, "space": _SIZES, "fused": _tuple_of(_str), "reads": _SIZES,
           "writes": _SIZES, "bytes_moved": _int, "parallel": _bool,
           "flops": _int, "reason": _str, "function": _str}
_LAUNCH = {"function": _str, "kernel": _str, "args": _SIZES, "grid": _positive, "block": _positive,
           "scratch_bytes": _int}
_MODULE = {"key": _str, "source": _str, "pipeline": _one_of(LLVM_PIPELINES)}
_CALL = {"kernel": _int, "phases": _tuple_of(_str), "parallel": _tuple_of(_bool), "args": _SIZES,
         "max_threads": _int, "first_check": _offset}
_PROGRAM = {
    "name": _str, "target": _one_of(TARGETS), "source": _str, "entry": _str,
    "buffers": _list_of(_record(BufferInfo, _BUFFER)),
    "inputs": _list_of(_int), "params": _list_of(_int), "outputs": _dict_of(_int),
    "arena_bytes": _int, "checks": _list_of(_check_entry),
    "kernels": _list_of(_record(KernelInfo, _KERNEL)),
    "stages": _dict_of(_str), "key": _str,
    "launches": _list_of(_record(Launch, _LAUNCH)),
    "modules": _list_of(_record(KernelModule, _MODULE)),
    "calls": _list_of(_record(Call, _CALL)),
}


def _check_consistent(p: Program) -> None:
    """Slots name real buffers of the right role, slot 0 is the error word, temps fit the arena."""
    if not p.buffers or p.buffers[0].role != "error":
        raise ProgramFormatError("buffer 0 must be the error word")
    for i, b in enumerate(p.buffers):
        if b.slot != i:
            raise ProgramFormatError(f"buffer {i} has slot {b.slot}")
        if b.role == "temp":
            _check_in_arena(p, b)
    _check_roles(p, p.inputs, "input", "inputs")
    _check_roles(p, p.params, "param", "params")
    _check_roles(p, p.outputs.values(), "output", "outputs")
    for k in p.kernels:
        _check_roles(p, k.reads + k.writes, None, f"kernel {k.name}")
    for launch in p.launches:
        _check_roles(p, launch.args, None, f"launch {launch.function}")
    for call in p.calls:
        _check_call(p, call)


def _check_roles(p: Program, slots, role: str | None, what: str) -> None:
    for slot in slots:
        if slot >= len(p.buffers) or (role is not None and p.buffers[slot].role != role):
            raise ProgramFormatError(f"{what}: slot {slot} is not a buffer of role {role or 'any'}")


def _check_call(p: Program, call: Call) -> None:
    """A call names a kernel, one parallel flag per phase, the error word first and then slots
    of the table (buffers, then host calls), and checks of the program."""
    if call.kernel >= len(p.kernels) or len(call.parallel) != len(call.phases) or not call.phases:
        raise ProgramFormatError(f"call of kernel {call.kernel}: phases do not match")
    if not call.args or call.args[0] != 0 or max(call.args) >= len(p.buffers) + len(HOST_CALLS):
        raise ProgramFormatError(f"call of kernel {call.kernel}: arguments outside the table")
    if call.first_check >= len(p.checks):
        raise ProgramFormatError(f"call of kernel {call.kernel}: check {call.first_check} does not exist")


def _check_in_arena(p: Program, b: BufferInfo) -> None:
    size = _DTYPE_SIZES[b.dtype]
    for n in b.shape:
        size *= n
    if b.offset < 0 or b.offset + size > p.arena_bytes:
        raise ProgramFormatError(f"temp buffer {b.slot} ({size} bytes at {b.offset}) is outside the arena")
