"""query_api.vast_worker.reports: what a pyworker's reports become. The field list is checked
against the `vastai` package's own `WorkerStatusData` and the request entries its Metrics
sends, so a new pyworker field is noticed here."""

from __future__ import annotations

import dataclasses

import pytest
from vastai.serverless.server.lib.data_types import RequestMetrics, WorkerStatusData

from query_api.errors import ApiError
from query_api.vast_worker import reports

SCOPE = {"tenant": "acme", "endpoint_id": 7, "autogroup_id": 70}
NOW = 1_800_000_000.5


def test_every_pyworker_status_field_is_mapped() -> None:
    assert set(reports.STATUS_FIELDS) == {f.name for f in dataclasses.fields(WorkerStatusData)}


def test_delete_request_entries_come_from_request_metrics() -> None:
    sent = {"request_idx", "success", "status", "entered_queue_at", "work_started_at",
            "work_completed_at"}  # vastai/serverless/server/lib/metrics.py requests_payload
    assert sent <= {f.name for f in dataclasses.fields(RequestMetrics)}


def test_status_report_becomes_a_heartbeat() -> None:
    status = WorkerStatusData(
        id=501, mtoken="vk_secret", version="1.1.0", loadtime=3.5, cur_load=4.0, rej_load=1.0,
        new_load=12.0, error_msg="x" * 5000, max_perf=12.5, cur_perf=9.0, cur_capacity=0,
        max_capacity=0, num_requests_working=2, num_requests_recieved=40,
        additional_disk_usage=-0.5, disk_usage=14.7, working_request_idxs=[3, 4],
        url="http://10.0.0.1:5000")
    hb = reports.heartbeat(dataclasses.asdict(status), now=NOW, **SCOPE)
    assert hb == {"v": 1, "type": "heartbeat", "ts": NOW, "id": 501, **SCOPE,
                  "loadtime": 3.5, "cur_load": 4.0, "new_load": 12.0, "rej_load": 1.0,
                  "max_perf": 12.5, "cur_perf": 9.0, "cur_capacity": 0, "max_capacity": 0,
                  "num_requests_working": 2, "num_requests_recieved": 40,
                  "error_msg": "x" * 4096}
    assert "vk_secret" not in str(hb)
    with pytest.raises(ApiError) as exc:
        reports.heartbeat({"id": "w1"}, now=NOW, **SCOPE)
    assert exc.value.details["parameter"] == "id"


def test_request_outcomes() -> None:
    body = {"worker_id": 501, "mtoken": "k", "requests": [
        {"request_idx": 1, "success": True, "status": "Success", "entered_queue_at": 100.0,
         "work_started_at": 100.25, "work_completed_at": 101.0},
        {"request_idx": 2, "success": True, "status": "Cancelled", "entered_queue_at": 100.0,
         "work_started_at": 100.5, "work_completed_at": 0.0},
        {"request_idx": 3, "success": False, "status": "Rejected", "entered_queue_at": 102.0,
         "work_started_at": 0.0, "work_completed_at": 0.0},
        {"request_idx": 4, "success": False, "status": "Error", "entered_queue_at": 103.0,
         "work_started_at": 103.0, "work_completed_at": 103.5},
        {"request_idx": 5, "success": False, "status": "Created"},
    ]}
    ev = reports.request_events(body, now=NOW, **SCOPE)
    assert [(e["id"], e["status"], e.get("error_kind", ""), e["ts"]) for e in ev] == [
        ("vast:501:1", 200, "", 101.0), ("vast:501:2", 200, "", 100.5),
        ("vast:501:3", 429, "resource_exhausted", 102.0), ("vast:501:4", 500, "server", 103.5),
        ("vast:501:5", 500, "server", NOW)]
    assert ev[0]["latency_ms"] == 750.0 and ev[0]["queue_ms"] == 250.0
    assert ev[1]["latency_ms"] == 0.0 and ev[2]["queue_ms"] == 0.0
    assert all(e["work_units"] == 0.0 and e["worker_id"] == 501 for e in ev)
    for bad, parameter in (({"worker_id": 1, "requests": {}}, "requests"),
                           ({"requests": []}, "worker_id"),
                           ({"worker_id": 1, "requests": [{"request_idx": 1,
                                                           "work_started_at": "x"}]},
                            "requests[0].work_started_at")):
        with pytest.raises(ApiError) as exc:
            reports.request_events(bad, now=NOW, **SCOPE)
        assert exc.value.details["parameter"] == parameter
