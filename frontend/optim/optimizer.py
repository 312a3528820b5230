"""`Optimizer`: the machinery every optimizer shares, as torch.optim.Optimizer.

Parameter groups (dicts of hyperparameters with defaults filled in), per-parameter `state`,
`zero_grad`, `state_dict`/`load_state_dict` and `step` live here. A subclass only says how one
parameter is updated (`_update`), with in-place ops on the parameter and its state tensors.

`step` runs every update under `no_grad()` inside `inplace.deferred()`, so the whole step
(all parameters, all state) is realized as one compiled program. State tensors are storages
marked `state`; the learning rate enters the program as a 0-d state tensor per group and dtype
rather than a constant, so changing it between steps (a schedule) reuses the compiled step:
eager steps refresh that tensor, and a `@compile`d step refreshes it before every replay. So do
the other hyperparameters a schedule changes (`runtime_hyperparameters`: momentum, betas), as
float64 0-d tensors. The remaining hyperparameters are constants of the program; a compiled
step is guarded on them (and on whether a structural runtime one, such as SGD's momentum, is
zero) and retraces when one changes.
"""
from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, Union

import numpy as np

from .. import trace_hooks
from ..autograd.grad_mode import enable_grad, no_grad
from ..creation import zeros, zeros_like
from ..dtypes import DType, float64, to_storage
from ..inplace import defer, deferred
from ..nn._grads import zero_grads
from ..ops import _torch_name
from ..tensor import Tensor

_INVALID = {"lr": "learning rate", "eps": "epsilon value", "momentum": "momentum value",
            "weight_decay": "weight_decay value", "alpha": "alpha value"}

# What an optimizer takes: tensors, or dicts (param groups) with a "params" entry and options.
ParamsT = Union[Iterable[Tensor], Iterable[dict[str, Any]]]
# A Tensor in update rules: Tensor's operators and in-place methods forward untyped arguments
# to the op functions, so update arithmetic is typed Any until they carry full signatures.
TensorT = Any


def require(condition: bool, message: str) -> None:
    """PyTorch's hyperparameter checks: a ValueError with its message unless `condition`."""
    if not condition:
        raise ValueError(message)


def require_nonnegative(**hyperparameters: float) -> None:
    """`lr=..., eps=...` must not be negative, checked in the order given (PyTorch's messages)."""
    for name, value in hyperparameters.items():
        require(value >= 0.0, f"Invalid {_INVALID[name]}: {value}")


def state_tensor(value: Tensor) -> Tensor:
    """A new optimizer state tensor holding `value` (a tensor): its storage is `state`, and it is
    computed with the current step's program."""
    t = value.detach().clone()
    t._storage.state = True
    defer(t._storage)
    return t


def zeros_state(p: Tensor) -> Tensor:
    """A new state tensor of zeros shaped like parameter `p` (moments, momentum buffers)."""
    return _initial_state(lambda: zeros_like(p))


def step_counter() -> Tensor:
    """The step count as a 0-d float32 state tensor, as PyTorch 2 keeps it: updated in place,
    so a compiled step reads it instead of baking the count in as a constant."""
    return _initial_state(lambda: zeros(()))


def _initial_state(make: Callable[[], Tensor]) -> Tensor:
    """A state tensor computed now, outside any trace: a compiled step's first trace then reads
    it as captured state, as every later one does, so the first step's program serves them all."""
    with trace_hooks.outside_trace():
        t = make()
        t._storage.state = True
        t._realize()
    return t


def scalar(value: float, dtype: DType) -> Tensor:
    """A 0-d input tensor: a hyperparameter that may change without recompiling."""
    return Tensor._from_array(to_storage(np.array(value), dtype), dtype=dtype)


def _plain_numbers(values: tuple) -> bool:
    """Whether `values` are Python numbers or tuples of them (values that cannot change in place)."""
    return all(type(v) in (float, int) or type(v) is tuple and all(type(x) in (float, int) for x in v)
               for v in values)


