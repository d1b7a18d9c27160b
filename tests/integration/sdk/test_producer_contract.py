"""The producer SDK's failure contract on a real broker: each case ends within its bound, as the
SDK's own exception or through `on_delivery`, and writes at most one log line per cause.

The session broker serves the cases that leave it alone; a private broker (module-scoped, in a
tmp dir) is stalled (SIGSTOP) for the buffer-full and close-with-undelivered cases and stopped for
"broker going away", which runs last. Each case prints the time it took and the lines it logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline import (
    BrokerUnavailable,
    BufferFull,
    DeliveryFailed,
    DeliveryTimeout,
    EventTooLarge,
    InvalidEvent,
    Producer,
    ProducerClosed,
    SyncProducer,
    TopicNotFound,
)
from pipeline.core.settings import TopicNames
from pipeline.ingest.topic_admin import ensure_topics
from pipeline.local.kafka import LocalKafka
from pipeline.local.kafka_config import BrokerInfo
from pipeline.sdk.producer import reset_log_limits
from tests.integration.kafka_fixture import JAR_CACHE

pytestmark = pytest.mark.kafka

DELIVERY_S = 3.0     # the delivery timeout every case here runs with
METADATA_S = 2.0
FLAVORS = ("async", "sync")


def request(i: int, endpoint: int = 7) -> dict[str, Any]:
    return {"v": 1, "type": "request", "ts": time.time(), "tenant": "acme", "endpoint_id": endpoint,
            "status": 200, "latency_ms": 40.0 + i, "id": f"r{i}"}


class Reports:
    """on_delivery collector: events delivered and not delivered, by error type."""

    def __init__(self) -> None:
        self.delivered = 0
        self.failed: Counter[str] = Counter()

    def __call__(self, topic: str, events: list[bytes], error: BaseException | None) -> None:
        if error is None:
            self.delivered += len(events)
        else:
            assert isinstance(error, DeliveryFailed)
            assert error.undelivered == len(events)
            self.failed[type(error).__name__] += len(events)


class Client:
    """`Producer` or `SyncProducer` behind one awaitable surface, so each case runs both."""

    def __init__(self, flavor: str, bootstrap: str, topics: TopicNames, **kwargs: Any) -> None:
        self.flavor = flavor
        self.bootstrap = bootstrap
        self.topics = topics
        self.kwargs = {"delivery_timeout_s": DELIVERY_S, "metadata_timeout_s": METADATA_S,
                       **kwargs}
        self.p: Any = None

    async def start(self) -> Client:
        if self.flavor == "sync":
            self.p = await asyncio.to_thread(SyncProducer, self.bootstrap, self.topics,
                                             **self.kwargs)
        else:
            self.p = Producer(self.bootstrap, self.topics, **self.kwargs)
            await self.p.start()
        return self

    async def _call(self, name: str, *args: Any) -> Any:
        fn = getattr(self.p, name)
        return await asyncio.to_thread(fn, *args) if self.flavor == "sync" else await fn(*args)

    async def send(self, kind: str, event: dict[str, Any]) -> None:
        await self._call("send", kind, event)

    async def flush(self) -> None:
        await self._call("flush")

    async def close(self) -> int:
        n: int = await self._call("close")
        return n

    async def exit(self) -> BaseException | None:
        """Leave the context-manager form; returns what it raised."""
        try:
            if self.flavor == "sync":
                await asyncio.to_thread(self.p.__exit__, None, None, None)
            else:
                await self.p.__aexit__(None, None, None)
        except BaseException as exc:
            return exc
        return None


class Lines:
    """The log lines the SDK and the Kafka client wrote during one case."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog

    def __call__(self) -> list[str]:
        return [f"{r.name} {r.levelname} {r.getMessage()}" for r in self.caplog.records
                if r.name.startswith(("aiokafka", "vitals"))]

    def assert_said_once(self) -> list[str]:
        causes = Counter((r.name, r.levelno, str(r.msg).split(" [")[0])
                         for r in self.caplog.records if r.name.startswith(("aiokafka", "vitals")))
        assert all(n == 1 for n in causes.values()), causes
        return self()


