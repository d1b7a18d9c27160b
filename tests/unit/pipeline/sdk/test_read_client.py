"""The read client without a server: documents, error mapping, the opt-in retry."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pipeline import Client
from pipeline.sdk import BadRequest, Doc, RateLimited, ServiceUnavailable
from pipeline.sdk.documents import camel, wrap
from pipeline.sdk.errors import api_error


def test_attributes_read_snake_camel_and_keywords_and_missing_is_none():
    d = wrap({"totalExecutions": 3, "from": 2, "time_series": [{"p95": 1.5}], "x": {"y": 1}})
    assert isinstance(d, Doc)
    assert (d.total_executions, d.from_, d.time_series[0].p95, d.x.y) == (3, 2, 1.5, 1)
    assert d.not_served is None and d["from"] == 2
    assert camel("warm_pool_recommended") == "warmPoolRecommended"
    assert wrap([1, 2]) == [1, 2]


def test_errors_carry_code_parameter_and_allowed_values():
    e = api_error(400, {"error": "INVALID_PARAMETERS", "message": "bad timeframe",
                        "details": {"parameter": "timeframe", "allowedValues": ["1h", "24h"]}},
                  None)
    assert isinstance(e, BadRequest)
    assert (e.code, e.parameter, e.allowed_values) == ("INVALID_PARAMETERS", "timeframe",
                                                       ["1h", "24h"])
    assert "allowed: 1h, 24h" in str(e)
    clearml = api_error(400, {"meta": {"result_code": 400, "result_subcode": 12,
                                       "result_msg": "Validation error"}, "data": {}}, None)
    assert (clearml.code, clearml.message) == ("400/12", "Validation error")
    assert isinstance(api_error(503, None, 5.0), ServiceUnavailable)


class _Limited:
    """A transport answering 429 with Retry-After twice, then 200: what the opt-in retry sees."""

    def __init__(self) -> None:
        self.calls = 0

    def handle_request(self, request: Any) -> Any:

        self.calls += 1
        if self.calls <= 2:
            return httpx.Response(429, headers={"Retry-After": "0.05"},
                                  json={"error": "RATE_LIMITED", "message": "slow down"})
        return httpx.Response(200, json={"totreqs": 1})


def test_retry_after_is_honoured_only_when_asked():

    limited = _Limited()
    with Client("http://vitals.invalid", api_key="k", retries=3,
                transport=httpx.MockTransport(limited.handle_request)) as c:
        assert c.endpoints.stats(1).totreqs == 1
    assert limited.calls == 3
    once = _Limited()
    with Client("http://vitals.invalid", api_key="k",
                transport=httpx.MockTransport(once.handle_request)) as c, \
            pytest.raises(RateLimited) as info:
        c.endpoints.stats(1)
    assert (info.value.retry_after, once.calls) == (0.05, 1)
