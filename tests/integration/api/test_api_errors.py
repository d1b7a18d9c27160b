"""Every error of the stats API: JSON bodies with a stable code naming the parameter."""

from __future__ import annotations

import asyncio
import time

import pytest

from pipeline.sdk.producer import Producer


@pytest.fixture
async def api(stack_factory):
    stack = await stack_factory()
    now = time.time()
    async with Producer(stack.settings.kafka_bootstrap, stack.settings.topics) as p:
        await p.send("requests", {"v": 1, "type": "request", "ts": now, "tenant": "acme",
                                  "endpoint_id": 1, "endpoint": "mine", "autogroup_id": 10,
                                  "status": 200})
        await p.send("requests", {"v": 1, "type": "request", "ts": now, "tenant": "rival",
                                  "endpoint_id": 2, "endpoint": "theirs", "autogroup_id": 20,
                                  "status": 200})
    await stack.wait_for(lambda: stack.rows("SELECT count() FROM {db}.endpoints FINAL"), [(2,)])
    return stack, await stack.key("acme", "reader")


async def test_auth_errors(api):
    stack, key = api
    r = await stack.http.post("/get_endpoint_stats/", json={"id": 1})
    assert r.status_code == 401 and r.json()["error"] == "UNAUTHORIZED"
    r = await stack.http.post("/get_endpoint_stats/", json={"id": 1, "api_key": "vk_nope"})
    assert r.status_code == 401
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    r = await stack.http.post("/get_endpoint_stats/", json={"id": 1, "api_key": forged})
    assert r.status_code == 401
    r = await stack.http.post("/get_endpoint_stats/", json={"id": 2, "api_key": key})
    assert r.status_code == 403 and r.json()["error"] == "INSUFFICIENT_PERMISSIONS"
    r = await stack.http.post("/get_autogroup_stats/", json={"id": 20, "api_key": key})
    assert r.status_code == 403
    r = await stack.http.post("/get_endpoint_stats/", json={"endpoint": "theirs", "api_key": key})
    assert r.status_code == 404
    r = await stack.http.post("/get_endpoint_stats/", json={"id": 3, "api_key": key})
    assert r.status_code == 404 and r.json()["error"] == "NOT_FOUND"
    r = await stack.http.post("/get_autogroup_stats/", json={"id": 10, "api_key": key})
    assert r.status_code == 200 and r.json()["endpoint"] == "mine"
    r = await stack.http.post("/sql", json={"query": "SELECT 1", "api_key": key})
    assert r.status_code == 403 and r.json()["details"]["requiredPermission"] == "superadmin"


@pytest.mark.parametrize("body,param,allowed", [
    ({"id": 1, "metric_name": "bogus", "t1": 1, "t2": 2}, "metric_name",
     ["nworkers", "totreqs", "curload", "capacity", "reliable", "reqrate"]),
    ({"id": 1, "metric_name": "reqrate", "t1": 100, "t2": 50}, "t2", None),
    ({"id": 1, "metric_name": "reqrate", "t1": 100, "t2": 100}, "t2", None),
    ({"id": 1, "metric_name": "reqrate", "t2": 100}, "t1", None),
    ({"id": 1, "metric_name": "reqrate", "t1": 0, "t2": 10**9, "step": 1}, "t2", None),
    ({"id": 1, "metric_name": "reqrate", "t1": "yesterday", "t2": 10}, "t1", None),
    ({"id": 1, "metric_name": "reqrate", "t1": 1, "t2": 10, "step": 0}, "step", None),
    ({"id": "one"}, "id", None),
    ({"id": True}, "id", None),
    ({}, "id", None),
    ({"id": 1, "t1": 5}, "metric_name", None),
])
async def test_bad_parameters_are_400_naming_the_parameter(api, body, param, allowed):
    stack, key = api
    r = await stack.http.post("/get_endpoint_stats/", json={**body, "api_key": key})
    assert r.status_code == 400, r.text
    err = r.json()
    assert err["error"] == "INVALID_PARAMETERS"
    assert err["details"]["parameter"] == param
    assert param in err["message"]
    if allowed is not None:
        assert err["details"]["allowedValues"] == allowed


