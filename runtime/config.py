"""Runtime settings read from the environment, checked once when fusegrad is imported.

A bad value raises there, naming the variable, instead of surfacing later from inside the
first kernel call.
"""
from __future__ import annotations

import os
from collections.abc import Mapping


def threads_from_env(environ: Mapping[str, str] = os.environ) -> int | None:
    """FUSEGRAD_NUM_THREADS as a positive count, None when unset; a ValueError naming the
    variable for anything else (checked when fusegrad is imported, not at the first kernel)."""
    value = environ.get("FUSEGRAD_NUM_THREADS")
    if value is None or value.strip() == "":
        return None
    try:
        n = int(value.strip())
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"FUSEGRAD_NUM_THREADS={value!r}: expected a positive whole number of worker threads "
                         "(unset it to use every CPU this process may run on)")
    return n


ENV_THREADS = threads_from_env()     # None: use every CPU this process may run on
