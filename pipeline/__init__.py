"""Vitals pipeline: the producer SDK is the public surface of this package.

`Producer` (asyncio) and `SyncProducer` (blocking) validate events against the worker's schemas,
batch them into envelopes and publish them to Kafka; `InvalidEvent` is what they raise for an
event the worker would dead-letter. They are imported lazily, so `import pipeline` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["InvalidEvent", "Producer", "SyncProducer"]


def __getattr__(name: str) -> Any:
    if name in ("Producer", "SyncProducer"):
        from pipeline import producer

        return getattr(producer, name)
    if name == "InvalidEvent":
        from pipeline.errors import InvalidEvent

        return InvalidEvent
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
