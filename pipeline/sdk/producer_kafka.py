"""The producer SDK's boundary with aiokafka: every wait bounded, every error translated by type.

`KafkaLink` owns one idempotent `AIOKafkaProducer` and gives the SDK four bounded operations:
`start` (→ `BrokerUnavailable`), `lookup` of a topic (→ `TopicNotFound` / `BrokerUnavailable`),
`failure` (a client error as the SDK's `DeliveryFailed`/`DeliveryTimeout`) and `stop`. Callers
above this module never see an aiokafka exception.

Why `stop` reaches into aiokafka: its idempotent producer never expires a batch it failed to
deliver (it retries until the broker answers) and `AIOKafkaProducer.stop()` waits for every
batch, so with the broker away it never returns. The SDK reports such batches undelivered at its
own deadline; `stop` then cancels the sender and closes the connections instead of waiting.

Said once: `SaidOnce`, one process-wide filter on the SDK's logger and on aiokafka's (on the
loggers themselves, not on a handler: the SDK runs in processes whose logging it does not own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RequestTimedOutError,
)

from pipeline.core.log_limit import Throttle
from pipeline.ingest.topics import MAX_MESSAGE_BYTES
from pipeline.sdk.producer_errors import (
    BrokerUnavailable,
    DeliveryFailed,
    DeliveryTimeout,
    TopicNotFound,
)

__all__ = ["SAID_ONCE", "SDK_LOGGERS", "KafkaLink", "SaidOnce", "client_options"]

#: The SDK's logger and the Kafka client's beneath it; each gets `SAID_ONCE`. (A filter on a
#: logger sees only the records logged on that very logger, hence every module's logger.)
SDK_LOGGERS = ("vitals.producer", "aiokafka", "aiokafka.cluster", "aiokafka.conn",
               "aiokafka.producer.producer", "aiokafka.producer.sender",
               "aiokafka.producer.message_accumulator")
#: Between two attempts at a broker that did not answer.
RETRY_S = 0.2
#: How long the broker must keep answering "no such topic" before `TopicNotFound` (a topic
#: created a moment ago may not be in every broker's metadata yet).
TOPIC_ABSENT_S = 1.0


class SaidOnce(logging.Filter):
    """At most one record per cause per `every_s`; the cause of a record is its logger, level and
    unformatted message template ("Topic %s not found" for one topic or a thousand is one cause).
    The next record of a cause that passes says how many were held back, so nothing vanishes
    without a trace. Pure apart from the injected clock (a `pipeline.core.log_limit.Throttle`)."""

    def __init__(self, every_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every_s = every_s
        self._clock = clock
        self._throttle = Throttle(every_s, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        held = self._throttle.allow((record.name, record.levelno, str(record.msg)))
        if held is None:
            return False
        if held:
            record.msg = f"{record.getMessage()} [{held} more like this held back]"
            record.args = None
        return True

    def reset(self) -> None:
        """Forget every cause (tests measure each case from zero)."""
        self._throttle = Throttle(self.every_s, self._clock)

    def install(self, names: tuple[str, ...] = SDK_LOGGERS) -> None:
        """Attach to each named logger, once."""
        for name in names:
            logger = logging.getLogger(name)
            if self not in logger.filters:
                logger.addFilter(self)


#: The one filter of the process: "once per minute" holds however many producers it runs.
SAID_ONCE = SaidOnce()


def client_options(max_bytes: int) -> dict[str, Any]:
    """The aiokafka producer settings of the SDK's client, timeouts aside (also what
    `bench.producer` sends its raw baseline with): idempotent, acks=all, a batch per partition
    of at least 1 MiB (two envelopes of `max_bytes`), requests up to the topics' message limit."""
    return {"acks": "all", "enable_idempotence": True, "linger_ms": 5,
            "max_request_size": MAX_MESSAGE_BYTES, "max_batch_size": max(1 << 20, max_bytes * 2)}


