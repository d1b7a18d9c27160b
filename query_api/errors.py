"""API errors: one JSON shape for every route, `{"error": CODE, "message": ..., "details": {...}}`.

Codes are stable: INVALID_PARAMETERS (400), UNAUTHORIZED (401), INSUFFICIENT_PERMISSIONS (403),
NOT_FOUND (404), METHOD_NOT_ALLOWED (405, with `Allow`), PAYLOAD_TOO_LARGE (413),
URI_TOO_LONG (414), REQUEST_HEADER_FIELDS_TOO_LARGE (431), RATE_LIMIT_EXCEEDED (429),
STORAGE_UNAVAILABLE (503), INTERNAL (500); BAD_REQUEST (400) for a request HTTP cannot parse. A 400
names `parameter`, the `value` given and, where the set is closed, `allowedValues`, or, for a
bounded number, `allowedRange` ([min, max], inclusive).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from pipeline.core.errors import StorageError, StorageUnavailable, VitalsError

__all__ = ["ApiError", "bad_param", "install_handlers"]

log = logging.getLogger("vitals.api")


class ApiError(VitalsError):
    def __init__(self, status: int, code: str, message: str,
                 details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return JSONResponse(body, status_code=self.status, headers=self.headers)

    async def send(self, send: Send) -> None:
        """Answer with this error from ASGI middleware, before (or outside) the app's
        handlers."""
        response: Any = self.response()
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


def bad_param(parameter: str, value: Any, message: str,
              allowed: Sequence[Any] | None = None, *,
              allowed_range: tuple[float | None, float | None] | None = None) -> ApiError:
    details: dict[str, Any] = {"parameter": parameter, "value": _jsonable(value)}
    if allowed is not None:
        details["allowedValues"] = list(allowed)
    if allowed_range is not None:
        details["allowedRange"] = list(allowed_range)
    return ApiError(400, "INVALID_PARAMETERS", message, details)


def _jsonable(value: Any) -> Any:
    """`value` made safe for any JSON encoder: integers beyond 64 bits and non-finite floats
    (nan, inf) become strings, strings lose unencodable code points (lone surrogates),
    containers are cut to 20 items."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, str):
        return value[:200].encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value][:20]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in list(value.items())[:20]}
    return repr(value)[:200]


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        param = ".".join(loc) or "body"
        msg = first.get("msg", "invalid request")
        return bad_param(param, first.get("input"), f"{param}: {msg}").response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}
        return ApiError(exc.status_code, codes.get(exc.status_code, "HTTP_ERROR"),
                        str(exc.detail), headers=dict(exc.headers or {})).response()  # 405: Allow

    @app.exception_handler(StorageUnavailable)
    async def _storage_down(_: Request, exc: StorageUnavailable) -> JSONResponse:
        log.warning("storage unavailable: %s", exc)
        return ApiError(503, "STORAGE_UNAVAILABLE", "ClickHouse is unavailable; retry shortly",
                        headers={"Retry-After": "5"}).response()

    @app.exception_handler(StorageError)
    async def _storage(_: Request, exc: StorageError) -> JSONResponse:
        log.error("storage error: %s", exc)
        return ApiError(500, "INTERNAL", "storage rejected the query").response()

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return ApiError(500, "INTERNAL", "internal error").response()
