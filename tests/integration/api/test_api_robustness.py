"""Hostile input gets a 4xx JSON error, never a 5xx: oversized and streamed bodies, deep JSON,
invalid UTF-8, huge numbers; and no route shows one tenant's data to another."""

from __future__ import annotations

import time

import pytest

from pipeline.sdk.producer import Producer


@pytest.fixture
async def api(stack_factory):
    stack = await stack_factory()
    now = time.time()
    async with Producer(stack.settings.kafka_bootstrap, stack.settings.topics) as p:
        for tenant, ep, ag in (("acme", 1, 10), ("rival", 2, 20)):
            await p.send("requests", {"v": 1, "type": "request", "ts": now, "tenant": tenant,
                                      "endpoint_id": ep, "endpoint": f"{tenant}-ep",
                                      "autogroup_id": ag, "status": 200})
    await stack.wait_for(lambda: stack.rows("SELECT count() FROM {db}.endpoints FINAL"), [(2,)])
    return stack, await stack.key("acme", "admin")


STATS = "/get_endpoint_stats/"


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,                         # deep arrays
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,                 # deep objects
    b'{"id": 1, "endpoint": "\xff\xfe"}',                     # invalid UTF-8
    b'{"id": 1, "endpoint": "\xed\xa0\x80"}',                 # a lone surrogate
    b"\x00\x01\x02",
    b'{"id": 1e400}',
])
async def test_malformed_bodies_are_400(api, body):
    stack, key = api
    r = await stack.http.post(STATS, content=body, headers={"Authorization": f"Bearer {key}",
                                                            "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "INVALID_PARAMETERS"


@pytest.mark.parametrize("body,param", [
    ({"id": 2**64}, "id"),
    ({"id": 10**30}, "id"),
    ({"id": -1}, "id"),
    ({"metric_name": "reqrate", "t1": 0, "t2": 1e300}, "t2"),
    ({"metric_name": "reqrate", "t1": 1e20, "t2": 1e21, "step": 10**19}, "t1"),
    ({"metric_name": "reqrate", "t1": 100, "t2": 200, "step": 10**30}, "step"),
    ({"metric_name": "reqrate", "t1": -1e300, "t2": 1}, "t1"),
])
async def test_huge_numbers_are_400(api, body, param):
    stack, key = api
    for route, ident in ((STATS, 1), ("/get_autogroup_stats/", 10)):
        r = await stack.http.post(route, json={"id": ident, **body},
                                  headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 400, (route, r.text)
        assert r.json()["details"]["parameter"] == param


async def test_oversized_bodies_are_413_without_reading_them_whole(api):
    stack, key = api
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    big = b'{"id": 1, "endpoint": "' + b"x" * (2 << 20) + b'"}'
    r = await stack.http.post(STATS, content=big, headers=auth)
    assert r.status_code == 413 and r.json()["error"] == "PAYLOAD_TOO_LARGE"

    async def chunks():  # no Content-Length: streamed, cut off at the limit
        for _ in range(64):
            yield b" " * (1 << 20)

    r = await stack.http.post(STATS, content=chunks(), headers=auth)
    assert r.status_code == 413 and r.json()["error"] == "PAYLOAD_TOO_LARGE"


async def test_no_route_leaks_another_tenants_data(api):
    stack, acme_admin = api
    rival_admin = await stack.key("rival", "admin")
    rival_reader = await stack.key("rival", "reader")
    for key in (rival_admin, rival_reader):
        h = {"Authorization": f"Bearer {key}"}
        for route, body in ((STATS, {"id": 1}), ("/get_autogroup_stats/", {"id": 10})):
            r = await stack.http.post(route, json=body, headers=h)
            assert r.status_code == 403, r.text
        r = await stack.http.post(STATS, json={"endpoint": "acme-ep"}, headers=h)
        assert r.status_code == 404
        # SQL reads every tenant's rows: superadmin only
        r = await stack.http.post("/sql", json={"query": "SELECT tenant FROM "
                                                f"{stack.settings.clickhouse_database}."
                                                "requests_raw"}, headers=h)
        assert r.status_code == 403 and r.json()["details"]["requiredPermission"] == "superadmin"
    h = {"Authorization": f"Bearer {rival_admin}"}
    listed = (await stack.http.get("/admin/keys", headers=h)).json()["keys"]
    assert {k["tenant"] for k in listed} == {"rival"}
    acme_key_id = acme_admin.split("_")[1]
    r = await stack.http.delete(f"/admin/keys/{acme_key_id}", headers=h)
    assert r.status_code == 404
    r = await stack.http.post("/admin/keys", json={"tenant": "acme", "role": "reader"},
                              headers=h)
    assert r.status_code == 403
    r = await stack.http.post(STATS, json={"id": 2}, headers=h)
    assert r.status_code == 200 and r.json()["totreqs"] == 1
