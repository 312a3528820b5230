"""Rule tables keyed by the primitives of `ops.OPS`: where a VJP or a lowering registers.

`ops.py` declares each primitive once (kind, arity, attributes, shape, dtype and fold rules,
autograd name). Rules that belong to other layers register against that declaration here,
each from its own module:

- `VJP` (compiler/passes/autodiff.py): `@vjp_rule("mul", needs_values=True)` (a `VjpRule`:
  the rule, and whether it reads input or output values, PyTorch's saved tensors, or only
  their shapes), or `NOT_DIFFERENTIABLE`; `NEEDS_VALUES` is the set of ops whose rule reads
  values, kept by the table as rules register;
- `CPU` (compiler/codegen/emit.py): the scalar LLVM IR of an elementwise primitive
  (`ElementwiseRule`), the value of a source or movement op at an index and the views it
  reads (`IndexRule`), how a reduction combines two values (`ReductionRule`; its identity is
  declared with the op), or a `planned(...)` marker for kinds the kernel planner generates
  (matmul, scatter);
- `PTX` (compiler/codegen/ptx_kernel.py): the same for the NVPTX target; most entries are
  the CPU rule itself (`PTX.same_as(CPU, ...)`), named op by op so a new primitive is missing
  until someone decides.

(Rewrites that simplify.py applies to particular ops are in its own `REWRITES` table; the
algebraic facts it uses, units and the like, are part of the declarations.)

A table refuses an op that is not declared and a second rule for one op; `missing()` lists
the declared ops without a rule (tests/compiler/test_op_registry.py checks every table).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .ops import OPS


class Marker:
    """A registered non-rule: a statement about the op in place of a rule."""
    __slots__ = ("what",)

    def __init__(self, what: str):
        self.what = what

    def __repr__(self):
        return f"<{self.what}>"


#: the op has no derivative (its inputs get no cotangent): sources, comparisons
NOT_DIFFERENTIABLE = Marker("not differentiable")


def planned(where: str) -> Marker:
    """A lowering the kernel planner generates itself (loop drivers, not a scalar rule)."""
    return Marker(f"handled by the kernel planner: {where}")


@dataclass(frozen=True)
class ElementwiseRule:
    """`fn(emitter, node, args) -> value`: the op on scalar operand values."""
    fn: Callable


@dataclass(frozen=True)
class IndexRule:
    """`fn(emitter, node, path, space) -> value`: the op's value at the current index (sources,
    movement and gather, which read memory or pass the index through).

    `views(emitter, node, path, add_view, visit)`: what computing that value indexes, for the
    kernel planner (kernel_plan.py): `add_view(viewstack)` for each view through which it
    reads memory or masks values, `visit(input, path)` for each input value it computes."""
    fn: Callable
    views: Callable


@dataclass(frozen=True)
class ReductionRule:
    """`combine(builder, dtype, acc, v) -> value`: acc (op) v in LLVM IR. The loop drivers
    start the accumulator at the op's declared identity (`OpDef.identity`) and fold each
    value in with this. `widen_float32`: float32 inputs accumulate in float64."""
    combine: Callable
    widen_float32: bool = False


@dataclass(frozen=True)
class VjpRule:
    """`fn(emit, attrs, inputs, out, g) -> cotangents`, and whether it reads the values of
    `inputs` or `out` (True) or only their shapes and dtypes (False)."""
    fn: Callable
    needs_values: bool


class RuleTable:
    def __init__(self, name: str):
        self.name = name
        self._rules: dict = {}

    def register(self, op: str, rule) -> object:
        if op not in OPS:
            raise KeyError(f"{self.name}: {op!r} is not a declared primitive")
        if op in self._rules:
            raise KeyError(f"{self.name}: {op!r} already has a rule")
        self._rules[op] = rule
        return rule

    def __call__(self, *ops: str):
        """Decorator: register the function as the rule of each op in `ops`."""
        def deco(fn):
            for op in ops:
                self.register(op, fn)
            return fn
        return deco

    def same_as(self, other: RuleTable, *ops: str) -> None:
        """Register, for each op, the rule `other` has for it (a shared lowering)."""
        for op in ops:
            self.register(op, other[op])

    def get(self, op: str, default=None):
        return self._rules.get(op, default)

    def __getitem__(self, op: str):
        try:
            return self._rules[op]
        except KeyError:
            raise KeyError(f"{self.name}: no rule for {op!r}") from None

    def __contains__(self, op: str) -> bool:
        return op in self._rules

    def missing(self) -> list:
        return [op for op in OPS if op not in self._rules]


class VjpTable(RuleTable):
    """The VJP table: each entry a `VjpRule` or NOT_DIFFERENTIABLE. Keeps `needs_values`, the
    set of ops whose rule reads values (grad_fn records test membership on the eager path)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.needs_values: set[str] = set()

    def register(self, op: str, rule) -> object:
        if not isinstance(rule, VjpRule) and rule is not NOT_DIFFERENTIABLE:
            raise TypeError(f"{self.name}: the rule of {op!r} must be a VjpRule (say whether it needs values)")
        super().register(op, rule)
        if isinstance(rule, VjpRule) and rule.needs_values:
            self.needs_values.add(op)
        return rule

    def __call__(self, *ops: str, needs_values: bool | None = None):
        """Decorator: `fn` as the VJP of each op in `ops`; `needs_values` must be given."""
        if needs_values is None:
            raise TypeError(f"{self.name}: say whether the rule of {ops} needs values (needs_values=...)")

        def deco(fn):
            for op in ops:
                self.register(op, VjpRule(fn, needs_values))
            return fn
        return deco


VJP = VjpTable("vjp")
CPU = RuleTable("cpu lowering")
PTX = RuleTable("ptx lowering")

vjp_rule = VJP
#: the ops whose VJP reads input or output values (PyTorch's saved tensors); filled as rules register
NEEDS_VALUES = VJP.needs_values
