"""How the scripts under mpiexec hand their results to the tests: one file per rank.

`report(lines, rank)` writes the lines to `<folder>/rank<rank>.txt` when the script was given a
folder as its first argument (the tests do: ranks printing to one pipe can interleave within a
line), else prints them.
"""
from __future__ import annotations

import os
import sys


def report(lines: list[str], rank: int) -> None:
    if len(sys.argv) > 1 and os.path.isdir(sys.argv[1]):
        with open(os.path.join(sys.argv[1], f"rank{rank}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    else:
        for line in lines:
            print(line, flush=True)
