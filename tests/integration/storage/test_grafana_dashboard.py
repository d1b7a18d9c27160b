"""Every panel of the provisioned Grafana dashboard (deploy/grafana/dashboards/vitals.json) runs
against embedded ClickHouse holding rows written by the worker's own batch builder, so the
dashboard cannot drift from the schema; the endpoint overview's numbers, sketch percentiles
included, equal the ground truth of the events."""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from pipeline.ingest.decode import EventChecker
from pipeline.ingest.rows.requests import SinkBatch
from pipeline.storage import sketch
from pipeline.storage.clickhouse import ClickHouseStore, migrate

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy/grafana/dashboards/vitals.json"
BASE = (int(time.time()) // 3600 - 2) * 3600  # whole hour, inside every retention
INTERVAL_S = 60


def expand(sql: str, db: str, *, frm: int, to: int, tenant: str) -> str:
    """Grafana's ClickHouse macros and the `tenant` variable, as the plugin expands them."""
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)",
                 lambda m: f"{m[1]} >= toDateTime({frm}) AND {m[1]} <= toDateTime({to})", sql)
    sql = re.sub(r"\$__timeInterval\(([^)]+)\)",
                 lambda m: f"toStartOfInterval(toDateTime({m[1]}), "
                           f"INTERVAL {INTERVAL_S} second)", sql)
    sql = (sql.replace("$__fromTime", f"toDateTime({frm})")
           .replace("$__toTime", f"toDateTime({to})")
           .replace("$__interval_s", str(INTERVAL_S)).replace("${tenant}", tenant))
    assert "$" not in sql, sql
    return re.sub(r"\bvitals\.", f"{db}.", sql)


def wire(kind: str, event: dict[str, Any]) -> dict[str, Any]:
    """A wire event as the worker stores it: validated, defaults filled, ts in ms."""
    return EventChecker(kind, now_ms=int(time.time() * 1000), max_future_ms=300_000)(event)


def request(ts: float, endpoint: int, latency: float, status: int = 200,
            **over: Any) -> dict[str, Any]:
    return wire("requests", {"v": 1, "type": "request", "ts": ts, "tenant": "acme",
                             "endpoint_id": endpoint, "endpoint": f"ep-{endpoint}",
                             "worker_id": 1, "status": status, "latency_ms": latency, **over})


def heartbeat(ts: float, worker: int) -> dict[str, Any]:
    return wire("heartbeats", {"v": 1, "type": "heartbeat", "ts": ts, "tenant": "acme",
                               "endpoint_id": 1, "endpoint": "ep-1", "id": worker,
                               "max_perf": 10.0, "cur_load": 1.0})


@pytest.fixture
def store(chdb_dsn: str) -> ClickHouseStore:
    s = ClickHouseStore(chdb_dsn, f"grafana_{uuid.uuid4().hex[:8]}")
    migrate(s)
    return s