class Hyperparameters:
    """A group's runtime hyperparameters for parameters of one dtype, as 0-d state tensors refreshed
    from the group (`Optimizer._runtime_values`) before every step and every replay: `lr` in the
    parameters' dtype, the others (momentum, beta1, ...) in float64, so that what an update derives
    from them (1 - beta1, beta2 ** step) is computed in double, as PyTorch computes it from Python
    floats, and rounded to the parameters' dtype once (`cast`)."""

    def __init__(self, optimizer: "Optimizer", group: dict, dtype: DType) -> None:
        self.optimizer, self.group, self.dtype = optimizer, group, dtype
        keys = optimizer.runtime_hyperparameters
        self._read = operator.itemgetter(*keys) if len(keys) > 1 else (lambda g, k=keys[0]: (g[k],))
        self._raw = self._read(group)          # the group's entries as last seen: a replay compares these first
        self._plain = _plain_numbers(self._raw)
        self.values = optimizer._runtime_values(group)
        with trace_hooks.outside_trace():
            self.tensors = {name: scalar(value, dtype if name == "lr" else float64)
                            for name, value in self.values.items()}
        for t in self.tensors.values():
            t._storage.state = True

    @property
    def lr(self) -> Tensor:
        return self.tensors["lr"]

    def __getitem__(self, name: str) -> Tensor:
        return self.tensors[name]

    def cast(self, value: Tensor) -> Tensor:
        """A float64 scalar derived from the hyperparameters, rounded to the parameters' dtype."""
        return value if value.dtype is self.dtype else value.to(self.dtype)

    def refresh(self) -> None:
        raw = self._read(self.group)
        if self._plain and raw == self._raw:   # the same numbers (a tensor or list may change in place)
            return
        self._raw, self._plain = raw, _plain_numbers(raw)
        values = self.optimizer._runtime_values(self.group)
        if values != self.values:
            with trace_hooks.outside_trace():
                for name, value in values.items():
                    if value != self.values.get(name):
                        self.tensors[name].numpy()[...] = value   # a CPU scalar sharing memory: nothing to run
            self.values = values


