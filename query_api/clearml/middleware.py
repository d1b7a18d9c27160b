"""`ClearmlEnvelope`: the `{meta, data}` envelope on every answer to a ClearML call path, also
for the errors no action produced — an unknown call (404, as clearml-server's "Unable to find
endpoint"), a method no call takes (405), a body over the API's limit (413), an unhandled
error (500). Actions envelope their own answers (`query_api.clearml.calls`); this wraps the
JSON error bodies that come back without `meta`, and leaves every other path alone.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from query_api.clearml import envelope

__all__ = ["ClearmlEnvelope"]

log = logging.getLogger("vitals.api")


class ClearmlEnvelope:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parsed = envelope.parse_path(scope.get("path", "")) if scope["type"] == "http" else None
        if parsed is None:
            await self.app(scope, receive, send)
            return
        name, version_text = parsed
        try:
            version = envelope.parse_version(version_text)
        except ValueError:
            version = None
        start: Message | None = None
        chunks: list[bytes] = []
        started = False

        async def wrapped(message: Message) -> None:
            nonlocal start, started
            if message["type"] == "http.response.start":
                started = True
                headers = dict(message.get("headers", ()))
                if message["status"] >= 400 and \
                        headers.get(b"content-type", b"").startswith(b"application/json"):
                    start = message
                    return
                await send(message)
                return
            if message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                await _send(send, start["status"], _rewrap(name, version, start["status"],
                                                           b"".join(chunks)),
                            [(k, v) for k, v in start.get("headers", ())
                             if k not in (b"content-length", b"content-type")])
                return
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        except Exception:
            if started:
                raise
            log.exception("unhandled error in %s", name)
            body = envelope.error_document(name, version, 500,
                                           {"error": "INTERNAL", "message": "internal error"})
            await _send(send, 500, orjson.dumps(body), [])


def _rewrap(name: str, version: tuple[int, int] | None, status: int, body: bytes) -> bytes:
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(doc, dict) or "meta" in doc:
        return body
    if status == 404 and doc.get("error") == "NOT_FOUND" and doc.get("message") == "Not Found":
        shown = "" if version is None else f"{version[0]}.{version[1]}"
        doc["message"] = f"Unable to find endpoint for name {name} and version {shown}".strip()
    return orjson.dumps(envelope.error_document(name, version, status, doc))


async def _send(send: Send, status: int, body: bytes,
                headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
