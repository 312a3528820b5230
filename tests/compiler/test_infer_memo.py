"""Type inference is memoised by (op, operand types, attributes) in compiler/ir/ops.py: the same
question gets the same answer, other attributes another, a bad one raises at every call with that
call's source line, and the memo is bounded."""
from __future__ import annotations

import pytest

from fusegrad.compiler.ir import ShapeError, dtypes, make, ops


def leaf(shape, dtype=dtypes.float32):
    return make("input", (), {"name": "x"}, shape=shape, dtype=dtype)


def test_the_memo_answers_as_the_rules_do():
    a, b = leaf((3, 1)), leaf((1, 4))
    first = make("add", [a, b])
    second = make("add", [leaf((3, 1)), leaf((1, 4))])
    assert (first.shape, first.dtype) == (second.shape, second.dtype) == ((3, 4), dtypes.float32)
    assert make("lt", [a, b]).dtype == dtypes.bool_ and make("sum", [first], {"axes": (0,)}).shape == (1, 4)
    assert make("sum", [first], {"axes": (1,)}).shape == (3, 1)       # other attributes: another answer


def test_a_bad_call_raises_every_time_with_its_own_line():
    a, b = leaf((3,)), leaf((4,))
    for loc in ("m.py:1", "m.py:2"):
        with pytest.raises(ShapeError, match=f"at {loc}"):
            make("add", [a, b], loc=loc)


def test_the_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(ops, "MAX_INFERRED", 4)
    ops._INFERRED.clear()
    for n in range(1, 10):
        make("neg", [leaf((n,))])
    assert len(ops._INFERRED) <= 4
