"""The read client of the query API (`Client`, `AsyncClient`), its documents and its errors.

The producer SDK (`pipeline.Producer`, `pipeline.SyncProducer`) publishes; this reads.
"""

from __future__ import annotations

from pipeline.sdk.client import AsyncClient, Client
from pipeline.sdk.documents import Doc, DocList
from pipeline.sdk.errors import (
    ApiError,
    BadRequest,
    ClientError,
    ClientTimeout,
    ConnectionFailed,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
)

__all__ = ["ApiError", "AsyncClient", "BadRequest", "Client", "ClientError", "ClientTimeout",
           "ConnectionFailed", "Doc", "DocList", "Forbidden", "MethodNotAllowed", "NotFound",
           "PayloadTooLarge", "RateLimited", "ServerError", "ServiceUnavailable", "Unauthorized"]
