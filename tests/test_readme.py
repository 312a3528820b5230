"""README's Python examples run as written (a README example that fails is a bug)."""
from __future__ import annotations

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(code, capsys):
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})


def test_readme_quickstart_reports_one_fused_kernel(capsys):
    block = next(b for b in BLOCKS if "program_of" in b)
    exec(compile(block, str(README), "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == "1"            # num_kernels: the whole expression is one loop
    assert "graph realize" in printed and "define" in printed   # the IR and the LLVM IR were printed


def test_readme_training_example_lowers_the_loss(capsys):
    block = next(b for b in BLOCKS if "train_step" in b)
    namespace = {"__name__": "__readme__"}
    exec(compile(block, str(README), "exec"), namespace)
    first = namespace["criterion"](namespace["model"](namespace["x"]), namespace["y"]).item()
    assert namespace["loss"].item() > first        # the last returned loss was computed before the last step
    assert namespace["train_step"].stats["traces"] <= 2 and namespace["train_step"].stats["replays"] >= 19
    losses = namespace["losses"].numpy()            # repeat(): one loss per step, after the 20 calls
    assert losses.shape == (50,) and namespace["loss"].item() > losses[0] > losses[-1] > first