def report(case: str, seconds: float, lines: list[str]) -> None:
    print(f"\n[contract] {case}: {seconds:.2f} s, {len(lines)} log lines")
    for line in lines:
        print(f"[contract]   {line[:160]}")


@pytest.fixture(autouse=True)
def _fresh_log_limits(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    reset_log_limits()
    caplog.set_level(logging.INFO)
    yield
    reset_log_limits()


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Lines:
    return Lines(caplog)


@pytest.fixture
async def topics(kafka_bootstrap: str) -> TopicNames:
    names = TopicNames(prefix=f"t{uuid.uuid4().hex[:10]}-")
    await ensure_topics(kafka_bootstrap, [names.requests])
    return names


class PrivateBroker:
    def __init__(self, home: Path) -> None:
        self.kafka = LocalKafka(home, cache_dir=JAR_CACHE, progress=lambda _m: None)
        self.info: BrokerInfo | None = None

    async def running(self) -> BrokerInfo:
        if self.info is None or self.kafka.status() is None:
            self.info = await asyncio.to_thread(self.kafka.start, 120.0)
        return self.info


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(tmp_path_factory.mktemp("contract-broker"))
    try:
        yield broker
    finally:
        broker.kafka.stop()


def _stopped(task: Path) -> bool:
    try:
        return (task / "stat").read_text().rsplit(")", 1)[1].split()[0] in "tT"
    except FileNotFoundError:  # a thread that just ended
        return True


class Stalled:
    """The broker process frozen (SIGSTOP): connections stay open, nothing is answered."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    async def __aenter__(self) -> Stalled:
        os.kill(self.pid, signal.SIGSTOP)  # delivered asynchronously: wait until every thread
        while not all(_stopped(t) for t in Path(f"/proc/{self.pid}/task").iterdir()):
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        os.kill(self.pid, signal.SIGCONT)


@pytest.fixture
async def stall_ready(
        private_broker: PrivateBroker) -> AsyncIterator[tuple[BrokerInfo, TopicNames]]:
    info = await private_broker.running()
    names = TopicNames(prefix=f"t{uuid.uuid4().hex[:10]}-")
    await ensure_topics(info.bootstrap, [names.requests])
    yield info, names


# --------------------------------------------------------------------------- the cases


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_topic_missing_raises_topic_not_found_fast_and_quietly(
        flavor: str, kafka_bootstrap: str, lines: Lines) -> None:
    """The issue's reproduction: 2,000 sends before the topics exist."""
    missing = TopicNames(prefix=f"absent{uuid.uuid4().hex[:8]}-")
    client = await Client(flavor, kafka_bootstrap, missing).start()
    t0 = time.monotonic()
    raised: Counter[str] = Counter()
    first_s = None
    for i in range(2000):
        try:
            await client.send("requests", request(i))
        except TopicNotFound as exc:
            raised[type(exc).__name__] += 1
            first_s = first_s or time.monotonic() - t0
            assert exc.topic == missing.requests
            assert f"topic {missing.requests!r} does not exist on {kafka_bootstrap}" in str(exc)
            assert "`vitals up` creates them" in str(exc)
    elapsed = time.monotonic() - t0
    assert raised == {"TopicNotFound": 2000}
    # TOPIC_ABSENT_S (1 s) of "no such topic" answers, plus a loaded machine's scheduling
    assert first_s is not None and 0.9 <= first_s < 2.0
    assert elapsed < 5.0
    t1 = time.monotonic()
    assert await client.close() == 0
    assert time.monotonic() - t1 < 2.0
    said = lines.assert_said_once()
    assert said == []
    report(f"topic missing ({flavor}): first of 2000 sends", first_s, said)
    report(f"topic missing ({flavor}): all 2000 sends", elapsed, said)


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_broker_unreachable_start_raises_broker_unavailable(
        flavor: str, lines: Lines) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    bootstrap = f"127.0.0.1:{port}"
    t0 = time.monotonic()
    with pytest.raises(BrokerUnavailable) as failure:
        await Client(flavor, bootstrap, TopicNames(), metadata_timeout_s=1.0).start()
    elapsed = time.monotonic() - t0
    assert 0.7 <= elapsed < 1.0 + 0.5
    assert failure.value.bootstrap == bootstrap
    assert f"no Kafka broker answered at {bootstrap} within 1 s" in str(failure.value)
    assert "`vitals kafka start`" in str(failure.value)
    said = lines.assert_said_once()
    assert len(said) <= 2  # aiokafka: "Unable connect to ..." once (+ its bootstrap summary)
    report(f"broker unreachable ({flavor})", elapsed, said)


async def test_wrong_address_not_kafka_raises_broker_unavailable(lines: Lines) -> None:
    """Something listens but never speaks Kafka (a wrong port): bounded all the same."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        t0 = time.monotonic()
        with pytest.raises(BrokerUnavailable) as failure:
            await Client("async", f"127.0.0.1:{port}", TopicNames(),
                         metadata_timeout_s=1.0).start()
        elapsed = time.monotonic() - t0
    finally:
        server.close()
    assert 0.7 <= elapsed < 1.0 + 0.5
    assert failure.value.waited_s == 1.0
    said = lines.assert_said_once()
    report("wrong address (a port that is not Kafka)", elapsed, said)


#: raised at the call, not after a broker round trip or a delivery timeout (DELIVERY_S); the
#: bound leaves room for a loaded machine stalling the loop (the call itself takes microseconds:
#: bench/producer.py)
FAIL_FAST_S = 1.0


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_invalid_event_raises_invalid_event_and_sends_nothing(
        flavor: str, kafka_bootstrap: str, topics: TopicNames, lines: Lines) -> None:
    got = Reports()
    client = await Client(flavor, kafka_bootstrap, topics, on_delivery=got).start()
    t0 = time.monotonic()
    with pytest.raises(InvalidEvent) as failure:
        await client.send("requests", {**request(0), "status": "two hundred"})
    elapsed = time.monotonic() - t0
    assert "status" in failure.value.reason
    await client.send("requests", request(1))
    await client.flush()
    assert await client.close() == 0
    assert (got.delivered, dict(got.failed)) == (1, {})
    with pytest.raises(ProducerClosed):
        await client.send("requests", request(2))
    assert elapsed < FAIL_FAST_S
    said = lines.assert_said_once()
    assert said == []
    report(f"invalid event ({flavor})", elapsed, said)


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_event_too_large_raises_before_sending(
        flavor: str, kafka_bootstrap: str, lines: Lines) -> None:
    names = TopicNames(prefix=f"t{uuid.uuid4().hex[:10]}-")
    await ensure_topics(kafka_bootstrap, [names.topic("task-events")])
    got = Reports()
    client = await Client(flavor, kafka_bootstrap, names, max_message_bytes=64 * 1024,
                          on_delivery=got).start()
    big = {"v": 1, "type": "log", "task": "k1", "tenant": "acme", "msg": "x" * 100_000,
           "timestamp": int(time.time() * 1000)}
    t0 = time.monotonic()
    with pytest.raises(EventTooLarge) as failure:
        await client.send("task-events", big)
    elapsed = time.monotonic() - t0
    assert failure.value.limit == 64 * 1024
    assert failure.value.size == 100_000 + len(b'[{"v":1,"type":"log","task":"k1","tenant":"acme",'
                                               b'"msg":"","timestamp":1700000000000}]')
    assert await client.close() == 0
    assert (got.delivered, dict(got.failed)) == (0, {})
    assert elapsed < FAIL_FAST_S
    said = lines.assert_said_once()
    assert said == []
    report(f"event too large ({flavor})", elapsed, said)


async def test_message_the_broker_refuses_as_too_large_fails_delivery(
        kafka_bootstrap: str, lines: Lines) -> None:
    """A topic whose max.message.bytes is below the SDK's limit: Kafka's refusal, typed."""
    names = TopicNames(prefix=f"t{uuid.uuid4().hex[:10]}-")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(names.topic("task-events"), 1, 1,
                                            topic_configs={"max.message.bytes": "2000"})])
    finally:
        await admin.close()
    await ensure_topics(kafka_bootstrap, [names.topic("task-events")])
    got = Reports()
    client = await Client("async", kafka_bootstrap, names, on_delivery=got).start()
    event = {"v": 1, "type": "log", "task": "k1", "tenant": "acme", "msg": "y" * 5000,
             "timestamp": int(time.time() * 1000)}
    t0 = time.monotonic()
    await client.send("task-events", event)
    with pytest.raises(DeliveryFailed) as failure:
        await client.flush()
    elapsed = time.monotonic() - t0
    assert type(failure.value) is DeliveryFailed
    assert failure.value.undelivered == 1
    assert "as too large" in str(failure.value)
    assert (got.delivered, dict(got.failed)) == (0, {"DeliveryFailed": 1})
    assert await client.close() == 0
    assert elapsed < DELIVERY_S
    said = lines.assert_said_once()
    assert len([s for s in said if s.startswith("vitals.producer WARNING")]) == 1
    report("message refused by the broker as too large", elapsed, said)


async def test_buffer_full_blocks_then_raises_and_close_counts_undelivered(
        stall_ready: tuple[BrokerInfo, TopicNames], lines: Lines) -> None:
    """A stalled broker: send() blocks buffer_timeout_s then raises BufferFull; close() ends
    within its bound and says how many events it could not deliver — both flavors alike."""
    info, names = stall_ready
    clients = {f: await Client(f, info.bootstrap, names, buffer_max_events=50,
                               buffer_timeout_s=0.5, on_delivery=Reports()).start()
               for f in FLAVORS}
    for c in clients.values():  # the topic is known and the connection is up
        await c.send("requests", request(0))
        await c.flush()
    async def fill_then_close(c: Client) -> tuple[float, float]:
        for i in range(50):
            await c.send("requests", request(i))
        t0 = time.monotonic()  # the last accepted send
        with pytest.raises(BufferFull) as failure:
            await c.send("requests", request(50))
        blocked = time.monotonic() - t0
        assert failure.value.events == 50
        assert "raise buffer_max_events" in str(failure.value)
        assert await c.close() == 50
        return blocked, time.monotonic() - t0

    async with Stalled(info.pid):
        measured = await asyncio.gather(*(fill_then_close(c) for c in clients.values()))
    for (flavor, c), (blocked, closed) in zip(clients.items(), measured, strict=True):
        assert 0.5 <= blocked < 0.8
        assert DELIVERY_S <= closed < 2 * DELIVERY_S + 1.0
        got = c.kwargs["on_delivery"]
        assert (got.delivered, dict(got.failed)) == (1, {"DeliveryTimeout": 50})
        assert type(c.p.close_error) is DeliveryTimeout
        assert c.p.close_error.undelivered == 50
        report(f"buffer full ({flavor}): send() blocked, then BufferFull", blocked, [])
        report(f"close() with 50 undelivered ({flavor}), from the last send", closed, [])
    report("buffer full + close, both flavors, together", 0.0, lines.assert_said_once())


async def test_context_manager_raises_undelivered_on_exit(
        stall_ready: tuple[BrokerInfo, TopicNames], lines: Lines) -> None:
    info, names = stall_ready
    clients = {f: await Client(f, info.bootstrap, names, on_delivery=Reports()).start()
               for f in FLAVORS}
    for c in clients.values():
        await c.send("requests", request(0))
        await c.flush()

    async def send_then_exit(c: Client) -> tuple[BaseException | None, float]:
        for i in range(20):
            await c.send("requests", request(i, endpoint=i % 3))
        t0 = time.monotonic()
        raised = await c.exit()
        return raised, time.monotonic() - t0

    async with Stalled(info.pid):
        results = await asyncio.gather(*(send_then_exit(c) for c in clients.values()))
    for (flavor, c), (raised, elapsed) in zip(clients.items(), results, strict=True):
        assert isinstance(raised, DeliveryTimeout), (flavor, raised, c.p.close_error,
                                                     c.kwargs["on_delivery"].failed)
        assert type(raised) is DeliveryTimeout
        assert raised.undelivered == 20
        assert "20 events not delivered; the first: " in str(raised)
        got = c.kwargs["on_delivery"]
        assert (got.delivered, dict(got.failed)) == (1, {"DeliveryTimeout": 20})
        assert DELIVERY_S - 0.5 <= elapsed < 2 * DELIVERY_S + 1.0
        report(f"context manager exit with 20 undelivered ({flavor})", elapsed, [])
    report("context managers, both flavors, together", 0.0, lines.assert_said_once())


async def test_sync_sends_from_many_threads_arrive_once_each_in_order(
        kafka_bootstrap: str, topics: TopicNames) -> None:
    """`SyncProducer.send` hands events to the loop thread without waiting (staging): from 4
    threads at once, 20,000 events arrive exactly once each, every thread's events in the order
    it sent them per key, and the counters say so."""
    import threading

    from aiokafka import AIOKafkaConsumer

    threads, per_thread = 4, 5000
    reports = Reports()
    with SyncProducer(kafka_bootstrap, topics, on_delivery=reports) as p:
        def worker(t: int) -> None:
            for i in range(per_thread):
                p.send("requests", {**request(i, endpoint=i % 2), "id": f"{t}-{i}"})

        pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        p.flush()
        assert p.producer.delivered_events == threads * per_thread
    assert reports.delivered == threads * per_thread and not reports.failed

    consumer = AIOKafkaConsumer(topics.requests, bootstrap_servers=kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen: list[tuple[int, str]] = []
    try:
        while len(seen) < threads * per_thread:
            batch = await consumer.getmany(timeout_ms=2000)
            assert batch, f"only {len(seen)} events arrived"
            for records in batch.values():
                for r in records:
                    seen += [(e["endpoint_id"], e["id"]) for e in orjson.loads(r.value)]
    finally:
        await consumer.stop()
    assert len(seen) == len({i for _, i in seen}) == threads * per_thread
    for t in range(threads):
        for endpoint in (0, 1):
            order = [int(i.split("-")[1]) for ep, i in seen
                     if ep == endpoint and i.startswith(f"{t}-")]
            assert order == list(range(endpoint, per_thread, 2))


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_send_many_packs_delivers_and_reports_each_event(
        flavor: str, kafka_bootstrap: str, topics: TopicNames) -> None:
    """send_many of valid events goes out as packed envelopes: every event delivered once, in
    order per key, and `on_delivery` still gets each event's own bytes. With a bad event in the
    batch it is event by event: the events before it are delivered, it raises, none after."""
    from aiokafka import AIOKafkaConsumer

    reports = Reports()
    delivered: list[bytes] = []

    def on_delivery(topic: str, events: list[bytes], error: BaseException | None) -> None:
        reports(topic, events, error)
        delivered.extend(events)

    client = await Client(flavor, kafka_bootstrap, topics, on_delivery=on_delivery).start()
    good = [{**request(i, endpoint=i % 3), "id": f"g{i}"} for i in range(3000)]
    await client._call("send_many", "requests", good)
    mixed = [{**request(i, endpoint=9), "id": f"m{i}"} for i in range(10)]
    mixed[4]["status"] = "oops"
    with pytest.raises(InvalidEvent, match="status"):
        await client._call("send_many", "requests", mixed)
    await client.flush()
    assert await client.close() == 0
    assert reports.delivered == 3004 and not reports.failed
    assert sorted(orjson.loads(b)["id"] for b in delivered) == sorted(
        [e["id"] for e in good] + [f"m{i}" for i in range(4)])

    consumer = AIOKafkaConsumer(topics.requests, bootstrap_servers=kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen: list[dict[str, Any]] = []
    try:
        while len(seen) < 3004:
            batch = await consumer.getmany(timeout_ms=2000)
            assert batch, f"only {len(seen)} events arrived"
            for records in batch.values():
                for r in records:
                    seen += orjson.loads(r.value)
    finally:
        await consumer.stop()
    assert len(seen) == 3004
    for endpoint in (0, 1, 2):
        assert [e["id"] for e in seen if e["endpoint_id"] == endpoint] == [
            e["id"] for e in good if e["endpoint_id"] == endpoint]
    assert [e["id"] for e in seen if e["endpoint_id"] == 9] == ["m0", "m1", "m2", "m3"]


async def test_broker_going_away_mid_stream(
        private_broker: PrivateBroker, lines: Lines) -> None:
    """Runs last: it stops the private broker. Both flavors on the same outage; 5 keys, so 5
    envelopes of 20 events each, reported one by one and summed by flush()."""
    info = await private_broker.running()
    names = TopicNames(prefix=f"t{uuid.uuid4().hex[:10]}-")
    await ensure_topics(info.bootstrap, [names.requests])
    clients = {f: await Client(f, info.bootstrap, names, on_delivery=Reports()).start()
               for f in FLAVORS}
    for c in clients.values():
        for i in range(200):
            await c.send("requests", request(i, endpoint=i % 5))
        await c.flush()
    await asyncio.to_thread(private_broker.kafka.stop)
    last_send = {}
    for flavor, c in clients.items():
        for i in range(100):
            await c.send("requests", request(i, endpoint=i % 5))
        last_send[flavor] = time.monotonic()

    async def flush_twice(c: Client) -> tuple[list[BaseException | None], float]:
        # two flush() calls at once: each raises for the events it waited for
        raised = await asyncio.gather(c.flush(), c.flush(), return_exceptions=True)
        return list(raised), time.monotonic()

    results = await asyncio.gather(*(flush_twice(c) for c in clients.values()))
    measured = {}
    for (flavor, c), (raised, flush_end) in zip(clients.items(), results, strict=True):
        flushed = flush_end - last_send[flavor]
        assert [type(r) for r in raised] == [DeliveryTimeout, DeliveryTimeout]
        assert [r.undelivered for r in raised if isinstance(r, DeliveryTimeout)] == [100, 100]
        assert "100 events not delivered; the first: 20 events for topic" in str(raised[0])
        assert "not acknowledged by Kafka" in str(raised[0])
        t1 = time.monotonic()
        assert await c.close() == 0  # flush() already raised them
        closed = time.monotonic() - t1
        got = c.kwargs["on_delivery"]
        assert (got.delivered, dict(got.failed)) == (200, {"DeliveryTimeout": 100})
        assert flushed < DELIVERY_S + 1.0
        assert closed < DELIVERY_S / 3 + 1.5
        measured[flavor] = (flushed, closed)
    said = lines.assert_said_once()
    for flavor, (flushed, closed) in measured.items():
        report(f"broker gone ({flavor}): flush() raised, from the last send", flushed, [])
        report(f"broker gone ({flavor}): close()", closed, [])
    report("broker going away, both flavors", 0.0, said)


def test_metrics_client_counts_what_it_drops() -> None:
    """Fire-and-forget by design: nothing raises or blocks, and every drop is counted."""
    from pipeline.sdk.metrics_client import MetricsClient

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        metrics = MetricsClient("127.0.0.1", port)
        t0 = time.monotonic()
        for i in range(10):
            metrics.increment("ok_counter", i)
            metrics.gauge("bad_gauge", float("nan"))   # not a number: dropped
        unresolvable = MetricsClient("no-such-host.invalid", port)
        for _ in range(5):
            unresolvable.increment("lost")              # no address (yet, or ever): dropped
        elapsed = time.monotonic() - t0
        metrics.close()
        metrics.increment("after_close")                # closed socket: dropped
        unresolvable.close()
    assert (metrics.sent, metrics.dropped) == (10, 11)
    assert (unresolvable.sent, unresolvable.dropped) == (0, 5)
    assert elapsed < 0.5
    report("metrics client drops (counted, never raised)", elapsed, [])
