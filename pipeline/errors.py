"""The pipeline's exceptions: one root, subclasses that carry what a handler needs.

Meaning is in the type: `InvalidEvent` goes to the dead-letter topic and the stream moves on;
`StorageUnavailable` is retried with backoff and holds back offset commits; anything else crashes.
"""

from __future__ import annotations

__all__ = ["InvalidEvent", "StorageError", "StorageUnavailable", "StoreLocked", "VitalsError"]


class VitalsError(Exception):
    """Root of every error Vitals raises on purpose."""


class InvalidEvent(VitalsError):
    """An event (or a whole message) that fails decoding or validation.

    `index` is the event's position in its envelope, or None when the whole message is bad.
    """

    def __init__(self, reason: str, *, index: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.index = index


class StorageError(VitalsError):
    """ClickHouse rejected a statement (bad SQL, unknown table...): not retried."""


class StorageUnavailable(StorageError):
    """ClickHouse could not be reached or failed transiently: retry with backoff."""


class StoreLocked(StorageUnavailable):
    """The embedded store's directory is held by another process (e.g. a running `vitals up`)."""