class Optimizer:
    # the group entries read as runtime tensors (`Hyperparameters`), which schedules may change
    # every step without a retrace: `_runtime_values` says how each becomes named floats
    runtime_hyperparameters: tuple[str, ...] = ("lr",)
    # of those, the ones whose being zero or not decides the update's structure (compiled in, guarded)
    structural_zero: tuple[str, ...] = ()

    def __init__(self, params: ParamsT, defaults: dict) -> None:
        self.defaults = defaults
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list = []
        self._hyperparameters: dict = {}      # (group index, dtype) -> Hyperparameters
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, but "
                            f"got torch.{_torch_name(params.dtype)}Tensor")
        groups: list[Any] = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering of "
                            "tensors in sets will change between runs. Please use a list instead.")
        params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        group = dict(param_group, params=params)
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in taken for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)
        trace_hooks.state_changed()

    def _membership(self) -> tuple:
        """Which parameter objects each group holds (a trace of step() bakes them in)."""
        return tuple(tuple(id(p) for p in group["params"]) for group in self.param_groups)

    def _guard_membership(self) -> None:
        if trace_hooks.active():
            trace_hooks.state_guard(self._membership, self._membership(), "the parameters in param_groups")

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._guard_membership()
        zero_grads((p for group in self.param_groups for p in group["params"]), set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient, realized as one program."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._guard_membership()
        for index, group in enumerate(self.param_groups):
            if trace_hooks.active():
                trace_hooks.guard(self._baked_reader(group), self._baked(group),
                                  f"hyperparameters of param_groups[{index}]")
            for dtype in {p.dtype: None for p in group["params"] if p.grad is not None}:
                self._refresh_hyperparameters(index, group, dtype)
        with no_grad(), deferred():
            for index, group in enumerate(self.param_groups):
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    grad = -p.grad if group.get("maximize") else p.grad
                    self._update(p, grad, self.state[p], group, self._hyperparameters[index, p.dtype])
        return loss

    def _baked(self, group: dict) -> tuple:
        """What a step compiles in as constants: the group's hyperparameters but the runtime ones
        (of which only whether each structural one is zero)."""
        runtime = self.runtime_hyperparameters
        return (tuple((k, v) for k, v in group.items() if k in self.defaults and k not in runtime)
                + tuple((k, group[k] != 0) for k in self.structural_zero))

    def _baked_reader(self, group: dict) -> Callable[[], tuple]:
        """`_baked(group)` as a guard reads it before every replay: the raw values of the keys it
        depends on are compared first (one C-level lookup and tuple comparison), and `_baked` is
        computed again only when one of them changed."""
        runtime = self.runtime_hyperparameters
        keys = [k for k in self.defaults if k not in runtime] + list(self.structural_zero)
        values = operator.itemgetter(*keys) if keys else (lambda g: ())
        seen: list = [None, None]

        def read() -> tuple:
            try:
                now = values(group)
            except KeyError:                # a hyperparameter was deleted from the group
                return self._baked(group)
            if seen[1] is None or now != seen[0]:
                seen[:] = now, self._baked(group)
            return seen[1]

        return read

    def _runtime_values(self, group: dict) -> dict[str, float]:
        """The runtime hyperparameters of `group` as named floats (a subclass adds momentum, betas...)."""
        return {"lr": float(group["lr"])}

    def _refresh_hyperparameters(self, index: int, group: dict, dtype: DType) -> None:
        """Before the update: the group's hyperparameter tensors for `dtype` hold the group's values
        (realized now, so the update's program is the same whatever the values), and so they do
        before each replay."""
        h = self._hyperparameters.get((index, dtype))
        if h is None or h.group is not group:
            h = self._hyperparameters[index, dtype] = Hyperparameters(self, group, dtype)
        h.refresh()
        trace_hooks.before_replay(h.refresh)

    def _update(self, p: TensorT, grad: TensorT, state: dict, group: dict, h: Hyperparameters) -> None:
        """Update parameter `p` in place, given its gradient, state, group and the group's runtime
        hyperparameters (`h.lr`: a 0-d tensor of p's dtype; `h["momentum"]` etc.: float64)."""
        raise NotImplementedError

    @staticmethod
    def _coupled_decay(p: TensorT, grad: TensorT, group: dict) -> TensorT:
        """L2 regularization folded into the gradient: grad + weight_decay * p."""
        wd = group["weight_decay"]
        return grad if wd == 0 else grad + wd * p

    # ------------------------------------------------------------ state dicts

    def state_dict(self) -> dict:
        """PyTorch's layout: parameters are numbered across groups in order."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            numbers = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                numbers.append(index[id(p)])
            groups.append(dict(group, params=numbers))
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(s["params"]) != len(g["params"]) for s, g in zip(saved, self.param_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                             "optimizer's group")
        by_number = {n: p for s, g in zip(saved, self.param_groups) for n, p in zip(s["params"], g["params"])}
        self.state = defaultdict(dict)
        with no_grad(), deferred():
            for number, values in state_dict["state"].items():
                p = by_number[number]
                self.state[p] = {k: self._loaded(p, k, v) for k, v in values.items()}
        self.param_groups = [dict(s, params=g["params"]) for s, g in zip(saved, self.param_groups)]

    @staticmethod
    def _loaded(p: Tensor, key: str, value: Any) -> Any:
        """A private copy of a saved state value; moments take the parameter's dtype (the scalar
        counters step and NAdam's mu_product keep theirs, so a resumed run continues exactly)."""
        if not isinstance(value, Tensor):
            return value
        if key not in ("step", "mu_product") and value.is_floating_point():
            value = value.to(p.dtype)
        return state_tensor(value)

    def __repr__(self) -> str:
        text = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            text += f"\nParameter Group {i}\n"
            for key in sorted(group):
                if key != "params":
                    text += f"    {key}: {group[key]}\n"
        return text + ")"
