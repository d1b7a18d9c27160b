"""Schemathesis against the OpenAPI schema of the running API: no 5xx, and every response
conforms to the schema (status code documented, content type, body shape, headers). Every query
parameter the schema declares is sent, in range and out of it (the GET routes declare theirs
with their bounds, so the fuzzer reaches the parameters the handlers read).

Bounded: a fixed number of examples per operation and generation mode, so it runs in seconds.
The HTTP calls run in a thread: the API serves from this test's event loop.
"""

from __future__ import annotations

import asyncio
import os

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.api.api_helpers import one_endpoint

# schemathesis' own strategies use `random`; Hypothesis deprecates that (a warning, not a bug here)
pytestmark = pytest.mark.filterwarnings(
    "ignore::hypothesis.errors.HypothesisDeprecationWarning")

#: Examples per operation: 10 in the suite (~700 requests); more with VITALS_FUZZ_EXAMPLES, e.g.
#: `VITALS_FUZZ_EXAMPLES=100 pytest tests/integration/api/test_api_fuzz.py` before a release.
EXAMPLES = int(os.environ.get("VITALS_FUZZ_EXAMPLES", "10"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]


def fuzz_operation(op, mode, url: str, key: str, failures: list[str],
                   calls: list[str], sent: dict[str, set[str]]) -> None:
    @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None,
                         phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @hypothesis.given(case=op.as_strategy(generation_mode=mode))
    def run(case) -> None:
        calls.append(op.label)
        sent.setdefault(op.label, set()).update(case.query or {})
        response = case.call(base_url=url, headers={"Authorization": f"Bearer {key}"},
                             timeout=30)
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseException as exc:  # collect, report every operation at once
            failures.append(f"{op.label} [{mode.value}] {response.status_code}: "
                            f"{str(exc)[:600]}")

    try:
        run()
    except hypothesis.errors.Unsatisfiable:  # no invalid input exists (e.g. GET /healthz)
        assert mode == GenerationMode.NEGATIVE, op.label


def declared_query(doc: dict) -> dict[str, set[str]]:
    """{"GET /path": {query parameter names}} for every operation that declares some."""
    out: dict[str, set[str]] = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            if names:
                out[f"{method.upper()} {path}"] = names
    return out


def fuzz(url: str, doc: dict, key: str) -> list[str]:
    schema = schemathesis.openapi.from_dict(doc)
    failures: list[str] = []
    calls: list[str] = []
    sent: dict[str, set[str]] = {}
    for result in schema.get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz_operation(result.ok(), mode, url, key, failures, calls, sent)
    print(f"\nschemathesis: {len(calls)} requests over {len(set(calls))} operations")
    operations = sum(len(item) for item in doc["paths"].values())
    assert len(set(calls)) == operations and len(calls) >= 10 * operations
    for label, names in declared_query(doc).items():
        assert names <= sent.get(label, set()), (label, names - sent.get(label, set()))
    return failures


async def test_schemathesis_finds_no_5xx_and_no_schema_violations(stack_factory):
    stack = await stack_factory()
    key = await one_endpoint(stack)
    doc = (await stack.http.get("/openapi.json")).json()
    # the routes that read query parameters declare them (schema-driven fuzzing sends them)
    assert {label for label in declared_query(doc)} >= {
        "GET /v2/metrics/custom/timeseries", "GET /v2/metrics/custom/series",
        "GET /v2/metrics/nodes/usage", "GET /v2/endpoints/{endpointId}/metrics",
        "GET /admin/keys"}
    failures = await asyncio.to_thread(fuzz, stack.rt.api_url, doc, key)
    assert not failures, "\n".join(failures[:20])
