"""The latency histogram: every value's bucket representative is within α relative error, and
quantiles of merged histograms are within α of the exact sample quantile."""

from __future__ import annotations

import math
import random

from pipeline.storage import sketch


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_bucket_representative_is_within_alpha() -> None:
    rng = random.Random(1)
    for _ in range(20_000):
        v = math.exp(rng.uniform(math.log(0.002), math.log(8.64e7)))
        rep = sketch.bucket_value(sketch.bucket_of(v))
        assert abs(rep - v) <= sketch.ALPHA * v * (1 + 1e-12)


def test_zero_and_tiny_values_read_back_as_zero() -> None:
    assert sketch.bucket_of(0) == sketch.ZERO_BUCKET == sketch.bucket_of(sketch.MIN_VALUE)
    assert sketch.bucket_value(sketch.ZERO_BUCKET) == 0.0


def test_merged_quantiles_within_bound_of_exact() -> None:
    rng = random.Random(7)
    parts = [[rng.lognormvariate(4, 1.2) for _ in range(3000)] for _ in range(5)]
    hists = []
    for part in parts:
        h: dict[int, int] = {}
        for v in part:
            sketch.add(h, v)
        hists.append(h)
    merged = sketch.merge(hists)
    values = [v for part in parts for v in part]
    assert sum(merged.values()) == len(values)
    for q in (0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0):
        got = sketch.quantile(merged, q)
        want = exact_quantile(values, q)
        assert got is not None and abs(got - want) <= sketch.ALPHA * want * (1 + 1e-12), q


def test_empty_histogram_has_no_quantile() -> None:
    assert sketch.quantiles({}, [0.5, 0.99]) == [None, None]
