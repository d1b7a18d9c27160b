"""The Endpoints page's row: the current stats as `/get_endpoint_stats/` gives them, the p95
and requests of the 1h/1m metrics document, and the last 30 points of its throughput."""

from __future__ import annotations

from query_api.ui.overview import SPARK_POINTS, row_json
from query_api.ui.store import EndpointRow

CURRENT = {"capacity": 150.0, "curload": 3.0, "nworkers": 2, "reliable": 0.9, "reqrate": 2.0,
           "totreqs": 207}


def doc(p95: float | None, points: int) -> dict:
    return {"summary": {"p95Latency": p95, "totalExecutions": 207},
            "performance": {"throughput": {"timeSeries": [
                {"timestamp": f"t{i}", "requestsPerSecond": i / 60} for i in range(points)]}}}


def test_row_takes_stats_p95_in_ms_and_the_last_half_hour() -> None:
    row = row_json(EndpointRow("acme", 11, "llm-a", 1_800_000_000_500), CURRENT, doc(0.1179, 61))
    assert row == {
        "tenant": "acme", "id": 11, "name": "llm-a", "lastSeen": 1_800_000_000.5,
        "reqrate": 2.0, "reliable": 0.9, "nworkers": 2, "capacity": 150.0, "curload": 3.0,
        "totreqs": 207, "p95LatencyMs": 117.9, "requests1h": 207,
        "spark": [i / 60 for i in range(31, 61)]}
    assert len(row["spark"]) == SPARK_POINTS


def test_row_without_requests_or_performance_section() -> None:
    row = row_json(EndpointRow("acme", 12, "", 0), {**CURRENT, "reliable": None},
                   {"summary": {"p95Latency": None, "totalExecutions": 0}})
    assert row["p95LatencyMs"] is None and row["reliable"] is None and row["spark"] == []
