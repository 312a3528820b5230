"""Guards of compiled functions: the Python-level state a trace baked in, and its names.

A trace runs Python code once; whatever Python state it read is frozen into the program.
So while tracing, the tracer records (through trace_hooks) what it read besides the
function's tensor arguments:
- every tensor created before the call whose value the trace used: which storage the tensor
  object held, and its `requires_grad` (`TensorGuard`);
- every module the trace called or took a parameter, buffer or submodule from: which objects
  sit in its slots, its `training` flag and its other plain attributes (`ModuleGuard`);
- values that library code declares (an optimizer's parameter membership: `ValueGuard`).
Global grad mode and the default dtype are part of the call's signature instead. Plain Python
values the function reads from its own globals and closure (`scale = 2.0`) are checked at
every call, as are an optimizer's hyperparameters.

Checking every guard at every call would cost time in the hot loop, so a replay re-checks
them only when `trace_hooks.EPOCH` moved: module attribute assignment, `train()`/`eval()`,
`requires_grad_()`, `.data = ...` and `add_param_group` bump it. A failing guard makes the
call retrace, and `describe` says in words what changed ("net.0.weight was rebound",
"net.1.training changed True -> False").
"""
from __future__ import annotations

import dis
import functools

_PLAIN = (bool, int, float, str, type(None))


def _plain(value) -> bool:
    if isinstance(value, tuple):
        return all(_plain(x) for x in value)
    return isinstance(value, _PLAIN)


class TensorGuard:
    """A captured tensor still holds the same storage, with the same requires_grad."""
    __slots__ = ("tensor", "storage", "requires_grad")

    def __init__(self, tensor):
        self.tensor, self.storage, self.requires_grad = tensor, tensor._storage, tensor._requires_grad

    def holds(self) -> bool:
        t = self.tensor
        return t._storage is self.storage and t._requires_grad == self.requires_grad

    def describe(self, names: dict) -> str:
        label = names.get(id(self.storage), "a captured tensor")
        if self.tensor._storage is not self.storage:
            return f"{label} was rebound (.data assigned)"
        return f"requires_grad of {label} changed {self.requires_grad} → {self.tensor._requires_grad}"


def module_state(module) -> tuple:
    """What a trace of `module` may have baked in: the identities in its parameter, buffer and
    submodule slots, and its plain attributes (`training`, `p`, `eps`, ...)."""
    d = module.__dict__
    slots = tuple((table, name, id(value)) for table in ("_parameters", "_buffers", "_modules")
                  for name, value in d[table].items())
    plain = tuple((k, v) for k, v in d.items() if not k.startswith("_") and _plain(v))
    return slots, plain


class ModuleGuard:
    """A module's slots and plain attributes are as they were when traced."""
    __slots__ = ("module", "state")

    def __init__(self, module):
        self.module, self.state = module, module_state(module)

    def holds(self) -> bool:
        return module_state(self.module) == self.state

    def describe(self, names: dict) -> str:
        label = names.get(id(self.module), type(self.module).__name__)
        (old_slots, old_plain), (new_slots, new_plain) = self.state, module_state(self.module)
        new_plain_d = dict(new_plain)
        for k, v in old_plain:
            if k not in new_plain_d:
                return f"{label}.{k} was deleted"
            if new_plain_d[k] != v:
                return f"{label}.{k} changed {v!r} → {new_plain_d[k]!r}"
        added = set(new_plain_d) - {k for k, _ in old_plain}
        if added:
            return f"{label}.{sorted(added)[0]} was set"
        old_ids = {(table, name): i for table, name, i in old_slots}
        new_ids = {(table, name): i for table, name, i in new_slots}
        for slot in list(old_ids) + list(new_ids):
            if old_ids.get(slot) != new_ids.get(slot):
                return f"{label}.{slot[1]} was rebound"
        return f"{label} changed"


class ValueGuard:
    """`read()` still gives `expected` (a value declared by library code with `what` it is)."""
    __slots__ = ("read", "expected", "what")

    def __init__(self, read, expected, what: str):
        self.read, self.expected, self.what = read, expected, what

    def holds(self) -> bool:
        return self.read() == self.expected

    def describe(self, names: dict) -> str:
        return f"{self.what} changed"


_MISSING = object()


@functools.lru_cache(maxsize=1024)
def global_names(code) -> tuple:
    """The names `code` (and the functions and comprehensions nested in it) loads as globals;
    `co_names` alone would also list attribute names (`optimizer.step`)."""
    names = {i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            names.update(global_names(const))
    return tuple(sorted(names))


def plain_capture_guards(fn) -> list:
    """ValueGuards for the plain Python values (numbers, strings, tuples of them) that `fn`
    reads from its globals and closure cells: a trace bakes them in as constants."""
    guards: list[ValueGuard] = []
    code = getattr(fn, "__code__", None)
    if code is None:
        return guards
    for name in global_names(code):
        value = fn.__globals__.get(name, _MISSING)
        if value is not _MISSING and _plain(value):
            guards.append(ValueGuard(lambda g=fn.__globals__, n=name: g.get(n, _MISSING), value, f"global {name}"))
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if _plain(value):
            guards.append(ValueGuard(lambda c=cell: c.cell_contents, value, f"captured variable {name}"))
    return guards


def first_failing(guards):
    """The first guard that no longer holds, or None."""
    for g in guards:
        if not g.holds():
            return g
    return None


# ---------------------------------------------------------------- naming captured state

def roots_of(fn, arguments=()) -> dict:
    """Objects the function can reach by name: its globals and closure cells that it uses,
    its bound object (`self`), and module/optimizer arguments."""
    roots = {}
    code = getattr(fn, "__code__", None)
    if code is not None:
        for name in global_names(code):
            if name in fn.__globals__:
                roots[name] = fn.__globals__[name]
        for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
            try:
                roots[name] = cell.cell_contents
            except ValueError:
                pass
    if hasattr(fn, "__self__"):
        roots["self"] = fn.__self__
    for name, value in arguments:
        roots.setdefault(name, value)
    return roots


def state_names(fn, tensor_type, arguments=()) -> dict:
    """id(storage or module) -> a readable name ("net.0.weight", "net.1", "opt.state[0].exp_avg")
    for the tensors and modules the function can reach through its roots."""
    names: dict = {}

    def name(tensor, label):
        names.setdefault(id(tensor._storage), label)
        if tensor._grad is not None:
            names.setdefault(id(tensor._grad._storage), f"{label}.grad")

    for prefix, obj in roots_of(fn, arguments).items():
        if isinstance(obj, tensor_type):
            name(obj, prefix)
        elif callable(getattr(obj, "named_modules", None)) and callable(getattr(obj, "named_buffers", None)):
            for n, m in obj.named_modules():
                names.setdefault(id(m), f"{prefix}.{n}" if n else prefix)
            for n, t in list(obj.named_parameters()) + list(obj.named_buffers()):
                name(t, f"{prefix}.{n}")
        elif isinstance(getattr(obj, "state", None), dict) and hasattr(obj, "param_groups"):
            for i, st in enumerate(obj.state.values()):
                for k, t in (st.items() if isinstance(st, dict) else ()):
                    if isinstance(t, tensor_type):
                        names.setdefault(id(t._storage), f"{prefix}.state[{i}].{k}")
    return names
