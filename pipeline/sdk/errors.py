"""What the read client raises: one root (`ClientError`, a `VitalsError`), a class per HTTP
answer the API documents, and two for the transport. Each carries what a caller acts on."""

from __future__ import annotations

from typing import Any

from pipeline.core.errors import VitalsError

__all__ = ["ApiError", "BadRequest", "ClientError", "ClientTimeout", "ConnectionFailed",
           "Forbidden", "MethodNotAllowed", "NotFound", "PayloadTooLarge", "RateLimited",
           "ServerError", "ServiceUnavailable", "Unauthorized", "api_error"]


class ClientError(VitalsError):
    """Root of the read client's errors."""


class ApiError(ClientError):
    """The API answered with an error. `code` is its stable code (`INVALID_PARAMETERS`,
    `NOT_FOUND`, …; for ClearML routes the result code and subcode), `parameter` and
    `allowed_values` name what to change, `details` is the whole details object."""

    def __init__(self, status: int, code: str, message: str, *,
                 details: dict[str, Any] | None = None, retry_after: float | None = None,
                 ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.parameter: str | None = self.details.get("parameter")
        self.allowed_values: list[Any] | None = self.details.get("allowedValues")
        self.retry_after = retry_after
        hint = f" (parameter {self.parameter!r}" if self.parameter else ""
        if self.allowed_values is not None:
            hint += f"; allowed: {', '.join(map(str, self.allowed_values))}"
        hint += ")" if self.parameter else ""
        super().__init__(f"{status} {code}: {message}{hint}")


class BadRequest(ApiError):
    """400: fix the parameter named by `parameter` (see `allowed_values`)."""


class Unauthorized(ApiError):
    """401: no key, or a key that is unknown or revoked."""


class Forbidden(ApiError):
    """403: the key's role or tenant does not allow this."""


class NotFound(ApiError):
    """404: no such endpoint, task or route."""


class MethodNotAllowed(ApiError):
    """405."""


class PayloadTooLarge(ApiError):
    """413."""


class RateLimited(ApiError):
    """429: retry after `retry_after` seconds (`Client(retries=…)` does it for you)."""


class ServerError(ApiError):
    """5xx other than 503."""


class ServiceUnavailable(ServerError):
    """503: storage or the broker is away; retry after `retry_after` seconds."""


class ClientTimeout(ClientError):
    """No answer within the client's `timeout`."""


class ConnectionFailed(ClientError):
    """The API could not be reached (refused, reset, name not resolved)."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 405: MethodNotAllowed,
    413: PayloadTooLarge, 429: RateLimited, 503: ServiceUnavailable,
}


def api_error(status: int, body: Any, retry_after: float | None) -> ApiError:
    """The error for an answer: the API's `{error, message, details}` body, or ClearML's
    `{meta: {result_code, result_subcode, result_msg}}` envelope, or a bare status."""
    code, message, details = f"HTTP_{status}", "", None
    if isinstance(body, dict):
        meta = body.get("meta")
        if isinstance(meta, dict):
            code = f"{meta.get('result_code', status)}/{meta.get('result_subcode', 0)}"
            message = str(meta.get("result_msg", ""))
            data = body.get("data")
            details = data if isinstance(data, dict) else None
        else:
            code = str(body.get("error", code))
            message = str(body.get("message", ""))
            d = body.get("details")
            details = d if isinstance(d, dict) else None
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return cls(status, code, message, details=details, retry_after=retry_after)
