"""Thread choice: whether a native call runs its parallel kernels on every thread or on one.

A parallel kernel forks libgomp's team and joins it when its work is done. On a machine where
other processes are busy, a worker thread may wait milliseconds for a core, and every join
waits for it: a program of many kernels then runs several times slower on all threads than
on one. So unless the user fixed the thread count (`set_num_threads(n)`,
`FUSEGRAD_NUM_THREADS`), each executable with parallel kernels measures its own calls and
keeps the faster of the two choices:

- it starts with the choice the last executable settled on (all threads at first);
- now and then one call runs with the other choice (an exploring call); when the mean time of
  the recent calls of the other choice (at least MIN_SAMPLES of them) is lower, it switches.
  Means, not medians: on a busy machine most calls on all threads may be quick while one in
  five waits milliseconds for a core, and it is the total that counts. A confirmed choice doubles
  the gap to the next exploring call (up to MAX_INTERVAL calls), a switch starts again at
  FIRST_INTERVAL, so exploring costs little once the load is steady (one call in 64 runs the
  other way); a call much slower than its choice's recent mean explores at once. When the
  load goes away, the times of the exploring calls replace those of the busy period one by
  one: the choice goes back to all threads within WINDOW exploring calls (a few hundred calls).

A split reduction adds its per-thread partials in an order that depends on the thread count,
so when the choice switches its last bits may change between calls; a fixed count keeps
every call's result the same.
"""
from __future__ import annotations

import statistics

FIRST_INTERVAL = 4        # calls between the first exploring calls
MAX_INTERVAL = 64         # ... and at most, once a choice was confirmed again and again
WINDOW = 6                # recent call times kept per choice
MIN_SAMPLES = 3           # times of the other choice needed before switching to it
MARGIN = 0.9              # switch when the other choice's mean is below this fraction of the current one's
SLOWER = 2.0              # a call this many times its choice's mean explores at once

_PREFER_ONE = [False]     # the choice the most recent executable settled on (new ones start there)


class ThreadChoice:
    """One executable's choice between all threads and one, from the times of its calls."""

    __slots__ = ("one", "times", "calls", "interval", "explore_at")

    def __init__(self) -> None:
        self.one = _PREFER_ONE[0]               # run on one thread (else on all)
        self.times: tuple[list[float], list[float]] = ([], [])   # recent seconds: (all threads, one)
        self.calls = 0
        self.interval = FIRST_INTERVAL
        self.explore_at = FIRST_INTERVAL

    def threads(self, available: int) -> int:
        """The thread count for the next call (`record` must follow it)."""
        self.calls += 1
        one = self.one != (self.calls == self.explore_at)
        return 1 if one else available

    def record(self, one: bool, seconds: float) -> None:
        """The call just made ran on one thread (`one`) or on all, and took `seconds`."""
        recent = self.times[one]
        recent.append(seconds)
        if len(recent) > WINDOW:
            del recent[0]
        if self.calls == self.explore_at:
            self._decide()
        elif one == self.one and len(recent) == WINDOW and seconds > SLOWER * statistics.fmean(recent):
            self.explore_at = self.calls + 1     # the load may have changed: try the other choice next

    def _decide(self) -> None:
        current, other = self.times[self.one], self.times[not self.one]
        if len(other) < MIN_SAMPLES or not current:
            self.interval = FIRST_INTERVAL      # not enough known yet: explore again soon
        elif statistics.fmean(other) < MARGIN * statistics.fmean(current):
            self.one = not self.one
            self.interval = FIRST_INTERVAL
        else:
            self.interval = min(2 * self.interval, MAX_INTERVAL)
        self.explore_at = self.calls + self.interval
        _PREFER_ONE[0] = self.one