async def test_malformed_bodies(api):
    stack, key = api
    r = await stack.http.post("/get_endpoint_stats/", content=b"{oops",
                              headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 400 and r.json()["details"]["parameter"] == "body"
    r = await stack.http.post("/get_endpoint_stats/", content=b"[1,2]",
                              headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 400
    r = await stack.http.post("/get_endpoint_stats/", content=b"{" + b" " * (2 << 20) + b"}",
                              headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 413 and r.json()["error"] == "PAYLOAD_TOO_LARGE"
    r = await stack.http.get("/get_endpoint_stats/")
    assert r.status_code == 405 and r.json()["error"] == "METHOD_NOT_ALLOWED"
    r = await stack.http.get("/nope")
    assert r.status_code == 404 and r.json()["error"] == "NOT_FOUND"


async def test_health_docs_and_sql(api):
    stack, _ = api
    assert (await stack.http.get("/healthz")).json() == {"status": "ok"}
    for _ in range(300):  # ready once the worker joined its group
        ready = await stack.http.get("/readyz")
        if ready.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert ready.json()["status"] == "ready", ready.json()
    assert {"storage", "broker"} <= set(ready.json()["checks"])
    spec = (await stack.http.get("/openapi.json")).json()
    assert {"/get_endpoint_stats/", "/get_autogroup_stats/", "/sql"} <= set(spec["paths"])
    assert (await stack.http.get("/docs")).status_code == 200
    admin = await stack.key("acme", "superadmin")  # SQL reads every tenant: superadmin only
    r = await stack.http.post("/sql", json={
        "query": "SELECT tenant, endpoint_id FROM {db}.endpoints FINAL ORDER BY tenant".replace(
            "{db}", stack.settings.clickhouse_database),
        "format": "TSV", "api_key": admin})
    assert r.status_code == 200 and r.text == "acme\t1\nrival\t2\n"
    r = await stack.http.post("/sql", json={  # unqualified names: the Vitals database
        "query": "SELECT count() FROM endpoints FINAL", "format": "TSV", "api_key": admin})
    assert r.status_code == 200 and r.text == "2\n"
    r = await stack.http.post("/sql", json={
        "query": f"DROP TABLE {stack.settings.clickhouse_database}.endpoints", "api_key": admin})
    assert r.status_code == 400 and r.json()["error"] == "SQL_ERROR"
    r = await stack.http.post("/sql", json={"query": "SELECT 1", "format": "XML",
                                            "api_key": admin})
    assert r.status_code == 400 and "TSV" in r.json()["details"]["allowedValues"]
    # a query that names its own format is written in it (ClickHouse refuses two FORMATs)
    r = await stack.http.post("/sql", json={
        "query": "SELECT count() AS endpoints FROM endpoints FINAL format vertical;",
        "api_key": admin})
    assert r.status_code == 200 and r.text.split() == ["Row", "1:", "──────", "endpoints:", "2"]
    r = await stack.http.post("/sql", json={"query": "SELECT 1 AS one FORMAT CSVWithNames",
                                            "format": "CSVWithNames", "api_key": admin})
    assert r.status_code == 200 and r.text == '"one"\n1\n'
    r = await stack.http.post("/sql", json={"query": "SELECT 1 FORMAT CSV", "format": "TSV",
                                            "api_key": admin})
    assert r.status_code == 400 and r.json()["details"] == {
        "parameter": "format", "value": "TSV", "allowedValues": ["CSV"]}
    r = await stack.http.post("/sql", json={"query": "SELECT 1 FORMAT XML", "api_key": admin})
    assert r.status_code == 400 and r.json()["details"]["parameter"] == "query"
    assert "Vertical" in r.json()["details"]["allowedValues"]


async def test_a_key_without_the_bearer_scheme_is_told_to_add_it(stack_factory):
    stack = await stack_factory()
    key = await stack.key("acme", "admin")
    r = await stack.http.post("/get_endpoint_stats/", json={"id": 1},
                              headers={"Authorization": key})
    assert r.status_code == 401
    assert r.json()["error"] == "UNAUTHORIZED"
    assert "Authorization: Bearer <key>" in r.json()["message"]
    assert r.json()["details"] == {"parameter": "Authorization"}
    ok = await stack.http.post("/get_endpoint_stats/", json={"id": 1},
                               headers={"Authorization": f"Bearer {key}"})
    assert (ok.status_code, ok.json()["error"]) == (404, "NOT_FOUND")  # past auth: no such id
