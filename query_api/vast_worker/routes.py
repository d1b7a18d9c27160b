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
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse

from pipeline.ingest.admission import Admission
from pipeline.storage.keys import ApiKey
from query_api import ingest
from query_api.auth import require_role
from query_api.context import ApiContext
from query_api.deps import Ctx
from query_api.errors import ApiError, bad_param
from query_api.params import parse_json_body
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


async def _caller(ctx: ApiContext, request: Request) -> tuple[ApiKey, dict[str, Any]]:
    body = parse_json_body(await request.body())
    key = await ctx.auth.authenticate(request, body.get("mtoken"), reports=True)
    require_role(key, "ingest")
    return key, body


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


async def _pubkey(request: Request, ctx: ApiContext) -> PlainTextResponse:
    pem = ctx.vast_pubkey
    if pem is None:  # made (or read) on first use: the key pair lives in the data dir
        pem = ctx.vast_pubkey = await asyncio.to_thread(signing.public_pem,
                                                        ctx.settings.data_dir)
    return PlainTextResponse(pem, media_type="application/x-pem-file")


async def _status(request: Request, ctx: ApiContext, endpoint_id: int, autogroup_id: int
                  ) -> JsonResponse:
    key, body = await _caller(ctx, request)
    event = reports.heartbeat(body, tenant=key.tenant, endpoint_id=endpoint_id,
                              autogroup_id=autogroup_id, now=ctx.clock())
    await _publish(ctx, "heartbeats", [event])
    return JsonResponse({"success": True})


async def _deleted(request: Request, ctx: ApiContext, endpoint_id: int, autogroup_id: int
                   ) -> JsonResponse:
    key, body = await _caller(ctx, request)
    events = reports.request_events(body, tenant=key.tenant, endpoint_id=endpoint_id,
                                    autogroup_id=autogroup_id, now=ctx.clock())
    await _publish(ctx, "requests", events)
    return JsonResponse({"success": True, "requests": len(events)})


@router.get("/vast/{endpoint_id}/pubkey/", summary="Public key a vast.ai worker verifies "
            "requests with", response_class=PlainTextResponse, responses=_PEM)
async def pubkey(request: Request, ctx: Ctx, endpoint_id: str) -> PlainTextResponse:
    _id("endpoint_id", endpoint_id)
    return await _pubkey(request, ctx)


@router.get("/vast/{endpoint_id}/{autogroup_id}/pubkey/", summary="Public key a vast.ai "
            "worker verifies requests with (autogroup form)", response_class=PlainTextResponse,
            responses=_PEM)
async def pubkey_autogroup(request: Request, ctx: Ctx, endpoint_id: str,
                           autogroup_id: str) -> PlainTextResponse:
    _id("endpoint_id", endpoint_id)
    _id("autogroup_id", autogroup_id)
    return await _pubkey(request, ctx)


@router.post("/vast/{endpoint_id}/worker_status/",
             summary="A vast.ai worker's status report (becomes a heartbeat)")
async def worker_status(request: Request, ctx: Ctx, endpoint_id: str) -> JsonResponse:
    return await _status(request, ctx, _id("endpoint_id", endpoint_id), 0)


@router.post("/vast/{endpoint_id}/{autogroup_id}/worker_status/",
             summary="A vast.ai worker's status report, autogroup form")
async def worker_status_autogroup(request: Request, ctx: Ctx, endpoint_id: str,
                                  autogroup_id: str) -> JsonResponse:
    return await _status(request, ctx, _id("endpoint_id", endpoint_id),
                         _id("autogroup_id", autogroup_id))


@router.post("/vast/{endpoint_id}/delete_requests/",
             summary="A vast.ai worker's finished requests (become request events)")
async def delete_requests(request: Request, ctx: Ctx, endpoint_id: str) -> JsonResponse:
    return await _deleted(request, ctx, _id("endpoint_id", endpoint_id), 0)


@router.post("/vast/{endpoint_id}/{autogroup_id}/delete_requests/",
             summary="A vast.ai worker's finished requests, autogroup form")
async def delete_requests_autogroup(request: Request, ctx: Ctx, endpoint_id: str,
                                    autogroup_id: str) -> JsonResponse:
    return await _deleted(request, ctx, _id("endpoint_id", endpoint_id),
                          _id("autogroup_id", autogroup_id))
