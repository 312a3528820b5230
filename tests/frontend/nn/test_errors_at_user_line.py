"""Errors raised inside layers and functionals name the line of the user's code that called them,
and their warnings are attributed to that line (frontend/source.py)."""
from __future__ import annotations

import inspect
import os
import warnings

import pytest

import fusegrad
import fusegrad.nn.functional as F
from fusegrad import nn

HERE = os.path.basename(__file__)


def _line() -> int:
    """The line number of the caller's line."""
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


def test_a_layer_error_names_the_line_that_called_the_layer():
    conv = nn.Conv2d(3, 8, 3)
    x = fusegrad.ones(1, 4, 8, 8)
    with pytest.raises(RuntimeError, match="expected input\\[1, 4, 8, 8\\] to have 3 channels") as info:
        line = _line() + 1
        conv(x)
    assert str(info.value).endswith(f"(at {HERE}:{line})")


@pytest.mark.parametrize("make, exc_type, match", [
    (lambda: nn.LayerNorm(7)(fusegrad.ones(2, 5)), RuntimeError, "expected input with shape \\[\\*, 7\\]"),
    (lambda: nn.BatchNorm2d(3)(fusegrad.ones(2, 4, 5, 5)), RuntimeError, "running_mean should contain 4 elements"),
    (lambda: nn.MaxPool2d(3)(fusegrad.ones(1, 1, 2, 2)), RuntimeError, "Output size is too small"),
    (lambda: nn.CrossEntropyLoss()(fusegrad.ones(2, 3), fusegrad.tensor([0, 1, 2])), ValueError,
     "Expected input batch_size \\(2\\) to match target batch_size \\(3\\)"),
    (lambda: F.layer_norm(fusegrad.ones(2, 5), (7,)), RuntimeError, "expected input with shape"),
    (lambda: F.cross_entropy(fusegrad.ones(2, 3), fusegrad.tensor([0, 1, 2])), ValueError, "batch_size"),
], ids=["LayerNorm", "BatchNorm2d", "MaxPool2d", "CrossEntropyLoss", "F.layer_norm", "F.cross_entropy"])
def test_layer_and_functional_errors_name_the_users_line(make, exc_type, match):
    with pytest.raises(exc_type, match=match) as info:
        make()
    # the lambda in the parametrize list is the user's code: its line is in this file
    assert f"(at {HERE}:" in str(info.value) and str(info.value).count("(at ") == 1


def test_an_error_from_a_nested_module_names_the_users_forward_line():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(7)

        def forward(self, x):
            self.line = _line() + 1
            return self.norm(x)

    net = Net()
    with pytest.raises(RuntimeError, match="normalized_shape") as info:
        net(fusegrad.ones(2, 5))
    assert str(info.value).endswith(f"(at {HERE}:{net.line})")


def test_the_users_own_exception_in_forward_is_left_as_raised():
    class Picky(nn.Module):
        def forward(self, x):
            raise ValueError("my own message")

    with pytest.raises(ValueError) as info:
        Picky()(fusegrad.ones(1))
    assert str(info.value) == "my own message"


def test_warnings_from_inside_functionals_point_at_the_users_line():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _line() + 1
        nn.MSELoss()(fusegrad.ones(2, 3), fusegrad.ones(1, 3))
        line2 = _line() + 1
        F.softmax(fusegrad.ones(2, 3))
    assert [(os.path.basename(w.filename), w.lineno) for w in caught] == [(HERE, line), (HERE, line2)]
    assert "target size" in str(caught[0].message) and "Implicit dimension" in str(caught[1].message)
