"""The per-bucket series cache (query_api/endpoint_metrics/series_cache.py) and the RowBinary
bucket parser:
which buckets a call must re-read, exact window sums and histograms whether the window is
rebuilt or moved incrementally, pruning, LRU bounds."""

from __future__ import annotations

import random
import struct

import numpy as np

from pipeline.storage import sketch
from query_api.endpoint_metrics.sections import SUM_COLUMNS
from query_api.endpoint_metrics.series_cache import Bucket, ScopeSeries, SeriesCache
from query_api.endpoint_metrics.store import _FIXED, parse_buckets

_N = len(SUM_COLUMNS)


def bucket(tag: int, requests: int, hist: dict[int, int], latency_sum: float = 0.0) -> Bucket:
    row = [0] * _N + [0, 0, 0]
    row[SUM_COLUMNS.index("requests")] = requests
    row[SUM_COLUMNS.index("latency_sum")] = latency_sum
    row[SUM_COLUMNS.index("latency_min")] = 1.0
    row[SUM_COLUMNS.index("latency_max")] = 2.0
    keys = np.array(sorted(hist), np.int16)
    counts = np.array([hist[k] for k in sorted(hist)], np.uint64)
    return Bucket(tag, tuple(row), keys.view(np.uint16), counts)


def test_missing_lists_absent_and_retagged_buckets_with_rows_only() -> None:
    s = ScopeSeries()
    s.put({60: bucket(3, 1, {1: 1}), 120: bucket(2, 1, {1: 1})})
    assert s.missing({60: 3, 120: 5, 180: 1, 240: 0}) == [120, 180]
    assert s.missing({60: 3, 120: 2}) == []


def test_window_sums_points_and_histogram_exactly() -> None:
    s = ScopeSeries()
    h1, h2 = {sketch.ZERO_BUCKET: 2, -5: 1, 300: 4}, {300: 1, 301: 7}
    s.put({60: bucket(1, 7, h1, 10.5), 180: bucket(1, 8, h2, 4.5)})
    w = s.window(0, 240, 60, {60: 1, 180: 1})
    assert list(w.points) == [0, 60, 120, 180]
    assert (w.points[0].requests, w.points[60].requests, w.points[180].requests) == (0, 7, 8)
    assert w.points[0].latency_min is None
    assert (w.total.requests, w.total.latency_sum) == (15, 15.0)
    assert w.hist == sketch.merge([h1, h2])
    assert [w.total.p50, w.total.p95, w.total.p99] == sketch.quantiles(w.hist, (0.5, 0.95, 0.99))


def test_incremental_window_equals_a_rebuild_as_buckets_change_and_slide() -> None:
    rng = random.Random(5)
    inc = ScopeSeries()
    truth: dict[int, dict[int, int]] = {}
    counters: dict[int, int] = {}
    for step in range(200):
        start = 60 * (step // 10)
        end = start + 60 * 30
        b = start + 60 * rng.randrange(30)
        hist = {rng.randrange(-40, 40): rng.randrange(1, 9) for _ in range(rng.randrange(1, 6))}
        counters[b] = counters.get(b, 0) + 1
        truth[b] = hist
        inc.put({b: bucket(counters[b], sum(hist.values()), hist)})
        in_range = {t: n for t, n in counters.items() if start <= t < end}
        w = inc.window(start, end, 60, in_range)
        assert w.hist == sketch.merge([truth[t] for t in in_range]), step
        rebuilt = ScopeSeries()
        rebuilt.put({t: inc.buckets[t] for t in in_range})
        assert rebuilt.window(start, end, 60, in_range).hist == w.hist
        assert w.total.requests == sum(sum(truth[t].values()) for t in in_range)
    assert min(inc.buckets) >= start - (end - start)  # older buckets were pruned


def test_pruning_keeps_the_longest_window_asked() -> None:
    s = ScopeSeries()
    s.put({t: bucket(1, 1, {1: 1}) for t in range(0, 7200, 60)})
    counters = {t: 1 for t in range(0, 7200, 60)}
    s.window(0, 7200, 60, counters)  # a 2 h window
    s.window(6600, 7200, 60, {t: 1 for t in range(6600, 7200, 60)})  # then a 10 min one
    assert min(s.buckets) == 0  # within 2 h of the short window's start
    s.window(14400, 15000, 60, {})
    assert s.buckets == {}


def test_series_cache_bounds_and_disabled_mode() -> None:
    cache = SeriesCache(max_buckets=3, max_scopes=2)
    a = cache.scope("a")
    a.put({60: bucket(1, 1, {1: 1}), 120: bucket(1, 1, {1: 1})})
    b = cache.scope("b")
    b.put({60: bucket(1, 1, {1: 1})})
    cache.trim()
    assert cache.scope("a") is a and cache.buckets == 3  # "a" is now the most recent
    cache.scope("c").put({60: bucket(1, 1, {1: 1})})
    cache.trim()  # 3 scopes > 2 and 4 buckets > 3: the least recently used go first
    assert cache.scope("b") is not b
    off = SeriesCache(max_buckets=0)
    s = off.scope("a")
    s.put({60: bucket(1, 1, {1: 1})})
    assert off.scope("a") is not s and off.buckets == 0


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_parse_buckets_reads_rowbinary_rows() -> None:
    rows = []
    for t, keys in ((1_800_000_000, [sketch.ZERO_BUCKET, -3, 250]),
                    (1_800_000_060, list(range(200)))):
        sums = [float(i) + 0.5 if name in {"work_units", "latency_sum", "latency_min",
                                           "latency_max", "queue_ms_sum", "cold_start_ms_sum",
                                           "gpu_seconds"} else i + 1
                for i, name in enumerate(SUM_COLUMNS)]
        fixed = _FIXED.pack(t, 9, *sums, 250, 251, 252)
        counts = [k % 7 + 1 for k in range(len(keys))]
        rows.append((t, sums, keys, counts, fixed + _varint(len(keys))
                     + struct.pack(f"<{len(keys)}h", *keys) + _varint(len(counts))
                     + struct.pack(f"<{len(counts)}Q", *counts)))
    parsed = parse_buckets(b"".join(r[-1] for r in rows))
    for t, sums, keys, counts, _ in rows:
        c = parsed[t]
        assert c.tag == 9 and list(c.row[:_N]) == sums and list(c.row[_N:]) == [250, 251, 252]
        assert c.slots.view(np.int16).tolist() == keys and c.counts.tolist() == counts
        assert c.sums.requests == 1 and c.sums.p50 == sketch.bucket_value(250)
