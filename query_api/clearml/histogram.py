"""Downsampling of scalar series for the scalar histograms, with ClearML's interval rule. Pure.

For one (metric, variant) with `count` points whose x (iteration or timestamp in ms) spans
`[lo, hi]`, asked for `samples` points:
- if `count < samples` the interval is 1 (every distinct x is its own bucket);
- else `interval = max(1, ceil((hi - lo + 1) / samples))`.
A point's bucket is `x - (x mod interval)` (floor-aligned, also for negative x). Each bucket
yields x = the bucket start, y = the mean of its values, plus `y_min` and `y_max` so spikes stay
visible. Buckets with no points are absent. `downsample` is the reference implementation; the
API computes the same buckets in ClickHouse.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MAX_SAMPLES", "SINGLE_SCALAR_ITERATION", "bucket_of", "downsample", "interval_for"]

MAX_SAMPLES = 6000
#: ClearML reports single values (not series) at this iteration; histograms leave them out.
SINGLE_SCALAR_ITERATION = -(2**31)


def interval_for(count: int, lo: int, hi: int, samples: int) -> int:
    if count < samples:
        return 1
    return max(1, -(-(hi - lo + 1) // samples))  # exact integer ceil, also for ms ranges


def bucket_of(x: int, interval: int) -> int:
    return x - x % interval


def downsample(points: Iterable[tuple[int, float]], samples: int
               ) -> tuple[int, list[tuple[int, float, float, float]]]:
    """(interval, [(x, mean, min, max)] sorted by x) for one series of (x, value) points."""
    pts = list(points)
    if not pts:
        return 1, []
    xs = [x for x, _ in pts]
    interval = interval_for(len(pts), min(xs), max(xs), samples)
    acc: dict[int, list[float]] = {}
    for x, v in pts:
        b = bucket_of(x, interval)
        a = acc.get(b)
        if a is None:
            acc[b] = [v, 1.0, v, v]
        else:
            a[0] += v
            a[1] += 1
            a[2] = min(a[2], v)
            a[3] = max(a[3], v)
    return interval, [(b, a[0] / a[1], a[2], a[3]) for b, a in sorted(acc.items())]