class KafkaLink:
    """One Kafka producer client with bounded waits.

    `request_timeout_s` bounds each aiokafka wait (a request, a metadata wait, room in a full
    batch); `stop` takes at most 3 of them.
    """

    def __init__(self, bootstrap: str, *, request_timeout_s: float, max_bytes: int) -> None:
        SAID_ONCE.install()
        self.bootstrap = bootstrap
        self.request_timeout_s = request_timeout_s
        self.client = AIOKafkaProducer(bootstrap_servers=bootstrap,
                                       request_timeout_ms=int(request_timeout_s * 1000),
                                       **client_options(max_bytes))

    async def start(self, timeout_s: float) -> None:
        """Connect, retrying until `timeout_s`; then `BrokerUnavailable` (client stopped)."""
        deadline = time.monotonic() + timeout_s
        detail = "no answer"
        while True:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await self.client.start()
                return
            except TimeoutError:
                pass
            except KafkaError as exc:
                detail = f"{type(exc).__name__}: {exc}"
            if time.monotonic() + RETRY_S >= deadline:
                await self.stop(abandon=True)
                raise BrokerUnavailable(self.bootstrap, timeout_s, detail)
            await asyncio.sleep(RETRY_S)

    async def lookup(self, topic: str, timeout_s: float) -> None:
        """Return once the cluster knows `topic`. `TopicNotFound` once the cluster has answered
        without it for `TOPIC_ABSENT_S` (or `timeout_s / 2`, if shorter); `BrokerUnavailable` if
        no broker answered within `timeout_s`.

        Asks for all topics' metadata rather than this one's: a request naming a missing topic
        would have aiokafka track it and log it missing on every refresh.
        """
        deadline = time.monotonic() + timeout_s
        absent_since: float | None = None
        detail = "no answer"
        while True:
            cluster: Any = None
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    cluster = await self.client.client.fetch_all_metadata()
            except TimeoutError:
                pass
            except KafkaError as exc:
                detail = f"{type(exc).__name__}: {exc}"
            now = time.monotonic()
            if cluster is not None:
                if cluster.partitions_for_topic(topic):
                    return
                absent_since = now if absent_since is None else absent_since
                if (now - absent_since >= min(TOPIC_ABSENT_S, timeout_s / 2)
                        or now + RETRY_S >= deadline):
                    raise TopicNotFound(topic, self.bootstrap)
            elif now + RETRY_S >= deadline:
                raise BrokerUnavailable(self.bootstrap, timeout_s, detail)
            await asyncio.sleep(RETRY_S)

    async def send(self, topic: str, value: bytes, key: bytes | None) -> asyncio.Future[Any]:
        """Hand one message to the client; its future resolves on Kafka's answer. Raises what
        aiokafka raises: callers bound it with a timeout and pass errors to `failure`."""
        fut: asyncio.Future[Any] = await self.client.send(topic, value, key=key)
        return fut

    def timed_out(self, topic: str, n: int, timeout_s: float) -> DeliveryTimeout:
        return DeliveryTimeout(
            f"{n} events for topic {topic!r} were not acknowledged by Kafka at {self.bootstrap} "
            f"within the {timeout_s:g} s delivery timeout: the broker is away, stalled or "
            f"overloaded (check it: `vitals kafka status`); Kafka may still write them, so "
            f"resend with the same event ids", undelivered=n)

    def failure(self, exc: BaseException, topic: str, n: int, size: int,
                timeout_s: float) -> DeliveryFailed:
        """A client error (or our own timeout) for a message of `n` events, `size` bytes, by type
        as the SDK's own; anything unknown becomes a `DeliveryFailed` naming it, never silence."""
        if isinstance(exc, TimeoutError | KafkaTimeoutError | RequestTimedOutError):
            return self.timed_out(topic, n, timeout_s)
        if isinstance(exc, MessageSizeTooLargeError | RecordListTooLargeError):
            return DeliveryFailed(
                f"Kafka refused a {size}-byte message ({n} events) for topic {topic!r} as too "
                f"large: set max_message_bytes below the topic's max.message.bytes (or raise "
                f"that)", undelivered=n)
        what = "refused" if isinstance(exc, KafkaError) else "could not take"
        return DeliveryFailed(f"Kafka {what} {n} events for topic {topic!r}: "
                              f"{type(exc).__name__}: {exc}", undelivered=n)

    async def stop(self, *, abandon: bool) -> None:
        """Stop the client within 3 × request_timeout_s. With `abandon` (batches that were
        reported undelivered are still in the client) or if `stop()` overruns, the sender is
        cancelled and the connections closed rather than waiting for those batches."""
        kafka, t = self.client, self.request_timeout_s
        if not abandon:
            stop = asyncio.ensure_future(kafka.stop())
            done, _ = await asyncio.wait({stop}, timeout=t)
            if done:
                with contextlib.suppress(KafkaError):
                    stop.result()
                return
            stop.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await stop
        sender = kafka._sender.sender_task
        if sender is not None and not sender.done():
            sender.cancel()  # it ends once its in-flight requests end (each bounded by t)
            done, _ = await asyncio.wait({sender}, timeout=t)
            if not done:
                sender.cancel()
        with contextlib.suppress(TimeoutError, KafkaError, OSError):
            async with asyncio.timeout(t):
                await kafka.client.close()
        kafka._closed = True  # what stop() would have set: nothing is left to flush
