"""Window arithmetic for stats over rollup tables. Pure.

Conventions (documented in the README):
- bucket `b` of width w holds events with time in [b, b + w);
- a trailing window of W seconds at instant t covers [t - W, t);
- a timeseries samples instants t1, t1 + step, ... strictly before t2.
"""

from __future__ import annotations

import math

__all__ = [
    "MAX_BUCKETS",
    "MAX_POINTS",
    "default_step",
    "point_count",
    "sample_points",
    "series_resolution",
    "split_range",
]

MAX_POINTS = 10_000
MAX_BUCKETS = 2_000_000
_WIDTHS = ((3600, "requests_1h"), (60, "requests_1m"), (1, "requests_1s"))


def split_range(lo: int, hi: int) -> list[tuple[str, int, int]]:
    """Cover [lo, hi) exactly with the fewest rollup buckets: [(table, start, end), ...].

    Hour buckets for whole hours inside the range, minute buckets for whole minutes left at
    the edges, second buckets for the rest. Pieces are disjoint and their union is [lo, hi).
    """
    if hi <= lo:
        return []
    out: list[tuple[str, int, int]] = []

    def cover(a: int, b: int, level: int) -> None:
        if a >= b:
            return
        width, table = _WIDTHS[level]
        if width == 1:
            out.append((table, a, b))
            return
        inner_lo = -(-a // width) * width
        inner_hi = b // width * width
        if inner_lo < inner_hi:
            cover(a, inner_lo, level + 1)
            out.append((table, inner_lo, inner_hi))
            cover(inner_hi, b, level + 1)
        else:
            cover(a, b, level + 1)

    cover(lo, hi, 0)
    return out


def default_step(t1: int, t2: int) -> int:
    """5 s for short ranges, growing so that a range yields at most ~720 points."""
    return max(5, math.ceil((t2 - t1) / 720))


def point_count(t1: int, t2: int, step: int) -> int:
    """How many instants `sample_points` yields, without building them."""
    return max(0, -(-(t2 - t1) // step))


def sample_points(t1: int, t2: int, step: int) -> list[int]:
    return list(range(t1, t2, step))


def series_resolution(t1: int, window: int, step: int) -> int:
    """Coarsest bucket width (3600, 60 or 1) that aligns with every window edge of the series."""
    for width in (3600, 60):
        if t1 % width == 0 and window % width == 0 and step % width == 0:
            return width
    return 1
