"""The ClearML call convention for `<service>.<action>` routes (events.*, and the server calls of
`query_api.clearml`: auth.login, projects.*, tasks.*).

- Routes answer `/<service>.<action>` and `/v<version>/<service>.<action>` (ClearML clients put
  the API version in the path); the `X-Clearml-Version` header also sets it. Without either, an
  action picks its behaviour from the body (see each action).
- Any of GET, POST, PUT, PATCH and DELETE carries a call, with a JSON body (the ClearML SDK sends
  GET with a body by default); query string fields are merged into the body, as clearml-server
  does (`query_api.clearml.envelope.merge_query`). OpenAPI documents the POST form.
- The caller is a Vitals key, ClearML credentials (Basic) or a session token from `auth.login`
  (`query_api.clearml.caller`).
- Responses use ClearML's envelope: `{"meta": {..., "result_code": 200, "result_msg": "OK"},
  "data": {...}}`. Errors keep Vitals' error body (`error`, `message`, `details` naming the
  parameter and the allowed values) and add the same `meta` (`result_code` = HTTP status,
  `result_subcode` = clearml-server's subcode, `result_msg` = message, `error_data` = details),
  so both kinds of clients read them. Errors raised outside an action (unknown call 404, 405,
  413, 500) get the same envelope from `query_api.clearml.middleware`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from pipeline.storage.keys import ApiKey, Role
from query_api.auth import require_role
from query_api.clearml import envelope
from query_api.clearml.scroll import ScrollCodec, ScrollIdInvalid
from query_api.context import ApiContext
from query_api.deps import ClearmlCall, Ctx, clearml_call
from query_api.errors import ApiError, bad_param
from query_api.params import get_str
from query_api.responses import JsonResponse

__all__ = ["INT64_MAX", "INT64_MIN", "TASK_DOC", "Call", "action", "get_bool", "get_str_list",
           "scroll_codec", "scroll_state", "task_param"]

Handler = Callable[["Call"], Awaitable[Any]]

#: The body doc of a task id.
TASK_DOC = {"type": "string", "description": "Task ID"}
#: The range of ClearML's iteration numbers.
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


@dataclass
class Call:
    ctx: ApiContext
    request: Request
    body: dict[str, Any]
    key: ApiKey
    name: str
    version: tuple[int, int] | None


def scroll_codec(ctx: ApiContext) -> ScrollCodec:
    """The app's scroll codec (`create_app` builds it once)."""
    if ctx.scroll is None:
        raise RuntimeError("the API context has no scroll codec: build the app with create_app")
    return ctx.scroll


def scroll_state(call: Call, expect: Mapping[str, Any], name: str = "scroll_id"
                 ) -> dict[str, Any] | None:
    """The decoded state of the body's scroll id (None when absent), or 400 INVALID_SCROLL_ID."""
    raw = call.body.get(name)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise bad_param(name, raw, f"{name} must be a string returned by a previous call")
    try:
        return scroll_codec(call.ctx).decode(raw, expect)
    except ScrollIdInvalid as exc:
        raise ApiError(400, "INVALID_SCROLL_ID", f"{name}: {exc.message}",
                       {"parameter": name, "reason": exc.reason}) from None


def get_bool(body: Mapping[str, Any], name: str, default: bool) -> bool:
    v = body.get(name)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise bad_param(name, v, f"{name} must be a boolean", [True, False])
    return v


def get_str_list(body: Mapping[str, Any], name: str, *, max_items: int) -> list[str]:
    v = body.get(name)
    if v is None:
        raise bad_param(name, None, f"{name} is required (a list of task ids)")
    if (not isinstance(v, list) or not v or len(v) > max_items
            or not all(isinstance(t, str) and 0 < len(t) <= 128 for t in v)):
        raise bad_param(name, v, f"{name} must be a list of 1 to {max_items} task ids")
    return list(dict.fromkeys(v))


#: The methods a ClearML call may use (clearml-server answers any; the SDK's default is GET).
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


#: The dependency of an action that reads a JSON body, and of one that reads its body itself.
_INCOMING = {raw: Depends(clearml_call(raw)) for raw in (False, True)}


def _failed(full: str, version: tuple[int, int] | None, exc: ApiError) -> JsonResponse:
    """A failed call's answer: Vitals' error body inside ClearML's envelope."""
    out = {"meta": envelope.meta(full, version, exc.status, exc.message,
                                 subcode=envelope.subcode_of(exc.code, exc),
                                 error_data=exc.details),
           "data": {}, "error": exc.code, "message": exc.message}
    if exc.details:
        out["details"] = exc.details
    return JsonResponse(out, status_code=exc.status, headers=exc.headers)


def action(router: APIRouter, name: str, *, role: Role | None = "reader", summary: str,
           body_doc: dict[str, Any] | None = None, raw_body: bool = False,
           service: str = "events", tag: str = "task events"
           ) -> Callable[[Handler], Handler]:
    """Register `handler` as /<service>.<name> (and the versioned path) for every method in
    `METHODS`. The handler returns the `data` object, or a starlette Response sent as is
    (downloads). `role` None: any valid key."""
    full = f"{service}.{name}"

    def register(handler: Handler) -> Handler:
        async def endpoint(request: Request, ctx: Ctx,
                           incoming: ClearmlCall = _INCOMING[raw_body]) -> Response:
            if incoming.error is not None:
                return _failed(full, incoming.version, incoming.error)
            key = incoming.key
            assert key is not None  # a call without an error has its key
            try:
                if role is not None:
                    require_role(key, role)
                data = await handler(Call(ctx, request, incoming.body, key, name,
                                          incoming.version))
            except ApiError as exc:
                return _failed(full, incoming.version, exc)
            if isinstance(data, Response):
                return data
            return JsonResponse({"meta": envelope.meta(full, incoming.version, 200, "OK"),
                                 "data": data})

        extra = {"requestBody": {"content": {
            "application/json": {"schema": body_doc or {"type": "object"}}}, "required": True}}
        ok: dict[int | str, dict[str, Any]] = {200: {
            "description": "ClearML envelope: {meta, data}",
            "content": {"application/json": {"schema": {"type": "object"}}}}}
        router.add_api_route(f"/{full}", endpoint, methods=["POST"], summary=summary,
                             tags=[tag], openapi_extra=extra,
                             response_class=JsonResponse, responses=ok)
        router.add_api_route(f"/{full}", endpoint, include_in_schema=False,
                             methods=[m for m in METHODS if m != "POST"])
        router.add_api_route(f"/v{{version}}/{full}", endpoint, methods=METHODS,
                             include_in_schema=False)
        return handler

    return register


def doc(required: Sequence[str], **props: Any) -> dict[str, Any]:
    """A small JSON Schema for the OpenAPI body of an action."""
    return {"type": "object", "required": list(required), "properties": props}


def task_param(call: Call, name: str = "task") -> str:
    """The call's required task id `name` (at most 128 characters), or a 400 naming it."""
    task = get_str(call.body, name, required=True, max_len=128)
    assert task is not None
    return task
