"""The routes a vast.ai pyworker reports to, unchanged: `REPORT_ADDR=<vitals>/vast/<endpoint_id>`
(or `…/vast/<endpoint_id>/<autogroup_id>`) and `MASTER_TOKEN=<a Vitals key>` (role `ingest`,
`admin` or `superadmin`; its tenant owns the reports).

- `GET …/pubkey/`: the RSA public key the worker verifies requests with (`signing`); no key
  needed, as the worker sends none.
- `POST …/worker_status/`: a heartbeat (`reports.heartbeat`), published to `heartbeats`.
- `POST …/delete_requests/`: request events (`reports.request_events`), published to
  `requests`.

Reports are judged by the worker's rules at the door (`pipeline.ingest.admission`: 400 with the
reason of each refused event) and published with the ingest deadline (`query_api.ingest`: 503
with Retry-After when Kafka does not acknowledge them; the worker retries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends
from starlette.responses import PlainTextResponse, Response

from pipeline.ingest.admission import Admission
from query_api import ingest
from query_api.auth import require_role
from query_api.context import ApiContext
from query_api.deps import BodyCall, Ctx, ReportCaller
from query_api.errors import ApiError, bad_param
from query_api.responses import JsonResponse
from query_api.vast_worker import reports, signing

__all__ = ["router"]

router = APIRouter(tags=["vast.ai worker reports"])

MAX_ID = reports.MAX_ID
MAX_REFUSALS_LISTED = 20


def _id(name: str, raw: str) -> int:
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 16) or int(raw) > MAX_ID:
        raise bad_param(name, raw[:40], f"{name} must be an integer 0-{MAX_ID}",
                        allowed_range=(0, MAX_ID))
    return int(raw)


async def _publish(ctx: ApiContext, kind: str, events: list[dict[str, Any]]) -> None:
    ingest.producer_of(ctx)  # 503 before any work when this process has no broker
    verdict = Admission.of(ctx.settings, kind, ctx.clock()).judge(events)
    if verdict.refused:
        errors = {str(i): reason for i, reason in
                  sorted(verdict.refused.items())[:MAX_REFUSALS_LISTED]}
        raise ApiError(400, "INVALID_PARAMETERS", f"{len(verdict.refused)} of {len(events)} "
                       f"reported {kind} refused; nothing was stored",
                       {"parameter": "body", "errors_info": errors})
    if events:
        await ingest.publish(ctx, kind, events)


#: What `/pubkey/` answers, for the OpenAPI document: a PEM file.
_PEM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/x-pem-file": {"schema": {"type": "string"}}},
          "description": "The RSA public key, PEM-encoded"}}


async def _endpoint_ids(endpoint_id: str) -> tuple[int, int]:
    """(endpoint id, 0) of the `/vast/<endpoint_id>/…` form; 400 on a bad id."""
    return _id("endpoint_id", endpoint_id), 0


async def _autogroup_ids(endpoint_id: str, autogroup_id: str) -> tuple[int, int]:
    """(endpoint id, autogroup id) of the `/vast/<endpoint_id>/<autogroup_id>/…` form."""
    return _id("endpoint_id", endpoint_id), _id("autogroup_id", autogroup_id)


async def _pubkey(ctx: ApiContext) -> PlainTextResponse:
    pem = ctx.vast_pubkey
    if pem is None:  # made (or read) on first use: the key pair lives in the data dir
        pem = ctx.vast_pubkey = await asyncio.to_thread(signing.public_pem,
                                                        ctx.settings.data_dir)
    return PlainTextResponse(pem, media_type="application/x-pem-file")


async def _status(ctx: ApiContext, ids: tuple[int, int], call: BodyCall) -> JsonResponse:
    require_role(call.key, "ingest")
    event = reports.heartbeat(call.body, tenant=call.key.tenant, endpoint_id=ids[0],
                              autogroup_id=ids[1], now=ctx.clock())
    await _publish(ctx, "heartbeats", [event])
    return JsonResponse({"success": True})


async def _deleted(ctx: ApiContext, ids: tuple[int, int], call: BodyCall) -> JsonResponse:
    require_role(call.key, "ingest")
    events = reports.request_events(call.body, tenant=call.key.tenant, endpoint_id=ids[0],
                                    autogroup_id=ids[1], now=ctx.clock())
    await _publish(ctx, "requests", events)
    return JsonResponse({"success": True, "requests": len(events)})


def _handlers(ids: Any) -> dict[str, Callable[..., Awaitable[Response]]]:
    """The handlers of one path form; `ids` is the form's dependency, resolved (and so
    checked) before the body and the key."""

    async def pubkey(ctx: Ctx, form_ids: tuple[int, int] = ids) -> PlainTextResponse:
        return await _pubkey(ctx)

    async def worker_status(ctx: Ctx, form_ids: tuple[int, int] = ids, *,
                            call: ReportCaller) -> JsonResponse:
        return await _status(ctx, form_ids, call)

    async def delete_requests(ctx: Ctx, form_ids: tuple[int, int] = ids, *,
                              call: ReportCaller) -> JsonResponse:
        return await _deleted(ctx, form_ids, call)

    return {"pubkey": pubkey, "worker_status": worker_status,
            "delete_requests": delete_requests}


#: The two path forms a worker reports to: (path prefix, route name suffix, handlers).
_FORMS = (("/vast/{endpoint_id}", "", _handlers(Depends(_endpoint_ids))),
          ("/vast/{endpoint_id}/{autogroup_id}", "_autogroup",
           _handlers(Depends(_autogroup_ids))))

#: Each route: (method, name, the summaries of the two forms, what else its route declares).
_ROUTES: tuple[tuple[str, str, tuple[str, str], dict[str, Any]], ...] = (
    ("GET", "pubkey", ("Public key a vast.ai worker verifies requests with",
                       "Public key a vast.ai worker verifies requests with (autogroup form)"),
     {"response_class": PlainTextResponse, "responses": _PEM}),
    ("POST", "worker_status", ("A vast.ai worker's status report (becomes a heartbeat)",
                               "A vast.ai worker's status report, autogroup form"), {}),
    ("POST", "delete_requests", ("A vast.ai worker's finished requests (become request "
                                 "events)", "A vast.ai worker's finished requests, autogroup "
                                 "form"), {}),
)

for _method, _name, _summaries, _extra in _ROUTES:
    for (_prefix, _suffix, _form), _summary in zip(_FORMS, _summaries, strict=True):
        router.add_api_route(f"{_prefix}/{_name}/", _form[_name], methods=[_method],
                             name=_name + _suffix, summary=_summary, **_extra)
