"""Hostile query parameters get a 400 naming the parameter and its allowed range, never a 5xx;
405 carries `Allow`; an oversized request line or header block gets 414/431 in the API's error
shape instead of a reset; and `/openapi.json` declares every query parameter the GET routes read,
with the bounds the server enforces."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.api.api_helpers import one_endpoint

CUSTOM = "/v2/metrics/custom/timeseries"
SERIES = "/v2/metrics/custom/series"
USAGE = "/v2/metrics/nodes/usage"
ENDPOINT = "/v2/endpoints/1/metrics"
KEYS = "/admin/keys"
MAX_TS = 4_102_444_800


@pytest.fixture
async def api(stack_factory):
    stack = await stack_factory()
    return stack, await one_endpoint(stack)


HOSTILE = [
    (CUSTOM, {"t1": "nan"}, "t1"),
    (CUSTOM, {"t1": "inf"}, "t1"),
    (CUSTOM, {"t1": "-inf"}, "t1"),
    (CUSTOM, {"t2": "nan"}, "t2"),
    (CUSTOM, {"t2": "inf"}, "t2"),
    (CUSTOM, {"t2": "Infinity"}, "t2"),
    (CUSTOM, {"t1": "1e300"}, "t1"),
    (CUSTOM, {"t1": "0", "t2": "1e301"}, "t2"),
    (CUSTOM, {"t1": "0", "t2": "99999999999999999999"}, "t2"),
    (CUSTOM, {"t1": "-1", "t2": "10"}, "t1"),
    (CUSTOM, {"t1": "", "t2": "10"}, "t1"),
    (CUSTOM, {"t1": "0", "t2": "3600", "step": str(10**30)}, "step"),
    (CUSTOM, {"t1": "0", "t2": "3600", "step": "nan"}, "step"),
    (CUSTOM, {"t1": "0", "t2": "3600", "step": "0"}, "step"),
    (CUSTOM, {"t1": "0", "t2": "3600", "step": "1.5"}, "step"),
    (CUSTOM, {"name": ""}, "name"),
    (CUSTOM, {"aggregation": "median"}, "aggregation"),
    (CUSTOM, {"tag": "no-colon"}, "tag"),
    (CUSTOM, {"tenant": "x" * 65}, "tenant"),
    (SERIES, {"limit": "0"}, "limit"),
    (SERIES, {"limit": str(10**30)}, "limit"),
    (SERIES, {"limit": "nan"}, "limit"),
    (USAGE, {"end": "99999999999999999999"}, "end"),
    (USAGE, {"end": "9223372036854775"}, "end"),
    (USAGE, {"start": "9223372036854775", "end": "9223372036854776"}, "start"),
    (USAGE, {"start": "-1"}, "start"),
    (USAGE, {"end": "nan"}, "end"),
    (USAGE, {"end": "inf"}, "end"),
    (USAGE, {"end": "1e10"}, "end"),
    (USAGE, {"start": "10", "end": "5"}, "end"),
    (USAGE, {"user": "u" * 129}, "user"),
    (ENDPOINT, {"timeframe": "nan"}, "timeframe"),
    (ENDPOINT, {"granularity": "inf"}, "granularity"),
    (ENDPOINT, {"metrics": "everything"}, "metrics"),
    (KEYS, {"tenant": "x" * 65}, "tenant"),
]


@pytest.mark.parametrize("path,params,param", HOSTILE)
async def test_hostile_query_parameters_are_400_naming_the_parameter(api, path, params, param):
    stack, key = api
    query = {"name": "cpu", **params} if path == CUSTOM else params
    r = await stack.http.get(path, params=query, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 400, r.text
    err = r.json()
    assert err["error"] == "INVALID_PARAMETERS"
    assert err["details"]["parameter"] == param
    assert param in err["message"]


async def test_timestamps_and_durations_name_their_allowed_range(api):
    stack, key = api
    auth = {"Authorization": f"Bearer {key}"}
    r = await stack.http.get(USAGE, params={"end": "9223372036854775"}, headers=auth)
    assert r.status_code == 400
    assert r.json()["details"]["allowedRange"] == [0, MAX_TS]
    r = await stack.http.get(CUSTOM, params={"name": "cpu", "t2": "inf"}, headers=auth)
    assert r.json()["details"]["allowedRange"] == [0, MAX_TS]
    r = await stack.http.get(CUSTOM, params={"name": "cpu", "t1": "0", "t2": "10",
                                             "step": str(10**30)}, headers=auth)
    assert r.json()["details"]["allowedRange"] == [1, MAX_TS]
    # the bounds themselves are accepted
    r = await stack.http.get(USAGE, params={"start": "0", "end": str(MAX_TS)}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == {"start": 0, "end": MAX_TS, "data": [{"time": 0, "value": 0}]}
    r = await stack.http.get(CUSTOM, params={"name": "cpu", "t1": str(MAX_TS - 60),
                                             "t2": str(MAX_TS), "step": "60"}, headers=auth)
    assert r.status_code == 200, r.text


async def test_openapi_declares_the_query_parameters_with_their_bounds(api):
    stack, _ = api
    doc = (await stack.http.get("/openapi.json")).json()

    def params(path: str) -> dict[str, dict]:
        return {p["name"]: p for p in doc["paths"][path]["get"].get("parameters", [])
                if p["in"] == "query"}

    custom = params(CUSTOM)
    assert set(custom) >= {"tenant", "name", "aggregation", "group_by", "t1", "t2", "step",
                           "tag"}
    assert custom["name"]["required"] is True
    assert custom["name"]["schema"]["minLength"] == 1
    assert custom["t1"]["schema"]["minimum"] == 0
    assert custom["t2"]["schema"]["maximum"] == MAX_TS
    assert custom["step"]["schema"]["minimum"] == 1
    assert "p99" in custom["aggregation"]["schema"]["enum"]
    assert custom["tag"]["schema"]["type"] == "array"
    assert set(params(SERIES)) >= {"tenant", "name", "prefix", "limit"}
    assert params(SERIES)["limit"]["schema"]["maximum"] == 10_000
    usage = params(USAGE)
    assert set(usage) >= {"tenant", "user", "start", "end"}
    assert usage["end"]["schema"] == {"type": "integer", "minimum": 0, "maximum": MAX_TS}
    metrics = params("/v2/endpoints/{endpointId}/metrics")
    assert set(metrics) >= {"timeframe", "granularity", "metrics", "format", "aggregation"}
    assert metrics["timeframe"]["schema"]["enum"] == ["1h", "6h", "24h", "7d", "30d"]
    assert set(params(KEYS)) >= {"tenant"}
    queues = doc["paths"]["/v2/metrics/queues"]["get"]["parameters"]
    assert {p["name"] for p in queues if p["in"] == "header"} == {
        "Coopr-UserID", "Coopr-ApiKey", "Coopr-TenantID"}


async def test_405_carries_allow(api):
    stack, key = api
    r = await stack.http.post(USAGE, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 405
    assert r.json()["error"] == "METHOD_NOT_ALLOWED"
    assert r.headers["allow"] == "GET"
    r = await stack.http.delete("/get_endpoint_stats/")
    assert r.status_code == 405 and r.headers["allow"] == "POST"


async def _raw(port: int, head: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


@pytest.mark.parametrize("head,status", [
    (b"GET /healthz?" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /" + b"a" * 70_000, 414),  # the request line never ends
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n", 431),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Many: 1\r\n" * 8_000 + b"\r\n", 431),
])
async def test_oversized_request_line_and_headers_are_answered(api, head, status):
    stack, _ = api
    port = int(stack.rt.api_url.rsplit(":", 1)[1].rstrip("/"))
    raw = await _raw(port, head)
    status_line, _, rest = raw.partition(b"\r\n")
    assert status_line.startswith(f"HTTP/1.1 {status} ".encode()), raw[:300]
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in headers.lower()
    assert b'"error":"' in body
    # the server still answers ordinary requests afterwards
    r = await stack.http.get("/healthz")
    assert r.status_code == 200


async def test_an_http_client_reads_431_for_a_huge_header(api):
    stack, key = api
    r = await stack.http.get(USAGE, headers={"Authorization": f"Bearer {key}",
                                             "X-Padding": "p" * 100_000})
    assert r.status_code == 431
    assert r.json()["error"] == "REQUEST_HEADER_FIELDS_TOO_LARGE"
    r = await stack.http.get("/healthz", params={"q": "x" * 30_000})
    assert r.status_code == 414 and r.json()["error"] == "URI_TOO_LONG"
