"""Vitals pipeline: the producer SDK is the public surface of this package.

`Producer` (asyncio) and `SyncProducer` (blocking) validate events against the worker's schemas,
batch them into envelopes and publish them to Kafka. What they raise is typed: `InvalidEvent`
for an event the worker would dead-letter, and the `ProducerError` family for everything else
(pipeline/sdk/producer_errors.py; the README's failure-contract table). They are imported lazily, so
`import pipeline` stays cheap: it loads neither the storage access layer nor the Kafka runners
(tests/unit/pipeline/test_sdk_imports.py).
"""

from __future__ import annotations

from typing import Any

__all__ = ["AsyncClient", "BrokerUnavailable", "BufferFull", "Client", "DeliveryFailed",
           "DeliveryTimeout", "EventTooLarge", "InvalidEvent", "Producer", "ProducerClosed",
           "ProducerError", "SyncProducer", "TopicNotFound"]


def __getattr__(name: str) -> Any:
    if name in ("Client", "AsyncClient"):
        from pipeline import sdk

        return getattr(sdk, name)
    if name == "Producer":
        from pipeline.sdk.producer import Producer

        return Producer
    if name == "SyncProducer":
        from pipeline.sdk.sync_producer import SyncProducer

        return SyncProducer
    if name in __all__:
        from pipeline.sdk import producer_errors
        return getattr(producer_errors, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
