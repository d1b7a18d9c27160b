"""The pipeline's exceptions: one root, subclasses that carry what a handler needs.

Meaning is in the type: `InvalidEvent` goes to the dead-letter topic and the stream moves on;
`StorageUnavailable` is retried with backoff and holds back offset commits; `StorageRefused` is a
statement ClickHouse will not take as it is (the sink isolates the message that causes it);
`StorageFault` is a storage failure of no known class: surfaced (readiness, metrics, log), never
retried silently; anything else crashes.
"""

from __future__ import annotations

__all__ = ["InvalidEvent", "StorageError", "StorageFault", "StorageRefused", "StorageUnavailable",
           "StoreLocked", "VitalsError"]


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
    """A ClickHouse call failed. `code` and `name` are ClickHouse's error code and symbolic name
    when the driver reported them (structured fields, never parsed from the text)."""

    def __init__(self, message: str, *, code: int | None = None, name: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.name = name


class StorageRefused(StorageError):
    """ClickHouse answered and refused the statement (a constraint, a value its column cannot
    hold, a missing table or column, permissions): repeating it unchanged fails again."""


class StorageFault(StorageError):
    """A storage failure of no known class (a driver bug, an encoding error): surfaced."""


class StorageUnavailable(StorageError):
    """ClickHouse could not be reached or failed transiently: retry with backoff."""


class StoreLocked(StorageUnavailable):
    """The embedded store's directory is held by another process (e.g. a running `vitals up`)."""
