"""The ClearML call convention, as clearml-server speaks it. Pure.

- A call is `<service>.<action>` at `/`, optionally behind a version: `/v2.23/tasks.create`
  (`CALL_PATH`, clearml-server's own pattern). Any HTTP method carries it; the body is JSON and
  the query string's fields are merged into it (`merge_query`), as clearml-server does.
- Every answer, success or error, is `{"meta": {...}, "data": {...}}` (`meta`). The meta holds
  `result_code` (the HTTP status), `result_subcode` (clearml-server's subcode for the error,
  `SUBCODES`), `result_msg` and `error_data`. Errors also keep Vitals' own fields (`error`,
  `message`, `details`), so clients of either kind read them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from query_api.errors import ApiError, bad_param

__all__ = ["CALL_PATH", "SUBCODES", "CallError", "error_document", "merge_query", "meta",
           "parse_path", "parse_version", "subcode_of",
           "version_param"]

CALL_PATH = re.compile(
    r"^/(?:v(?P<version>[^/]*)/)?(?P<name>[a-zA-Z_]\w*\.[a-zA-Z_]\w*)/?$")

#: Vitals error code → clearml-server result subcode (apiserver/apierrors/errors.conf), for
#: errors that carry none of their own (`CallError.subcode`).
SUBCODES: dict[str, int] = {
    "INVALID_PARAMETERS": 12,        # 400 validation_error
    "INVALID_SCROLL_ID": 1104,       # 400 invalid_scroll_id
    "EVENTS_NOT_ADDED": 131,         # 400 events_not_added
    "UNAUTHORIZED": 22,              # 401 invalid_credentials
    "INSUFFICIENT_PERMISSIONS": 20,  # 403 role_not_allowed
    "STORAGE_UNAVAILABLE": 102,      # database_unavailable
}

#: clearml-server subcodes that Vitals' own codes do not tell apart.
NO_CREDENTIALS = 20        # 401
INVALID_TOKEN = 30         # 401
INVALID_TASK_ID = 101      # 400
INVALID_TASK_STATUS = 110  # 400
INVALID_PROJECT_ID = 401   # 400
INVALID_PROJECT_NAME = 407  # 400


class CallError(ApiError):
    """An ApiError with clearml-server's result subcode."""

    def __init__(self, status: int, code: str, message: str, subcode: int,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(status, code, message, details)
        self.subcode = subcode


def parse_path(path: str) -> tuple[str, str | None] | None:
    """(`service.action`, the version text or None) of a ClearML call path, else None."""
    m = CALL_PATH.match(path)
    if m is None:
        return None
    return m.group("name"), m.group("version")


def parse_version(text: str | None) -> tuple[int, int] | None:
    """`2.23` → (2, 23); None → None; anything else raises ValueError."""
    if not text:
        return None
    major, _, minor = text.lstrip("v").partition(".")
    if not major.isdigit() or (minor and not minor.isdigit()):
        raise ValueError(text)
    return int(major), int(minor or 0)


def version_param(text: str | None) -> tuple[int, int] | None:
    """`parse_version` of a call's version (path or `X-Clearml-Version`), 400 when unreadable."""
    try:
        return parse_version(text)
    except ValueError:
        raise bad_param("version", text, "API version must read like 2.9") from None


def _shown(version: tuple[int, int] | None) -> str | None:
    return None if version is None else f"{version[0]}.{version[1]}"


def meta(name: str, version: tuple[int, int] | None, code: int, msg: str, *,
         subcode: int = 0, error_data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "trx": uuid.uuid4().hex,
            "endpoint": {"name": name, "requested_version": _shown(version),
                         "actual_version": _shown(version)},
            "result_code": code, "result_subcode": subcode, "result_msg": msg,
            "error_stack": None, "error_data": dict(error_data or {})}


def subcode_of(code: str, exc: Exception | None = None) -> int:
    if isinstance(exc, CallError):
        return exc.subcode
    return SUBCODES.get(code, 0)


def error_document(name: str, version: tuple[int, int] | None, status: int,
                   error: Mapping[str, Any]) -> dict[str, Any]:
    """A Vitals error body (`{error, message, details}`) in the ClearML envelope."""
    code = str(error.get("error", "HTTP_ERROR"))
    message = str(error.get("message", ""))
    details = error.get("details") if isinstance(error.get("details"), dict) else None
    out: dict[str, Any] = {
        "meta": meta(name, version, status, message, subcode=subcode_of(code),
                     error_data=details),
        "data": {}}
    out.update(error)
    return out


def _convert(v: str) -> Any:
    if v.replace(".", "", 1).isdigit():
        return float(v) if "." in v else int(v)
    if v in ("true", "True", "TRUE"):
        return True
    if v in ("false", "False", "FALSE"):
        return False
    return v


def merge_query(body: dict[str, Any], items: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The body with the query string's fields set into it, as clearml-server does: numbers and
    booleans converted, a repeated field (or one ending in `[]`) a list, dots nesting."""
    grouped: dict[str, list[str]] = {}
    for k, v in items:
        grouped.setdefault(k, []).append(v)
    for k, vs in grouped.items():
        value: Any = ([_convert(x) for x in vs] if len(vs) > 1 or k.endswith("[]")
                      else _convert(vs[0]))
        path = k.removesuffix("[]").split(".")
        node = body
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
    return body
