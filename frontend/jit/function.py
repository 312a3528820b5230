"""`@fusegrad.compile`: trace a whole function once per signature, replay it as one native call.

This module holds CompiledFunction and `compile()`; the tracer (tracer.py), call signatures
(signature.py), reading the graph off a trace (graph.py), replay (replay.py), GPU glue
(devices.py) and guards (guards.py) sit beside it.

Tracing runs the Python function on lazy tensors whose argument nodes are graph inputs, while
a Tracer listens to trace_hooks. The graph is then read off what the call left behind:
- outputs: the returned tensors, and "escaped" state: storages created during the call that
  are still referenced afterwards (new `.grad` tensors, optimizer state made by a first step);
- assigns: storages that existed before the call and were updated in place (parameters,
  optimizer moments, step counters, the random generator), and escaped state that started
  from a computed value (zeros) and was then updated;
- leaves: the argument inputs, and computed values the function read (captured state such as
  parameters, or constants), bound to their storages' buffers at every call.
The first run computes everything; afterwards each storage holds its new value as a buffer
again, and `.grad` assignments made during the trace are re-applied after every replay.

A replay checks the signature (tensor shapes, dtypes, devices, requires_grad; values of the
other arguments), binds buffers and makes one call into the compiled program. Python side
effects other than tensor state happen only while tracing, as in JAX. A trace that created
state is traced once more on the next call: a first optimizer step builds state that later
steps update, and the program is kept only once two traces agree.

A function runs on the device of its tensors, as its ops do eagerly: trace inputs carry
their arguments' devices, and a trace of CUDA tensors compiles for target "cuda" (one CUDA
program, a sequence of launches) whose replay binds device buffers and returns CUDA
tensors. Its arguments, captured state and results must all be on that one device, but
for CPU scalars (a learning rate, a step count), which HostScalars mirrors there.
"""
from __future__ import annotations

import functools
import inspect
import logging
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from .. import compiler, runtime, trace_hooks
from .. import placement as _placement
from ..autograd.engine import accumulate
from ..compiler.ir import Node, fmt_type, print_graph
from ..dtypes import float64
from ..programs import compile_cached, dump
from ..realize import LOCK, realize_later_now
from ..source import warn
from ..storage import Storage, buffer_of
from ..tensor import Tensor
from ..traced_float import FloatValueRead, TracedFloat
from .devices import input_buffers
from .graph import compute_old_value, const_key, graph_of
from .guards import plain_capture_guards, state_names
from .repeat import repeat as _repeat
from .replay import Variant, restore_old_leaf
from .signature import call_key, flatten, reason, runtime_float, unflatten
from .tracer import Tracer, TracingError, optimizer_states, undo_trace

if TYPE_CHECKING:
    import numpy as np

    from ..compiler.ir import Graph
    from ..compiler.program import KernelInfo, Program
    from ..device import device as Device
    from ..runtime.cuda import DeviceBuffer
    from ..storage import Storage as StorageT

log = logging.getLogger("fusegrad")

MAX_GUARD_VARIANTS = 8     # programs kept per signature for different Python states (train/eval)
MAX_SIGNATURES = 64        # signatures kept per compiled function (least recently used dropped)

P = ParamSpec("P")
R = TypeVar("R")

# A call's key (signature.call_key): the arguments' structure, shapes, dtypes, devices and
# static values, with the global modes (grad enabled, default dtype).
CallKey = tuple


