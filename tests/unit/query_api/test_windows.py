import random

import pytest

from query_api.windows import default_step, sample_points, series_resolution, split_range


def covered(pieces):
    seconds = []
    for _table, lo, hi in pieces:
        seconds.extend(range(lo, hi))
    return seconds


@pytest.mark.parametrize("lo,hi", [(0, 1), (5, 5), (59, 61), (3599, 7201), (100, 90000),
                                   (1700000000, 1700086400)])
def test_split_range_covers_exactly_once(lo, hi):
    pieces = split_range(lo, hi)
    if hi - lo < 200_000:
        assert covered(pieces) == list(range(lo, hi))
    for table, a, b in pieces:
        width = {"requests_1h": 3600, "requests_1m": 60, "requests_1s": 1}[table]
        assert a % width == 0 and b % width == 0 and a < b


def test_split_range_random_properties():
    rng = random.Random(7)
    for _ in range(300):
        lo = rng.randrange(0, 20000)
        hi = lo + rng.randrange(0, 20000)
        assert covered(split_range(lo, hi)) == list(range(lo, hi))


def test_split_range_prefers_coarse_tables():
    assert split_range(3600, 7200) == [("requests_1h", 3600, 7200)]
    assert split_range(3540, 7260) == [("requests_1m", 3540, 3600), ("requests_1h", 3600, 7200),
                                       ("requests_1m", 7200, 7260)]
    assert split_range(3539, 3541) == [("requests_1s", 3539, 3541)]
    assert split_range(3539, 3661) == [("requests_1s", 3539, 3540), ("requests_1m", 3540, 3660),
                                       ("requests_1s", 3660, 3661)]


def test_sample_points_half_open():
    assert sample_points(5000, 5010, 5) == [5000, 5005]
    assert default_step(5000, 5010) == 5
    assert default_step(0, 86400) == 120


def test_series_resolution():
    assert series_resolution(3600, 3600, 7200) == 3600
    assert series_resolution(60, 60, 120) == 60
    assert series_resolution(61, 60, 120) == 1
