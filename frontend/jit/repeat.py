"""Many steps in one native call: `CompiledFunction.repeat(n, *args, stacked=...)`.

A training loop calls its compiled step n times, and each call is a replay: the signature
key, guards, binding, one native call and result tensors, some 20 µs of Python for a step
whose kernels may take a microsecond. `repeat` runs the n steps in one native call: the
runner repeats the step's program n times (codegen/cpu_runner.py), and the state the step
updates in place (parameters, optimizer moments and step counts, the random generator)
carries from step to step in its buffers, as it does from call to call. An argument is the
same in every step, or stacked: argument x of step i is x[i], along a first dimension of
length n, its table slot moved on by one slice after each step. Each tensor the step
returns comes back stacked, row i from step i (as jax.lax.scan returns its per-step
results); its other results are those of the trace.

No Python runs between the steps, so the guards on Python state (jit/guards.py) are checked
once, before the first: the steps are the calls a loop would make while nothing in Python
changes (no learning-rate scheduler stepping between them, say). A profiler sees the steps
as one native call.

The step's program must exist first: steps run one call each until the signature has a
program it keeps (the first step traces it; a step that creates optimizer state traces
once more), then the rest run in one native call. Where one native call cannot stand for
the calls, every step runs as a call of its own, with the same results (logged): a step that
computes gradients of its own tensor arguments (each call adds them to its argument's
.grad), a step on a GPU.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..realize import LOCK
from ..source import errors_at_user_line
from ..tensor import Tensor
from .devices import input_buffer, input_buffers, is_input
from .replay import Variant, _unshare
from .signature import call_key, flatten, unflatten

if TYPE_CHECKING:
    from .function import CompiledFunction

log = logging.getLogger("fusegrad")


@errors_at_user_line
def repeat(cf: CompiledFunction, n: int, args: tuple, kwargs: dict, stacked: bool | Iterable[str]) -> Any:
    """`cf`'s step run n times (module doc); its returned tensors stacked along a new dim 0."""
    steps = _step_count(cf, n)
    arguments = cf.signature.bind(*args, **kwargs).arguments
    stacked_names = _stacked_names(cf, arguments, stacked, steps)
    done: list = []                  # results of the steps run as calls of their own
    while len(done) < steps:
        step_args, step_kwargs = _step_arguments(cf, arguments, stacked_names, len(done))
        key, leaves, names = call_key(cf, step_args, step_kwargs)
        v = cf._replayable(key)
        if v is not None and _runs_natively(cf, v):
            with LOCK:
                arrays = _run_steps(cf, v, steps - len(done), len(done), arguments, stacked_names, leaves, names)
                rest = cf._outputs(v, arrays)
            return _joined(done, rest)
        done.append(cf(*step_args, **step_kwargs))
    return _joined(done, None)