class CompiledFunction(Generic[P, R]):
    """`fn` compiled (`fusegrad.compile`): called like `fn`, returning what `fn` returns, with
    tensors computed by one native call per signature."""

    def __init__(self, fn: Callable[P, R], dump: str | Iterable[str] | None = None,
                 static_argnames: Iterable[str] = (), max_variants: int = 8) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        # the graph's name: a word, so its printed IR parses back (`<lambda>` becomes `lambda`)
        self.name = re.sub(r"\W+", "_", getattr(fn, "__name__", "")).strip("_") or "compiled"
        self.dump = dump
        self.static = frozenset(static_argnames)
        self.max_variants = max_variants
        self.signature = inspect.signature(fn)
        self.param_names = [p.name for p in self.signature.parameters.values()
                            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        # signature -> variants, most recent first (LRU)
        self.variants: OrderedDict[CallKey, list[Variant]] = OrderedDict()
        self.stats = {"traces": 0, "replays": 0, "compiles": 0}
        self.runtime_floats: set[str] = set()   # float arguments traced as runtime values (traced_float.py)
        self.floats_by_value: set[str] = set()  # ... whose traces needed the value: keyed by value
        self._last_key: CallKey | None = None
        self._warned: set[CallKey] = set()

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        key, leaves, names = call_key(self, args, kwargs)
        with LOCK:          # one realization or replay at a time (threads: see realize.LOCK)
            v = self._replayable(key)
            if v is None:
                v = self._retrace(key, args, kwargs)
                if self.runtime_floats:        # the retrace may have made a float a runtime value
                    key, leaves, names = call_key(self, args, kwargs)
            else:
                self.stats["replays"] += 1
                for refresh in v.refreshers:
                    refresh()
            arrays = v.run(input_buffers(leaves, self.static, names))
            if v.arg_grads:
                self._accumulate_argument_grads(v, arrays[len(v.output_names):], leaves, names)
            return self._outputs(v, arrays)

    def _accumulate_argument_grads(self, v: Variant, grads: list, leaves: list, names: list) -> None:
        """x.grad += the gradient the program computed, for each tensor argument x that
        backward() reached in the trace (PyTorch's AccumulateGrad on the caller's tensor)."""
        assert v.wrap is not None, "a variant that runs was loaded"
        tensors = [x for name, arg_leaves in zip(names, leaves) if name not in self.static
                   for x in arg_leaves if isinstance(x, Tensor)]
        for (k, _), array in zip(v.arg_grads, grads):
            accumulate(tensors[k], v.wrap(array), create_graph=False)

    def repeat(self, n: int, *args: Any, stacked: bool | Iterable[str] = False, **kwargs: Any) -> Any:
        """Run the function `n` times in one native call, as n calls would: state it updates
        in place (parameters, optimizer state) goes from step to step. Arguments are the same
        every step, or, for those `stacked` names (True: every tensor argument), sliced along
        dim 0: step i takes x[i]. Returns its result with each tensor stacked along a new
        dim 0, row i from step i (jit/repeat.py)."""
        return _repeat(self, n, args, kwargs, stacked)

    def traced_variants(self) -> list[Variant]:
        """Every variant kept, for every signature (least recently used signature first)."""
        return [v for variants in self.variants.values() for v in variants]

    def _replayable(self, key: CallKey) -> Variant | None:
        """A variant traced for this signature whose guards hold now (moved to the front), or None."""
        variants = self.variants.get(key)
        if variants is None:
            return None
        epoch = trace_hooks.EPOCH[0]
        for i, v in enumerate(variants):
            if v.stable and v.replayable(epoch):
                if i:
                    variants.insert(0, variants.pop(i))
                if len(self.variants) > 1:
                    self.variants.move_to_end(key)
                return v
        return None

    def _retrace(self, key: CallKey, args: tuple, kwargs: dict[str, Any]) -> Variant:
        """Trace for this signature and state; reuse a variant whose graph the trace repeats.
        A float argument that changed value (alone) is traced as a runtime value from now on;
        if such a trace fails, by value again (traced_float.py)."""
        changed = self._floats_changed(key)
        if changed:
            self.runtime_floats.update(changed)
            log.info("%s: float argument %s changed value: traced as a runtime value from now on (one program "
                     "for every value)", self.name, ", ".join(changed))
            key = call_key(self, args, kwargs)[0]
            v = self._replayable(key)
            if v is not None:
                self.stats["replays"] += 1
                for refresh in v.refreshers:
                    refresh()
                return v
        variants = self.variants.get(key, [])
        self._log_retrace(key, variants)
        try:
            new = self._trace(args, kwargs)
        except Exception as e:
            runtime = [name for name, value in self.signature.bind(*args, **kwargs).arguments.items()
                       if runtime_float(name, value, self.runtime_floats)]
            if not runtime:
                raise
            self.runtime_floats.difference_update(runtime)
            self.floats_by_value.update(runtime)
            log.info("%s: tracing float argument %s as a runtime value failed (%s: %s); traced by value again",
                     self.name, ", ".join(runtime), type(e).__name__, e)
            return self._retrace(call_key(self, args, kwargs)[0], args, kwargs)
        same = next((v for v in variants if v.structure == new.structure), None)
        if same is not None:
            same.adopt_guards(new)                 # the same graph again: keep its program
            variants.remove(same)
            new = same
        else:
            self._compile(new)
            new.stable = not new.created_state
        variants.insert(0, new)
        del variants[MAX_GUARD_VARIANTS:]
        self.variants[key] = variants
        self.variants.move_to_end(key)
        if len(self.variants) > self.max_variants and key not in self._warned:
            self._warned.add(key)
            warn(f"fusegrad.compile: {self.name} was traced for {len(self.variants)} signatures "
                 f"(limit {self.max_variants}); each new one traces and compiles again")
        while len(self.variants) > max(MAX_SIGNATURES, self.max_variants):
            self.variants.popitem(last=False)      # least recently used signature
        return new

    def _floats_changed(self, key: CallKey) -> list[str]:
        """The float arguments (not yet runtime values, nor refused as such) whose values are
        all that tell `key` from a signature traced before."""
        args, modes = key
        for old_args, old_modes in self.variants:
            if old_modes != modes or len(old_args) != len(args):
                continue
            changed: list[str] | None = []
            for (name, tree, keys), old in zip(args, old_args):
                if (name, tree, keys) == old:
                    continue
                if (tree is None and old[1] is None and keys[0][:2] == old[2][0][:2] == ("V", "float")
                        and name not in self.floats_by_value and name not in self.static):
                    changed.append(name)       # type: ignore[union-attr]
                else:
                    changed = None
                    break
            if changed:
                return changed
        return []

    def _outputs(self, v: Variant, arrays: list) -> Any:
        """`fn`'s result with its tensors the program's outputs (the structure is unchecked)."""
        it, wrap = iter(arrays), v.wrap
        assert wrap is not None, "a variant that runs was loaded"
        leaves = [self._output(next(it), v.program, wrap) if isinstance(x, Tensor) else x for x in v.out_leaves]
        return unflatten(v.out_tree, iter(leaves))

    @staticmethod
    def _output(array: np.ndarray | DeviceBuffer, program: Program,
                wrap: Callable[[Any], Tensor]) -> Tensor:
        t = wrap(array)                     # a tensor on the device of the buffer
        t._storage.program = program        # fusegrad.program_of(result) answers for it
        return t

    def _log_retrace(self, key: CallKey, variants: list[Variant]) -> None:
        if not variants and self._last_key is not None and key != self._last_key:
            log.info("retracing %s: %s", self.name, reason(self._last_key, key))
        elif variants:
            changed = variants[0].what_changed()
            if changed is not None or variants[0].stable:
                log.info("retracing %s: %s", self.name, changed or "the state it captured changed")
            else:
                log.info("retracing %s: its first trace created state (%s); tracing once more with that "
                         "state, to compile the steps that update it", self.name, variants[0].created_names())
        self._last_key = key

    def lower(self, *args: P.args, **kwargs: P.kwargs) -> Lowered:
        """Trace and compile for these arguments without running; the compiler's stages as text.
        Tensor state the trace changed is put back (other Python side effects are not)."""
        v = self._trace(args, kwargs, undo=True)
        self._compile(v)
        return Lowered(v.program, v.graph)

    # ------------------------------------------------------------ tracing

    def _trace(self, args: tuple, kwargs: dict[str, Any], undo: bool = False) -> Variant:
        self.stats["traces"] += 1
        realize_later_now()           # eager gradients a backward() left pending: computed first
        tracer = Tracer(self.name)
        bound = self.signature.bind(*args, **kwargs)
        inputs: list[Node] = []
        devices: list[Device | None] = []       # per input: its argument's device (None: the CPU)
        stand_ins: dict[int, int] = {}          # id(tensor standing for an argument) -> input index
        traced: dict[str, Any] = {}
        tensors = 0                             # tensor arguments so far (argument gradients' numbers)
        for name, value in bound.arguments.items():
            if runtime_float(name, value, self.runtime_floats):
                inp = Node("input", (), {"name": name}, (), float64)
                t = Tensor._new(Storage(inp))
                tracer.inputs.add(id(t._storage))
                inputs.append(inp)
                devices.append(None)
                traced[name] = TracedFloat(t, name)
                continue
            arg_leaves: list = []
            tree = flatten(value, arg_leaves)
            new_leaves: list = []
            for i, x in enumerate(arg_leaves):
                if isinstance(x, Tensor) and name in self.static:
                    tracer.readable.add(id(x._storage))
                    new_leaves.append(x)
                elif isinstance(x, Tensor):
                    node = x._value()[0]
                    label = name if len(arg_leaves) == 1 else f"{name}_{i}"
                    inp = Node("input", (), {"name": label}, node.shape, node.dtype)
                    device = x._storage.device          # None: the CPU
                    _placement.place(inp, device)
                    t = Tensor._new(Storage(inp, device=device))
                    t._requires_grad = x.requires_grad
                    stand_ins[id(t)] = tensors
                    tensors += 1
                    tracer.inputs.add(id(t._storage))
                    inputs.append(inp)
                    devices.append(device)
                    new_leaves.append(t)
                else:
                    new_leaves.append(x)
            traced[name] = unflatten(tree, iter(new_leaves))
        call = inspect.BoundArguments(self.signature, OrderedDict(traced))   # *args, **kwargs too
        owned = [x for x in bound.arguments.items() if not isinstance(x[1], Tensor)]
        state_before = optimizer_states(self.fn, owned)
        try:
            with trace_hooks.tracing(tracer):
                out = self.fn(*call.args, **call.kwargs)
            v = self._read_trace(tracer, out, inputs, devices, owned, stand_ins)
        except BaseException:
            undo_trace(tracer, state_before)   # a failed trace leaves tensors, .grad and optimizer state as they were
            raise
        if undo:
            undo_trace(tracer)
        return v

    def _read_trace(self, tracer: Tracer, out: object, inputs: list[Node], devices: list[Device | None],
                    arguments: Iterable[tuple[str, object]] = (), stand_ins: dict[int, int] | None = None) -> Variant:
        out_leaves: list = []
        out_tree = flatten(out, out_leaves)
        for x in out_leaves:
            if isinstance(x, TracedFloat):
                raise FloatValueRead(f"{self.name} returns float argument {x.name!r} (or a number computed from it), "
                                     f"which a replay cannot give back as a Python number")
        returned = [x for x in out_leaves if isinstance(x, Tensor)]
        outputs = {f"out{i}": t._value()[0] for i, t in enumerate(returned)}
        output_names = list(outputs)
        returned_ids = {id(t._storage) for t in returned}
        # gradients that backward() left on the tensors standing for arguments: program outputs,
        # accumulated into the .grad of each call's own argument (never state shared by calls)
        stand_ins = stand_ins or {}
        grad_effects, arg_grads = [], []
        for t, _, now in tracer.grads.values():
            k = stand_ins.get(id(t))
            if k is None:
                grad_effects.append((t, now))
            elif now is not None:
                outputs[f"grad_of_input{k}"] = now._value()[0]
                arg_grads.append((k, f"grad_of_input{k}"))
                returned_ids.add(id(now._storage))
        alive = [s for s in (w() for w in tracer.created.values())
                 if s is not None and id(s) not in tracer.inputs and id(s) not in returned_ids]
        for s, old_node, _ in tracer.updated.values():
            if s.buffer is None:
                compute_old_value(s, old_node)
        assigns = [(s, s.node) for s, _, _ in tracer.updated.values()]
        assigns += [(s, s.node) for s in alive if s.buffer is not None and buffer_of(s.node) is not s.buffer]
        escaped = [s for s in alive if s.buffer is None]
        for i, s in enumerate(escaped):
            outputs[f"state{i}"] = s.node
        names = state_names(self.fn, Tensor, arguments)
        graph, param_sources = graph_of(self.name, inputs, outputs, assigns, names)
        assigned = [s for s, _ in assigns]
        graph_text = print_graph(graph)
        v = Variant(
            graph=graph, graph_text=graph_text,
            structure=(graph_text, tuple(id(s) if s is not None else const_key(c) for s, c in param_sources)),
            param_sources=param_sources,
            device=self._device(graph, devices, param_sources, returned, escaped, assigned, names),
            input_devices=devices, out_tree=out_tree, out_leaves=out_leaves, output_names=output_names,
            guards=tracer.guards + plain_capture_guards(self.fn), state_guards=tracer.all_state_guards(),
            refreshers=tracer.refreshers, names=names, epoch=trace_hooks.EPOCH[0],
            escaped=[(f"state{i}", s) for i, s in enumerate(escaped)],
            created=[names.get(id(s), "a new tensor") for s in alive],
            grad_effects=grad_effects, arg_grads=arg_grads, assigned=assigned,
            assigned_buffers={id(s.buffer) for s in assigned})
        for s in assigned:           # until the program runs, each holds its old value again
            restore_old_leaf(s)
        return v

    def _device(self, graph: Graph, devices: list[Device | None], sources: list, returned: list[Tensor],
                escaped: list[StorageT], assigned: list[StorageT], names: dict[int, str]) -> Device | None:
        """The device the variant runs on (None: the CPU); a TracingError if the trace mixes
        devices. CPU scalars may join a CUDA variant as inputs or captured state."""
        updated = {id(s) for s in assigned}
        items = [(f"argument {x.attrs['name']}", device, x.shape == (), True)
                 for x, device in zip(graph.inputs, devices)]
        for p, (s, const) in zip(graph.params, sources):
            what = f"captured tensor {p.attrs['name']}"
            if s is not None and id(s) in updated:
                what += " (updated in place)"
            items.append((what, s.device if s is not None else _placement.device_of(const), p.shape == (), True))
        items += [(f"returned tensor {i}", t._storage.device, t.ndim == 0, False) for i, t in enumerate(returned)]
        items += [(f"new state {names.get(id(s), f'state{i}')}", s.device, s.node.shape == (), False)
                  for i, s in enumerate(escaped)]
        device, mixed = _placement.program_device(items)
        if mixed is not None:
            raise TracingError(
                f"{self.name} ({_defined_at(self.fn)}): a compiled function runs as one program on one device, "
                f"but this trace mixes devices: "
                f"{mixed[0]} is on cpu while {mixed[1]} is on cuda:0. Its tensor arguments, the tensors it captures "
                f"(parameters, optimizer state) and its results must all be on one device (only CPU scalars may "
                f"join CUDA tensors); move them with .to(device)")
        return device

    def _compile(self, v: Variant) -> None:
        program = compile_cached(v.graph, v.graph_text, **_placement.target_options(v.device))
        self.stats["compiles"] += 1
        args = ", ".join(x.attrs["name"] + ": " + fmt_type(x.shape, x.dtype) for x in v.graph.inputs)
        dump(program, f"{self.name}({args})", self.dump)
        v.load(program, runtime.load(program))


def _defined_at(fn: Callable[..., object]) -> str:
    """`file.py:line` of a function's definition (errors found once the whole trace is read)."""
    code = getattr(fn, "__code__", None)
    return f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}" if code else "?"


