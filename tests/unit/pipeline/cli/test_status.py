"""`vitals status` text from a `/readyz` body (pure; the live command is tested in
tests/integration/test_docs_examples.py against `vitals up`)."""

from __future__ import annotations

from pathlib import Path

from pipeline.cli.status import Broker, format_status


def test_status_names_every_part_and_each_consumer_lag() -> None:
    readyz = {"status": "not ready", "checks": {
        "agent:p-requests": {"state": "consuming", "since": 1.0, "lag": 12},
        "agent:p-heartbeats": {"state": "joining", "since": 1.0, "lag": None},
        "broker": {"state": "down", "since": 2.0,
                   "reason": "Kafka at 127.0.0.1:9092 does not answer"},
        "storage": {"state": "ok", "since": 1.0}}}
    text = format_status(data_dir=Path("/d"), api_url="http://127.0.0.1:8000",
                         key_file=Path("/d/admin.key"), key_present=False,
                         broker=Broker("127.0.0.1:9092", "KAFKA_BOOTSTRAP"), readyz=readyz)
    assert text.splitlines() == [
        "Vitals on /d: NOT READY",
        "  API:       http://127.0.0.1:8000  (OpenAPI: http://127.0.0.1:8000/docs)",
        "  dashboard: http://127.0.0.1:8000/ui",
        "  admin key: /d/admin.key  (missing: `vitals up` writes it at start)",
        "  Kafka:     127.0.0.1:9092  (KAFKA_BOOTSTRAP)",
        "  storage:   ok",
        "  broker:    down (Kafka at 127.0.0.1:9092 does not answer)",
        "  consumers:",
        "    topic         state      lag",
        "    p-heartbeats  joining      -",
        "    p-requests    consuming   12",
    ]
