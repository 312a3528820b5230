"""FUSEGRAD_NUM_THREADS is checked when fusegrad is imported, with a message naming it."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fusegrad import runtime
from fusegrad.runtime.config import threads_from_env


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", "2x"])
def test_a_bad_thread_count_is_refused_naming_the_variable(value):
    with pytest.raises(ValueError, match=f"FUSEGRAD_NUM_THREADS={value!r}"):
        threads_from_env({"FUSEGRAD_NUM_THREADS": value})


@pytest.mark.parametrize("value,expected", [("3", 3), (" 2 ", 2), ("", None)])
def test_good_or_empty_thread_counts(value, expected):
    assert threads_from_env({"FUSEGRAD_NUM_THREADS": value}) == expected
    assert threads_from_env({}) is None


def test_import_fails_at_once_for_a_bad_value():
    env = dict(os.environ, FUSEGRAD_NUM_THREADS="abc")
    done = subprocess.run([sys.executable, "-c", "import fusegrad"], env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert "ValueError: FUSEGRAD_NUM_THREADS='abc': expected a positive whole number" in done.stderr


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_set_num_threads_refuses_non_positive_or_non_integers(bad):
    with pytest.raises(ValueError, match="set_num_threads"):
        runtime.set_num_threads(bad)
