"""How the scripts under mpiexec hand their results to the tests: one file per rank.

`checker(results, rank)` makes the scripts' `@check("name")`: it runs the function at once and
records "rank R PASS name", or "rank R FAIL name: <traceback on one line>".

`report(lines, rank)` writes the lines to `<folder>/rank<rank>.txt` when the script was given a
folder as its first argument (the tests do: ranks printing to one pipe can interleave within a
line), else prints them.
"""
from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable


def report(lines: list[str], rank: int) -> None:
    if len(sys.argv) > 1 and os.path.isdir(sys.argv[1]):
        with open(os.path.join(sys.argv[1], f"rank{rank}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    else:
        for line in lines:
            print(line, flush=True)


def checker(results: list[str], rank: Callable[[], int]) -> Callable:
    def check(name: str) -> Callable:
        def run(fn: Callable) -> Callable:
            try:
                fn()
                results.append(f"rank {rank()} PASS {name}")
            except Exception:           # noqa: BLE001 - reported as a FAIL line with its traceback
                detail = traceback.format_exc().strip().replace("\n", " | ")
                results.append(f"rank {rank()} FAIL {name}: {detail}")
            return fn
        return run
    return check
