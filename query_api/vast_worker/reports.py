"""What a vast.ai pyworker's reports become: heartbeat and request events. Pure: no I/O.

The worker (`pip install vastai`, `vastai.serverless.server`) reports to `REPORT_ADDR`; with
`REPORT_ADDR=<vitals>/vast/<endpoint_id>[/<autogroup_id>]` its reports arrive here. It sends no
timestamp, endpoint or tenant: the endpoint and autogroup come from the path, the tenant from
the key it sends as `mtoken` (its MASTER_TOKEN), the time of a status report from the API's
clock when it arrives.

`POST /worker_status/` → one heartbeat (`STATUS_FIELDS` says what each field becomes).
`POST /delete_requests/` → one request event per finished request (`request_event`).

The load a worker reports counts once: its `new_load` (work units that arrived since its last
accepted report) is stored with the heartbeat and counted in the stats API's `curload`; the
request events carry no work units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from query_api.errors import bad_param

__all__ = [
    "STATUS_FIELDS",
    "heartbeat",
    "request_event",
    "request_events",
]

MAX_ID = 9_007_199_254_740_991  # schemas/heartbeat.json: ids are JSON-safe integers
MAX_ERROR_MSG = 4096
MAX_MS = 86_400_000.0  # schemas/request.json: latency_ms and queue_ms

#: Every field of pyworker's `WorkerStatusData` and what it becomes in the heartbeat event
#: (None: accepted and not stored). The heartbeat fields are defined in schemas/heartbeat.json.
STATUS_FIELDS: dict[str, str | None] = {
    "id": "id (the worker id: pyworker sends CONTAINER_ID)",
    "mtoken": None,  # the Vitals key: authenticates the call, never stored
    "version": None,
    "loadtime": "loadtime",
    "cur_load": "cur_load",
    "new_load": "new_load (counted in curload)",
    "rej_load": "rej_load",
    "max_perf": "max_perf (summed over live workers: capacity)",
    "cur_perf": "cur_perf",
    "cur_capacity": "cur_capacity",
    "max_capacity": "max_capacity",
    "error_msg": "error_msg (cut to 4096 characters)",
    "num_requests_working": "num_requests_working",
    "num_requests_recieved": "num_requests_recieved",
    "additional_disk_usage": None,
    "disk_usage": None,
    "working_request_idxs": None,
    "url": None,
}
_NUMBERS = ("loadtime", "cur_load", "new_load", "rej_load", "max_perf", "cur_perf",
            "cur_capacity", "max_capacity")
_COUNTS = ("num_requests_working", "num_requests_recieved")


def _worker_id(body: Mapping[str, Any], name: str) -> int:
    v = body.get(name)
    if isinstance(v, str) and v.isascii() and v.isdigit() and len(v) <= 16:
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_ID:
        raise bad_param(name, v, f"{name} must be the worker id, an integer 0-{MAX_ID} "
                        f"(pyworker sends CONTAINER_ID)", allowed_range=(0, MAX_ID))
    return v


def _scope(tenant: str, endpoint_id: int, autogroup_id: int) -> dict[str, Any]:
    return {"v": 1, "tenant": tenant, "endpoint_id": endpoint_id, "autogroup_id": autogroup_id}


def heartbeat(body: Mapping[str, Any], *, tenant: str, endpoint_id: int, autogroup_id: int,
              now: float) -> dict[str, Any]:
    """The heartbeat event of one `/worker_status/` report received at `now` (epoch s).

    Values are passed as the worker sent them (the heartbeat schema judges them at the door);
    absent or null fields take the schema's defaults."""
    event = {**_scope(tenant, endpoint_id, autogroup_id), "type": "heartbeat", "ts": now,
             "id": _worker_id(body, "id")}
    for name in (*_NUMBERS, *_COUNTS):
        if body.get(name) is not None:
            event[name] = body[name]
    msg = body.get("error_msg")
    if msg is not None:
        event["error_msg"] = msg[:MAX_ERROR_MSG] if isinstance(msg, str) else msg
    return event


def _seconds(r: Mapping[str, Any], name: str, i: int) -> float:
    v = r.get(name, 0.0)
    if v is None:
        return 0.0
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise bad_param(f"requests[{i}].{name}", v, f"requests[{i}].{name} must be epoch "
                        f"seconds (a finite number >= 0, 0 for never)")
    return float(v)


def _span_ms(a: float, b: float) -> float:
    return min(MAX_MS, (b - a) * 1000) if a > 0 and b >= a else 0.0


def request_event(r: Mapping[str, Any], i: int, *, worker_id: int, tenant: str,
                  endpoint_id: int, autogroup_id: int, now: float) -> dict[str, Any]:
    """The request event of the `i`-th entry of a `/delete_requests/` report.

    - `ts` = `work_completed_at`, else `work_started_at`, else `entered_queue_at`, else now;
    - status: the worker's own verdict `success` decides: true → 200 (a request the client
      cancelled counts as served, as pyworker counts it); false with `status` "Rejected" →
      429 with error_kind `resource_exhausted` (the worker refused it: queue too long, or a
      bad signature); any other failure ("Error") → 500, error_kind `server`;
    - `latency_ms` = work_completed_at − work_started_at, `queue_ms` = work_started_at −
      entered_queue_at (0 when either end is missing);
    - `id` = "vast:<worker_id>:<request_idx>" (for tracing); `work_units` 0 (see the module)."""
    if not isinstance(r, Mapping):
        raise bad_param(f"requests[{i}]", r, f"requests[{i}] must be an object with "
                        f"request_idx, success, status and the three timestamps")
    idx = r.get("request_idx")
    if isinstance(idx, bool) or not isinstance(idx, (int, str)) or len(str(idx)) > 40:
        raise bad_param(f"requests[{i}].request_idx", idx,
                        f"requests[{i}].request_idx must be the request's index")
    entered = _seconds(r, "entered_queue_at", i)
    started = _seconds(r, "work_started_at", i)
    completed = _seconds(r, "work_completed_at", i)
    success = r.get("success") is True
    status_text = r.get("status")
    if success:
        status, kind = 200, ""
    elif status_text == "Rejected":
        status, kind = 429, "resource_exhausted"
    else:
        status, kind = 500, "server"
    event = {**_scope(tenant, endpoint_id, autogroup_id), "type": "request",
             "ts": completed or started or entered or now, "id": f"vast:{worker_id}:{idx}",
             "worker_id": worker_id, "status": status,
             "latency_ms": _span_ms(started, completed), "queue_ms": _span_ms(entered, started),
             "work_units": 0.0}
    if kind:
        event["error_kind"] = kind
    return event


def request_events(body: Mapping[str, Any], *, tenant: str, endpoint_id: int,
                   autogroup_id: int, now: float) -> list[dict[str, Any]]:
    """The request events of one `/delete_requests/` report (`worker_id`, `requests`)."""
    worker_id = _worker_id(body, "worker_id")
    requests = body.get("requests")
    if not isinstance(requests, list):
        raise bad_param("requests", requests, "requests must be a list of the worker's "
                        "finished requests")
    return [request_event(r, i, worker_id=worker_id, tenant=tenant, endpoint_id=endpoint_id,
                          autogroup_id=autogroup_id, now=now)
            for i, r in enumerate(requests)]
