"""The error responses every route can give, added to the OpenAPI document.

Routes read their bodies themselves (`parse_json_body` + typed readers), so FastAPI knows only
their 200. This adds the shared error shape (`{error, message, details}`, see `query_api.errors`)
under each status a route may answer with, and drops FastAPI's 422 (Vitals answers 400), so
clients and schema-driven fuzzers (schemathesis) see the real contract.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["ERROR_STATUSES", "document_errors"]

ERROR_STATUSES = {
    "400": "INVALID_PARAMETERS (details name the parameter, the value and the allowed values)",
    "401": "UNAUTHORIZED: missing, invalid or revoked API key",
    "403": "INSUFFICIENT_PERMISSIONS: the key's role or tenant does not allow this",
    "404": "NOT_FOUND: unknown entity",
    "405": "METHOD_NOT_ALLOWED",
    "413": "PAYLOAD_TOO_LARGE: the body exceeds the limit in details",
    "429": "RATE_LIMIT_EXCEEDED, with Retry-After",
    "503": "STORAGE_UNAVAILABLE or NOT_READY, with Retry-After",
}

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "stable error code"},
        "message": {"type": "string"},
        "details": {"type": "object"},
    },
}


def document_errors(app: FastAPI) -> None:
    """Make `app.openapi()` include the shared error responses on every operation."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description,
                          routes=app.routes)
        doc.setdefault("components", {}).setdefault("schemas", {})["Error"] = _ERROR_SCHEMA
        ref = {"$ref": "#/components/schemas/Error"}
        for item in doc.get("paths", {}).values():
            for op in item.values():
                responses = op.setdefault("responses", {})
                responses.pop("422", None)
                for status, text in ERROR_STATUSES.items():
                    responses.setdefault(status, {
                        "description": text, "content": {"application/json": {"schema": ref}}})
        app.openapi_schema = doc
        return doc

    # replacing app.openapi is FastAPI's documented way to extend the generated schema
    app.openapi = openapi  # type: ignore[method-assign]
