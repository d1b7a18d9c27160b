"""`/healthz` and `/readyz` answered by the HTTP protocol itself, in its parser callback.

A probe routed like any other request waits its turn behind every request already queued on the
event loop: at 50 concurrent clients `/healthz` took 59 ms at p99 (bench/results.md), and an
orchestrator's liveness probe would restart a healthy process under load. Answered from the
parser callback it costs one callback and one write: no task, no middleware, no router, so it
waits only for the loop's current turn.

The answers are the routes' own (`query_api/ops/routes.py` declares both routes for OpenAPI and
still serves them over h11, and in processes without a readiness monitor). A probe is left to
the routes when

- an answer before it on the same connection is still under way (HTTP/1.1 answers in order),
  or it carries a body;
- it asks `/readyz` of a process whose `Health` has no storage check (the route then probes
  storage itself, which takes a round trip).

Each probe answered here is observed in `vitals_api_request_seconds{route}` as a routed one is.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from pipeline.cli.readiness import readiness_document
from query_api.context import ApiContext
from query_api.http_answer import http_answer

__all__ = ["ALIVE", "ALIVE_BODY", "Probes", "readyz_answer"]

ALIVE = {"status": "ok"}
#: `/healthz`'s body, as every path that answers it sends it
ALIVE_BODY = orjson.dumps(ALIVE)


def readyz_answer(checks: list[Any], lag: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, headers) of `/readyz` from the checks and the agents' lag: 200 when
    every check is ready, else 503 with `Retry-After` and the failing checks named."""
    ready, body = readiness_document(checks, lag)
    if ready:
        return 200, body, {}
    failing = [f"{name} {c['state']}" + (f" ({c['reason']})" if c.get("reason") else "")
               for name, c in body["checks"].items() if c["state"] not in ("ok", "consuming")]
    return 503, {"error": "NOT_READY", "message": "; ".join(failing), **body}, \
        {"Retry-After": "2"}


class Probes:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def document(self, path: bytes, *, monitored_only: bool = True
                 ) -> tuple[int, dict[str, str], bytes] | None:
        """(status, extra headers, body) of probe `path`, or None when it is no probe, or it is
        `/readyz` of a process whose `Health` has no storage check and `monitored_only`."""
        if path == b"/healthz":
            return 200, {}, ALIVE_BODY
        if path != b"/readyz":
            return None
        checks = self._ctx.health.snapshot()
        if monitored_only and not any(c.name == "storage" for c in checks):
            return None
        status, doc, headers = readyz_answer(checks, self._ctx.lag())
        return status, headers, orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)

    def answer(self, method: bytes, target: bytes, default_headers: list[tuple[bytes, bytes]],
               keep_alive: bool) -> bytes | None:
        """The whole HTTP/1.1 answer to `method target`, or None when the routes answer it."""
        if method not in (b"GET", b"HEAD"):
            return None
        path = target.partition(b"?")[0]
        started = time.perf_counter()
        found = self.document(path)
        if found is None:
            return None
        status, headers, body = found
        extra = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        answer = http_answer(STATUS_LINE[status], [*default_headers, *extra], body,
                             head_only=method == b"HEAD", keep_alive=keep_alive)
        self._ctx.telemetry.observe("vitals_api_request_seconds", time.perf_counter() - started,
                                    route=path.decode())
        return answer