def _step_count(cf: CompiledFunction, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{cf.name}.repeat: the number of steps must be a positive whole number, got {n!r}")
    return int(n)


def _stacked_names(cf: CompiledFunction, arguments: dict, stacked: bool | Iterable[str], steps: int) -> list[str]:
    """The arguments each step takes a slice of, checked: tensors whose dim 0 has `steps` rows."""
    if stacked is True:
        names = [name for name, x in arguments.items() if isinstance(x, Tensor) and name not in cf.static]
    elif stacked is False:
        names = []
    else:
        names = [stacked] if isinstance(stacked, str) else list(stacked)
    for name in names:
        if name not in arguments:
            raise TypeError(f"{cf.name}.repeat: stacked argument {name!r} is not an argument of this call "
                            f"(its arguments: {', '.join(arguments)})")
        x = arguments[name]
        if not isinstance(x, Tensor) or name in cf.static:
            raise TypeError(f"{cf.name}.repeat: stacked argument {name!r} must be a tensor argument (not static), "
                            f"got {type(x).__name__}")
        if x.ndim == 0 or x.shape[0] != steps:
            raise ValueError(f"{cf.name}.repeat: stacked argument {name!r} has shape {tuple(x.shape)}; "
                             f"step i takes {name}[i], so its first dimension must be the {steps} steps")
    return names


def _step_arguments(cf: CompiledFunction, arguments: dict, stacked: list[str], i: int) -> tuple[tuple, dict]:
    """The positional and keyword arguments of step i."""
    step = {name: (x[i] if name in stacked else x) for name, x in arguments.items()}
    bound = cf.signature.bind_partial()
    bound.arguments.update(step)
    return bound.args, bound.kwargs


def _runs_natively(cf: CompiledFunction, v: Variant) -> bool:
    """Whether the steps of `v` can run in one native call (module doc), logged if not."""
    why = ("it runs on a GPU" if v.device is not None else
           "it computes gradients of its own arguments" if v.arg_grads else None)
    if why is not None:
        log.info("%s.repeat: every step is a call of its own: %s", cf.name, why)
    return why is None


def _run_steps(cf: CompiledFunction, v: Variant, steps: int, first: int, arguments: dict,
               stacked: list[str], leaves: list, names: list) -> list:
    """Steps first .. first + steps - 1 as one native call; the returned tensors' stacked rows."""
    cf.stats["replays"] += 1
    for refresh in v.refreshers:
        refresh()
    v.bind_params()
    inputs = input_buffers(leaves, cf.static, names)
    advances = []
    position = 0
    for name, arg_leaves in zip(names, leaves):
        if name in cf.static:
            continue
        for x in arg_leaves:
            if not is_input(x):
                continue
            if name in stacked:
                whole = input_buffer(arguments[name])          # (n, ...) contiguous
                inputs[position] = whole[first, ...]
                advances.append((v.program.inputs[position], whole[0, ...].nbytes))
            position += 1
    v.bind_inputs(inputs)
    stacked_outputs = _stacked_outputs(v)
    result, moved = _bind_outputs(v, steps, stacked_outputs)
    v.exe.call_repeated(steps, advances + moved, first)
    _after_steps(v, result, stacked_outputs)
    v.settle(result)
    return [result[name] for name in v.output_names]


def _stacked_outputs(v: Variant) -> set[str]:
    """Names of the outputs sharing a buffer slot with a returned tensor (written every step)."""
    program = v.program
    slots = {program.outputs[name] for name in v.output_names}
    return {name for name, slot in program.outputs.items() if slot in slots}


def _bind_outputs(v: Variant, steps: int, stacked: set[str]) -> tuple[dict, list]:
    """Bind the outputs: the slot of a returned tensor to the rows of a (steps, ...) buffer,
    moved on a row per step; the others as a single call binds them. Returns the arrays by
    name (every name of a returned tensor's slot: its rows) and the slot advances."""
    exe = v.exe
    given = {name: s.buffer for name, s in v.escaped if s.buffer is not None} or None
    result = exe.bind_outputs(given)
    rows_of: dict[int, np.ndarray] = {}
    moved = []
    for name, slot, shape, dtype, nbytes in exe.out_specs:
        if name in stacked:
            rows = rows_of.get(slot)
            if rows is None:
                rows = rows_of[slot] = np.empty((steps, *shape), dtype)
                exe.bind(slot, rows)
                moved.append((slot, nbytes))
            result[name] = rows
    return result, moved


def _after_steps(v: Variant, result: dict, stacked: set[str]) -> None:
    """Give each output its own array: a tensor returned twice a copy of the rows; state
    written with a returned tensor the last row; names of one other slot (as a call does)."""
    seen: set[int] = set()
    for name in v.output_names:
        rows = result[name]
        if id(rows) in seen:
            result[name] = rows.copy()
        seen.add(id(rows))
    for name, s in v.escaped:
        if name in stacked:
            last = result[name][-1]
            if s.buffer is None:
                result[name] = last.copy()
            else:
                np.copyto(s.buffer, last)
                result[name] = s.buffer
    others = [names for names in v.shared_outputs if not stacked & set(names)]
    if others:
        given = {name: s.buffer for name, s in v.escaped if s.buffer is not None} or None
        _unshare(result, others, given)


def _joined(done: list, rest: Any) -> Any:
    """The steps' results as one: each returned tensor stacked along a new dim 0, in step
    order; other values from the last step."""
    per_step = []
    for out in done:
        leaves: list = []
        tree = flatten(out, leaves)
        per_step.append(leaves)
    if rest is not None:
        leaves = []
        tree = flatten(rest, leaves)
    else:
        leaves = per_step[-1]
    joined = []
    for k, x in enumerate(leaves):
        if not isinstance(x, Tensor):
            joined.append(x)
            continue
        rows = [step[k]._storage.buffer[None] for step in per_step]      # results of calls: computed
        if rest is not None:
            if not rows:
                joined.append(x)
                continue
            rows.append(x._storage.buffer)
        joined.append(_tensor_like(x, np.concatenate(rows)))
    return unflatten(tree, iter(joined))


def _tensor_like(x: Tensor, array: np.ndarray) -> Tensor:
    t = Tensor._from_array(array, dtype=x.dtype)
    t._storage.program = x._storage.program
    return t
