"""The producer SDK's exceptions: each names what failed, what it carries and what to do.

All derive from `ProducerError` (itself a `VitalsError`), except `InvalidEvent`, which the SDK
shares with the worker (pipeline/core/errors.py). Which is raised where:

- by `send()`, for that event only: `InvalidEvent`, `EventTooLarge`, `TopicNotFound`,
  `BrokerUnavailable` (no broker answered a topic lookup), `BufferFull`, `ProducerClosed`;
- by `start()`: `BrokerUnavailable`;
- by `flush()` and on leaving the context manager, for the events they waited for (and earlier
  ones no `flush()` raised yet) that were not delivered: `DeliveryTimeout` (not acknowledged in
  time) or `DeliveryFailed` (refused by Kafka), with `undelivered` = how many events;
- to `on_delivery(topic, events, error)`, per envelope: `DeliveryTimeout` or `DeliveryFailed`.

An error that carries fields declares them as a dataclass (`eq=False, repr=False`: compared by
identity and shown as any exception) with the `template` its message is made from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from pipeline.core.errors import InvalidEvent, VitalsError

__all__ = ["BrokerUnavailable", "BufferFull", "DeliveryFailed", "DeliveryTimeout",
           "EventTooLarge", "FailureTally", "InvalidEvent", "ProducerClosed", "ProducerError",
           "TopicNotFound"]


class ProducerError(VitalsError):
    """Root of the producer SDK's own errors."""


class _Described(ProducerError):
    """An error whose message is its `template` filled in with its fields."""

    template: ClassVar[str] = ""

    def __post_init__(self) -> None:
        super().__init__(self.template.format_map(vars(self)))


@dataclass(eq=False, repr=False)
class TopicNotFound(_Described):
    """The broker answered that `topic` does not exist (Vitals never auto-creates topics)."""

    topic: str
    bootstrap: str
    template = ("topic {topic!r} does not exist on {bootstrap}: create the topics first "
                "(`vitals up` creates them, or `ensure_topics`), and check the topic prefix")


@dataclass(eq=False, repr=False)
class BrokerUnavailable(_Described):
    """No broker at `bootstrap` answered within `waited_s` seconds; `detail` is the last error."""

    bootstrap: str
    waited_s: float
    detail: str
    template = ("no Kafka broker answered at {bootstrap} within {waited_s:g} s ({detail}): is "
                "the broker running (`vitals kafka start`) and is KAFKA_BOOTSTRAP / the address "
                "right?")


@dataclass(eq=False, repr=False)
class EventTooLarge(_Described):
    """The event is `size` bytes as JSON; one Kafka message may hold at most `limit`."""

    size: int
    limit: int
    template = ("event of {size} bytes exceeds the {limit}-byte message limit: split it, or "
                "raise max_message_bytes together with the worker's VITALS_MAX_MESSAGE_BYTES")


@dataclass(eq=False, repr=False)
class BufferFull(_Described):
    """`send()` waited `waited_s` seconds for room among the undelivered events and got none."""

    events: int
    nbytes: int
    waited_s: float
    template = ("the producer holds {events} undelivered events ({nbytes} bytes), its buffer "
                "limit, and none was delivered within {waited_s:g} s: the broker is slow or "
                "away; slow down, retry later, or raise buffer_max_events / buffer_max_bytes")


class ProducerClosed(ProducerError):
    """`send()` or `flush()` before `start()` or after `close()`."""


class DeliveryFailed(ProducerError):
    """`undelivered` events were not delivered; the message says why and what to do.

    Every such event was also reported to `on_delivery` with this error.
    """

    def __init__(self, message: str, *, undelivered: int) -> None:
        super().__init__(message)
        self.undelivered = undelivered


class DeliveryTimeout(DeliveryFailed):
    """Events not acknowledged by Kafka within the delivery timeout (broker away, stalled or
    overloaded). Kafka may still have written some of them: resend with the same event `id`."""


class FailureTally:
    """Envelopes' delivery failures summed in O(1) memory: the first, how many envelopes and
    events, and whether all of them timed out (a broker away for hours must grow nothing)."""

    def __init__(self) -> None:
        self.first: DeliveryFailed | None = None
        self.envelopes = 0
        self.events = 0
        self.all_timeouts = True

    def add(self, error: DeliveryFailed) -> None:
        self.first = self.first or error
        self.envelopes += 1
        self.events += error.undelivered
        self.all_timeouts = self.all_timeouts and isinstance(error, DeliveryTimeout)

    def add_fates(self, fates: Iterable[asyncio.Future[DeliveryFailed | None]]) -> FailureTally:
        """Add the failures among the decided `fates`; returns self."""
        for fate in fates:
            error = fate.result() if fate.done() else None
            if error is not None:
                self.add(error)
        return self

    def merge(self, other: FailureTally) -> None:
        self.first = self.first or other.first
        self.envelopes += other.envelopes
        self.events += other.events
        self.all_timeouts = self.all_timeouts and other.all_timeouts

    def error(self) -> DeliveryFailed | None:
        """None, the one failure, or one error for all: `DeliveryTimeout` only if all timed out,
        `undelivered` the total, the first failure as the cause."""
        if self.first is None or self.envelopes == 1:
            return self.first
        kind = DeliveryTimeout if self.all_timeouts else DeliveryFailed
        summary = kind(f"{self.events} events not delivered; the first: {self.first}",
                       undelivered=self.events)
        summary.__cause__ = self.first
        return summary
