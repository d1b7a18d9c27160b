"""The producer SDK's exceptions: each names what failed, what it carries and what to do.

All derive from `ProducerError` (itself a `VitalsError`), except `InvalidEvent`, which the SDK
shares with the worker (pipeline/errors.py). Which is raised where:

- by `send()`, for that event only: `InvalidEvent`, `EventTooLarge`, `TopicNotFound`,
  `BrokerUnavailable` (no broker answered a topic lookup), `BufferFull`, `ProducerClosed`;
- by `start()`: `BrokerUnavailable`;
- by `flush()` and on leaving the context manager, for the events they waited for (and earlier
  ones no `flush()` raised yet) that were not delivered: `DeliveryTimeout` (not acknowledged in
  time) or `DeliveryFailed` (refused by Kafka), with `undelivered` = how many events;
- to `on_delivery(topic, events, error)`, per envelope: `DeliveryTimeout` or `DeliveryFailed`.
"""

from __future__ import annotations

from pipeline.errors import InvalidEvent, VitalsError

__all__ = ["BrokerUnavailable", "BufferFull", "DeliveryFailed", "DeliveryTimeout",
           "EventTooLarge", "InvalidEvent", "ProducerClosed", "ProducerError", "TopicNotFound"]


class ProducerError(VitalsError):
    """Root of the producer SDK's own errors."""


class TopicNotFound(ProducerError):
    """The broker answered that `topic` does not exist (Vitals never auto-creates topics)."""

    def __init__(self, topic: str, bootstrap: str) -> None:
        super().__init__(
            f"topic {topic!r} does not exist on {bootstrap}: create the topics first "
            f"(`vitals up` creates them, or `ensure_topics`), and check the topic prefix")
        self.topic = topic
        self.bootstrap = bootstrap


class BrokerUnavailable(ProducerError):
    """No broker at `bootstrap` answered within `waited_s` seconds; `detail` is the last error."""

    def __init__(self, bootstrap: str, waited_s: float, detail: str) -> None:
        super().__init__(
            f"no Kafka broker answered at {bootstrap} within {waited_s:g} s ({detail}): is the "
            f"broker running (`vitals kafka start`) and is KAFKA_BOOTSTRAP / the address right?")
        self.bootstrap = bootstrap
        self.waited_s = waited_s
        self.detail = detail


class EventTooLarge(ProducerError):
    """The event is `size` bytes as JSON; one Kafka message may hold at most `limit`."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"event of {size} bytes exceeds the {limit}-byte message limit: split it, or raise "
            f"max_message_bytes together with the worker's VITALS_MAX_MESSAGE_BYTES")
        self.size = size
        self.limit = limit


class BufferFull(ProducerError):
    """`send()` waited `waited_s` seconds for room among the undelivered events and got none."""

    def __init__(self, events: int, nbytes: int, waited_s: float) -> None:
        super().__init__(
            f"the producer holds {events} undelivered events ({nbytes} bytes), its buffer "
            f"limit, and none was delivered within {waited_s:g} s: the broker is slow or away; "
            f"slow down, retry later, or raise buffer_max_events / buffer_max_bytes")
        self.events = events
        self.nbytes = nbytes
        self.waited_s = waited_s


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
