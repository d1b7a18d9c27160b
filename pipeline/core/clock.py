"""Time as Vitals reads it: the injected clock, and the row versions derived from it.

Every part takes a `Clock` (wall time in epoch seconds; tests inject a fake one) instead of
calling `time.time()`. ReplacingMergeTree row versions come from the same clock, so a fake clock
orders rewrites too; between rows of one version the later insert wins.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Clock", "ManualClock", "RowVersions", "row_version"]

Clock = Callable[[], float]


class ManualClock:
    """A `Clock` that stands still at `t` until set: what tests, and runs that must answer at
    one fixed instant (bench/api_answers.py), inject."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def row_version(now: float) -> int:
    """The version of a row written at `now` (epoch seconds): nanoseconds."""
    return int(now * 1_000_000_000)


class RowVersions:
    """Versions for rows rewritten in place: `row_version` of the clock, strictly increasing
    per instance (two rewrites in one clock instant still order)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self._last = max(row_version(self._clock()), self._last + 1)
            return self._last
