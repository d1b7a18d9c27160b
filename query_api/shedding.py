"""Load shedding, liveness and request timing, as plain ASGI middleware (no per-request task).

`LoadShedder` bounds the requests in flight: when `max_inflight` are already being served, a
new one is answered at once with 503 OVERLOADED and `Retry-After: 1` (counted in
`vitals_api_shed_total`) instead of queueing behind them, so latency past capacity stays that of
the requests admitted and a client hears "come back in a second" within a millisecond rather
than waiting seconds. `/healthz`, `/readyz` and `/metrics` are never shed nor counted: a probe
must answer whatever the load. The limit is `VITALS_API_MAX_INFLIGHT` (per API process).

`RequestTiming` observes each request's latency into `vitals_api_request_seconds{route}`.

`Liveness` answers `GET /healthz` before routing (the route stays declared for OpenAPI) when the
HTTP protocol has not answered it already (query_api/probes.py): over h11, behind an answer
still under way on the same connection, or with a body. The probe says the process and its event
loop run, and costs the loop a few microseconds, however many routes the router scans.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline.core.telemetry import Telemetry
from query_api.errors import ApiError
from query_api.probes import ALIVE_BODY

__all__ = ["EXEMPT_PATHS", "Liveness", "LoadShedder", "RequestTiming"]

#: Paths served whatever the load (probes and the metrics scrape).
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@dataclass(slots=True)
class LoadShedder:
    app: ASGIApp
    max_inflight: int
    telemetry: Telemetry
    inflight: int = field(default=0, init=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.max_inflight:
            self.telemetry.inc("vitals_api_shed_total")
            await ApiError(
                503, "OVERLOADED",
                f"the API is serving its limit of {self.max_inflight} requests at once "
                f"(VITALS_API_MAX_INFLIGHT); retry after 1 s",
                {"limit": self.max_inflight, "retryAfter": 1},
                headers={"Retry-After": "1"}).send(send)
            return
        self.inflight += 1
        self.telemetry.set("vitals_api_inflight", self.inflight)
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
            self.telemetry.set("vitals_api_inflight", self.inflight)


@dataclass(slots=True)
class RequestTiming:
    app: ASGIApp
    telemetry: Telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")
            self.telemetry.observe("vitals_api_request_seconds",
                                    time.perf_counter() - started,
                                    route=getattr(route, "path", "unmatched"))


_ALIVE_HEADERS = [(b"content-length", str(len(ALIVE_BODY)).encode()),
                  (b"content-type", b"application/json")]


@dataclass(slots=True)
class Liveness:
    app: ASGIApp
    telemetry: Telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/healthz" \
                or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        await send({"type": "http.response.start", "status": 200, "headers": _ALIVE_HEADERS})
        await send({"type": "http.response.body",
                    "body": ALIVE_BODY if scope["method"] == "GET" else b""})
        self.telemetry.observe("vitals_api_request_seconds", time.perf_counter() - started,
                                route="/healthz")

