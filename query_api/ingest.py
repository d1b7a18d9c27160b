"""HTTP ingest's shell around Kafka: publish a request's events with a deadline.

Every HTTP ingest route judges its events with `pipeline.ingest.admission.Admission` (the worker's
rules) and then calls `publish`, which returns once Kafka acknowledged every event, or answers
503 `STORAGE_UNAVAILABLE` with `Retry-After` after `VITALS_INGEST_TIMEOUT_S` (never a hang).

What a 503 means: no event of the request is known to be stored, and some may be (the producer
may still deliver what it had buffered once the broker is back). A retry of the same request is
absorbed: ClearML metric events replace by identity, log events carry an idempotency key derived
from the request (`pipeline.ingest.rows.task_events.request_log_id`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka.errors import KafkaError

from pipeline.core.errors import InvalidEvent, VitalsError
from pipeline.sdk.producer import Producer
from query_api.context import ApiContext
from query_api.errors import ApiError

__all__ = ["RETRY_AFTER_S", "producer_of", "publish"]

log = logging.getLogger("vitals.api.ingest")

#: Seconds a client is asked to wait before retrying an ingest call Kafka did not acknowledge.
RETRY_AFTER_S = 5


def _unavailable(message: str, events: int, timeout_s: float) -> ApiError:
    return ApiError(503, "STORAGE_UNAVAILABLE", message,
                    {"events": events, "timeout_s": timeout_s, "stored": "unknown",
                     "retry": "send the same request again: a retry does not duplicate events"},
                    headers={"Retry-After": str(RETRY_AFTER_S)})


def producer_of(ctx: ApiContext) -> Producer:
    """The API process's producer; 503 when the process has no broker."""
    if ctx.producer is None:
        raise ApiError(503, "STORAGE_UNAVAILABLE", "HTTP ingest needs a Kafka broker; this "
                       "API process has none (set KAFKA_BOOTSTRAP)",
                       headers={"Retry-After": str(RETRY_AFTER_S)})
    return ctx.producer


async def publish(ctx: ApiContext, kind: str, events: list[dict[str, Any]]) -> None:
    """Publish `events` to topic kind `kind` and wait for Kafka's acknowledgement, for at most
    `settings.ingest_timeout_s`; raise a 503 `ApiError` when it does not come in time."""
    producer = producer_of(ctx)
    timeout_s = ctx.settings.ingest_timeout_s

    async def send() -> None:
        await producer.send_many(kind, events)
        await producer.flush()

    # Shielded: a deadline must not cancel the producer half-way through its own bookkeeping;
    # the send goes on in the background and its outcome is only logged.
    task = asyncio.ensure_future(send())
    task.add_done_callback(_retrieve)  # also when the client went away and this call was cancelled
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout_s)
    except TimeoutError:
        task.add_done_callback(_late_outcome)
        raise _unavailable(f"Kafka did not acknowledge the events within {timeout_s:g} s: none "
                           f"is known to be stored, some may be; retry the same request",
                           len(events), timeout_s) from None
    except InvalidEvent:
        raise  # the door judged the events first: a refusal here is a bug, not an outage
    except (KafkaError, OSError, VitalsError) as exc:  # the producer's reports of failure
        log.warning("HTTP ingest: publishing %d %s events failed: %r", len(events), kind, exc)
        raise _unavailable(f"Kafka refused or lost the events ({type(exc).__name__}): none is "
                           f"known to be stored, some may be; retry the same request",
                           len(events), timeout_s) from None


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # its failure is answered (503) or logged (_late_outcome)


def _late_outcome(task: asyncio.Future[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is None:
        log.info("HTTP ingest: events answered 503 were acknowledged by Kafka later")
    else:
        log.warning("HTTP ingest: events answered 503 were not published: %r", exc)
