"""A hard cap on request body size, enforced while the body streams in.

Routes parse bodies with their own, smaller limits (`parse_json_body`, 1 MiB), but only after
`request.body()` has read the whole body into memory. `BodyLimit` stops a client from making the
process buffer an unbounded body: a declared `Content-Length` above the cap is refused at once,
and a streamed (chunked) body is cut off as soon as it passes the cap. Both answer 413
PAYLOAD_TOO_LARGE in the API's error shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from query_api.errors import ApiError

__all__ = ["BodyLimit"]


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "PAYLOAD_TOO_LARGE", f"request body exceeds {limit} bytes",
                    {"limit": limit})


@dataclass(slots=True)
class BodyLimit:
    app: ASGIApp
    max_bytes: int

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = limit + 1
                if declared > limit:
                    await _too_large(limit).send(send)
                    return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)  # answered by the app's ApiError handler
            return message

        await self.app(scope, limited, send)