class Lowered:
    """The stages of a compiled program as text, its kernels (each with the reason it ends
    where it does), and its kernel graph for Graphviz (`fusegrad.viz.render` draws it)."""

    def __init__(self, program: Program, graph: Graph) -> None:
        self.program = program
        self.graph = graph

    @property
    def kernels(self) -> list[KernelInfo]:
        """The kernels in launch order: name, kind, what they fuse, read and write, `reason`."""
        return list(self.program.kernels)

    def text(self, stage: str) -> str:
        if stage == "ptx" and "ptx" not in self.program.stages:
            return compiler.compile(self.graph, "cuda").text("ptx")
        return self.program.text(stage)

    def to_dot(self) -> str:
        """Graphviz text: one box per node, each kernel a cluster of the nodes it fuses (a node
        recomputed in several is drawn in the first), reads of buffers labelled with bytes."""
        return self.program.stages["dot"]


@overload
def compile(fn: Callable[P, R], *, dump: str | Iterable[str] | None = None, static_argnames: Iterable[str] = (),
            max_variants: int = 8) -> CompiledFunction[P, R]: ...
@overload
def compile(fn: None = None, *, dump: str | Iterable[str] | None = None, static_argnames: Iterable[str] = (),
            max_variants: int = 8) -> Callable[[Callable[P, R]], CompiledFunction[P, R]]: ...
def compile(fn: Callable[P, R] | None = None, *, dump: str | Iterable[str] | None = None,
            static_argnames: Iterable[str] = (),
            max_variants: int = 8) -> CompiledFunction[P, R] | Callable[[Callable[P, R]], CompiledFunction[P, R]]:
    """Trace `fn` once per signature and replay it as one native call (decorator or function)."""
    if fn is None:
        return lambda f: CompiledFunction(f, dump, static_argnames, max_variants)
    return CompiledFunction(fn, dump, static_argnames, max_variants)