def test_every_panel_runs_on_the_schema_and_the_overview_is_exact(store: ClickHouseStore
                                                                 ) -> None:
    events: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for i in range(600):  # endpoint 1: 10 minutes, one request a second
        status = 500 if i % 20 == 0 else 429 if i % 33 == 0 else 200
        events[1].append(request(BASE + i + 0.25, 1, 5.0 + (i * 7919) % 400, status))
    for i in range(40):  # endpoint 2, and a cold start
        events[2].append(request(BASE + 120 + i, 2, 80.0 + i, cold_start=i == 0,
                                 cold_start_ms=1500.0 if i == 0 else 0.0))
    other = [request(BASE + 5, 9, 1.0, tenant="other")]
    batch = SinkBatch()
    flat = [e for evs in events.values() for e in evs] + other
    for offset in range(0, len(flat), 100):  # several Kafka messages' worth
        batch.add_requests(0, offset, list(enumerate(flat[offset:offset + 100])))
    batch.add_heartbeats(0, 10_000, [(i, heartbeat(BASE + 10 * i, 1 + i % 3))
                                     for i in range(30)])
    batch.add_dead_letter("requests", 0, 10_001, 0, "missing required field endpoint_id",
                          b'{"v": 1}')
    batch.add_dead_letter("heartbeats", 0, 10_002, None, "not JSON: line 1 column 1", b"{")
    for table, names, cols in batch.tables():
        store.insert(table, cols, names)

    doc = json.loads(DASHBOARD.read_text())
    assert [v["name"] for v in doc["templating"]["list"]] == ["tenant"]
    tenants = store.rows(re.sub(r"\bvitals\.", f"{store.database}.",
                                doc["templating"]["list"][0]["query"]))
    assert tenants == [("acme",), ("other",)]
    now = int(time.time()) + 60  # dead letters are stamped when written
    results: dict[str, list[tuple[Any, ...]]] = {}
    for panel in doc["panels"]:
        assert panel["datasource"]["uid"] == "vitals-clickhouse"
        for t in panel["targets"]:
            sql = expand(t["rawSql"], store.database, frm=BASE - 60, to=now, tenant="acme")
            rows = store.rows(sql)
            assert rows, f"panel {panel['title']!r} returned no rows"
            results[panel["title"]] = rows

    overview = {r[0]: r for r in results["Endpoint overview"]}
    assert set(overview) == {1, 2}  # not the other tenant's endpoint 9
    for ep, evs in events.items():
        row = overview[ep]
        lat = [e["latency_ms"] for e in evs]
        hist: dict[int, int] = {}
        for x in lat:
            sketch.add(hist, x)
        ok = [e for e in evs if e["status"] < 400]
        assert row[1] == f"ep-{ep}"
        assert row[2] == len(evs)
        assert row[3] == round(100 * len(ok) / len(evs), 2)
        assert row[5] == pytest.approx(round(sum(lat) / len(lat), 2), abs=0.011)
        for col, qv in ((6, 0.5), (7, 0.95), (8, 0.99)):
            expected = sketch.quantile(hist, qv)
            assert expected is not None
            assert row[col] == pytest.approx(expected, abs=0.011), (ep, qv)
            true = sorted(lat)[max(1, math.ceil(qv * len(lat))) - 1]
            assert abs(row[col] - true) <= 0.01 * true + 0.01
        assert row[9] == sum(1 for e in evs if 400 <= e["status"] < 500)
        assert row[10] == sum(1 for e in evs if e["status"] >= 500)
        assert row[12] == sum(1 for e in evs if e["cold_start"])

    pct = results["Latency p50 / p95 / p99 (all endpoints, from the rollup sketches)"]
    assert len(pct) == 10  # one point per minute with requests
    assert sum(r[2] for r in results["Requests/s by endpoint"]) * INTERVAL_S == \
        pytest.approx(640)
    assert {r[1] for r in results["Dead letters per topic"]} == {"requests", "heartbeats"}
    reasons = {r[4] for r in results["Latest dead letters"]}
    assert reasons == {"missing required field endpoint_id", "not JSON: line 1 column 1"}
    assert {r[2] for r in results["Workers reporting (heartbeats)"]} <= {1, 2, 3}


def test_compose_provisions_the_datasource_and_dashboard_it_queries() -> None:
    root = DASHBOARD.parents[3]
    compose = (root / "docker-compose.yml").read_text()
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning" in compose
    assert "./deploy/grafana/dashboards:/etc/grafana/dashboards" in compose
    assert "GF_INSTALL_PLUGINS: grafana-clickhouse-datasource" in compose
    ds = (root / "deploy/grafana/provisioning/datasources/clickhouse.yaml").read_text()
    assert "uid: vitals-clickhouse" in ds and "type: grafana-clickhouse-datasource" in ds
    assert "defaultDatabase: vitals" in ds and "host: clickhouse" in ds
    provider = (root / "deploy/grafana/provisioning/dashboards/vitals.yaml").read_text()
    assert "path: /etc/grafana/dashboards" in provider
