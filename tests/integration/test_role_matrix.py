"""The role matrix: every route × every role (reader, admin, superadmin, no key) × own/other
tenant → the expected HTTP status.

Data-driven: one `Row` per route. To cover a new route family, append rows to `ROWS` (a
`call` that builds the request for a caller key and a target tenant, and the expected
statuses). `test_every_route_has_a_row` fails when a route exists without a row.

"own" targets the caller's tenant (acme), "other" a second tenant (rival). For routes that take
no tenant, "other" sends the other tenant's resource (an endpoint id, a key id) or, for Coopr
routes, the other tenant in `Coopr-TenantID`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.producer import Producer

OWN, OTHER = "acme", "rival"
ROLES = ("reader", "admin", "superadmin")
ENDPOINT = {OWN: 1, OTHER: 2}


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    json: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


# call(stack, caller key or None, target tenant) -> request
Call = Callable[[Any, str | None, str], Awaitable[Req]]


@dataclass(frozen=True)
class Row:
    route: str                 # "METHOD /path" as FastAPI declares it
    call: Call
    anon: int                  # no key at all
    reader: tuple[int, int]    # (own tenant, other tenant)
    admin: tuple[int, int]
    superadmin: tuple[int, int]


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def coopr(key: str | None, tenant: str) -> dict[str, str]:
    if not key:
        return {}
    return {"Coopr-UserID": "admin", "Coopr-ApiKey": key, "Coopr-TenantID": tenant}


def get(path: str) -> Call:
    async def call(stack: Any, key: str | None, tenant: str) -> Req:
        return Req("GET", path.format(tenant=tenant), headers=bearer(key))
    return call


def coopr_get(path: str) -> Call:
    async def call(stack: Any, key: str | None, tenant: str) -> Req:
        return Req("GET", path, headers=coopr(key, tenant))
    return call


def stats(path: str, field_: str) -> Call:
    async def call(stack: Any, key: str | None, tenant: str) -> Req:
        return Req("POST", path, {field_: ENDPOINT[tenant]}, bearer(key))
    return call


async def sql_call(stack: Any, key: str | None, tenant: str) -> Req:
    return Req("POST", "/sql", {"query": "SELECT 1"}, bearer(key))


async def create_key(stack: Any, key: str | None, tenant: str) -> Req:
    return Req("POST", "/admin/keys", {"tenant": tenant, "role": "reader"}, bearer(key))


async def revoke_key(stack: Any, key: str | None, tenant: str) -> Req:
    target = await stack.key(tenant, "reader")
    key_id = target.split("_")[1]
    return Req("DELETE", f"/admin/keys/{key_id}", headers=bearer(key))


ROWS: list[Row] = [
    Row("GET /healthz", get("/healthz"), 200, (200, 200), (200, 200), (200, 200)),
    Row("GET /readyz", get("/readyz"), 200, (200, 200), (200, 200), (200, 200)),
    Row("GET /metrics", get("/metrics"), 200, (200, 200), (200, 200), (200, 200)),
    Row("POST /get_endpoint_stats/", stats("/get_endpoint_stats/", "id"), 401,
        (200, 403), (200, 403), (200, 200)),
    Row("POST /get_autogroup_stats/", stats("/get_autogroup_stats/", "id"), 401,
        (200, 403), (200, 403), (200, 200)),
    Row("POST /sql", sql_call, 401, (403, 403), (403, 403), (200, 200)),
    Row("POST /admin/keys", create_key, 401, (403, 403), (201, 403), (201, 201)),
    Row("GET /admin/keys", get("/admin/keys?tenant={tenant}"), 401,
        (403, 403), (200, 403), (200, 200)),
    Row("DELETE /admin/keys/{key_id}", revoke_key, 401, (403, 403), (200, 404), (200, 200)),
    Row("GET /v2/metrics/custom/timeseries",
        get("/v2/metrics/custom/timeseries?name=m&tenant={tenant}"), 401,
        (200, 403), (200, 403), (200, 200)),
    Row("GET /v2/metrics/custom/series", get("/v2/metrics/custom/series?tenant={tenant}"), 401,
        (200, 403), (200, 403), (200, 200)),
    Row("GET /v2/metrics/queues", coopr_get("/v2/metrics/queues"), 401,
        (403, 403), (200, 403), (200, 403)),
    Row("GET /v2/metrics/nodes/usage", coopr_get("/v2/metrics/nodes/usage"), 401,
        (403, 403), (200, 403), (200, 403)),
    Row("GET /v2/metrics/nodes/usage?tenant", get("/v2/metrics/nodes/usage?tenant={tenant}"),
        401, (403, 403), (405, 405), (200, 200)),
]

#: Routes served by FastAPI itself (documentation), outside the role model.
UNGUARDED = {"GET /openapi.json", "GET /docs", "GET /docs/oauth2-redirect", "GET /redoc",
             "HEAD /openapi.json", "HEAD /docs", "HEAD /docs/oauth2-redirect", "HEAD /redoc"}


async def _stack(stack_factory: Any) -> tuple[Any, dict[str, str]]:
    stack = await stack_factory()
    s = stack.settings
    async with Producer(s.kafka_bootstrap, s.topics) as p:
        for tenant, ep in ENDPOINT.items():
            await p.send("requests", {"v": 1, "type": "request", "ts": time.time(),
                                      "tenant": tenant, "endpoint_id": ep, "autogroup_id": ep,
                                      "status": 200})
    await stack.wait_for(lambda: stack.rows("SELECT count() FROM {db}.autogroups FINAL"),
                         [(2,)])
    return stack, {role: await stack.key(OWN, role) for role in ROLES}


async def test_role_matrix(stack_factory):
    stack, keys = await _stack(stack_factory)
    failures = []
    checked = 0
    for row in ROWS:
        cases: list[tuple[str, str | None, str, int]] = [("anon", None, OWN, row.anon)]
        for role in ROLES:
            own, other = getattr(row, role)
            cases += [(role, keys[role], OWN, own), (role, keys[role], OTHER, other)]
        for who, key, tenant, expected in cases:
            req = await row.call(stack, key, tenant)
            r = await stack.http.request(req.method, req.path, json=req.json,
                                         headers=req.headers)
            checked += 1
            if r.status_code != expected:
                failures.append(f"{row.route} as {who} on {tenant}: {r.status_code} "
                                f"(expected {expected}) {r.text[:150]}")
            if r.status_code >= 400:
                body = r.json()
                if not (isinstance(body.get("error"), str) and body.get("message")):
                    failures.append(f"{row.route} as {who}: error body {body!r}")
    assert not failures, "\n".join(failures)
    assert checked == len(ROWS) * 7


async def test_every_route_has_a_row(stack_factory):
    stack = await stack_factory()
    declared = set()
    for route in stack.rt.api_app.routes:
        for method in getattr(route, "methods", None) or ():
            declared.add(f"{method} {route.path}")
    covered = {row.route.split("?")[0] for row in ROWS}
    missing = sorted(declared - covered - UNGUARDED)
    assert not missing, f"routes without a role-matrix row: {missing}"
