"""The local Kafka runner against a real broker: round trip, status, idempotent start, restart."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.ingest.topic_admin import ensure_topics
from pipeline.local.kafka import LocalKafka
from pipeline.local.kafka_config import KafkaRuntimeError
from tests.integration.kafka_fixture import JAR_CACHE, broker_home

pytestmark = pytest.mark.kafka

N_MESSAGES = 1000


async def _produce(bootstrap: str, topic: str, n: int) -> dict[int, int]:
    """Send n keyed messages; return how many landed in each partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=f"k{i % 17}".encode(), value=f"v{i}".encode())
            for i in range(n)
        ]
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    per_partition: dict[int, int] = {}
    for meta in metas:
        per_partition[meta.partition] = per_partition.get(meta.partition, 0) + 1
    return per_partition


async def _consume(bootstrap: str, topic: str, n: int) -> list[tuple[int, bytes, bytes]]:
    """Read exactly n messages from the start (then check nothing more arrives)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[tuple[int, bytes, bytes]] = []
    try:
        async with asyncio.timeout(60):
            while len(got) < n:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    got += [(r.partition, r.key, r.value) for r in records]
        await consumer.commit()
        extra = await consumer.getmany(timeout_ms=500)
        got += [(r.partition, r.key, r.value) for rs in extra.values() for r in rs]
    finally:
        await consumer.stop()
    return got


async def test_round_trip_1000_messages_over_3_partitions(kafka_bootstrap: str) -> None:
    topic = f"test-kafka-local-{uuid.uuid4().hex}"
    await ensure_topics(kafka_bootstrap, [topic], partitions=3)
    await ensure_topics(kafka_bootstrap, [topic], partitions=3)  # existing: no error

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert sorted(p["partition"] for p in described["partitions"]) == [0, 1, 2]

    per_partition = await _produce(kafka_bootstrap, topic, N_MESSAGES)
    assert sum(per_partition.values()) == N_MESSAGES
    assert set(per_partition) == {0, 1, 2}

    got = await _consume(kafka_bootstrap, topic, N_MESSAGES)
    assert len(got) == N_MESSAGES
    assert sorted(value for _, _, value in got) == sorted(
        f"v{i}".encode() for i in range(N_MESSAGES)
    )
    # Keyed messages: one partition per key, and within it the send order.
    partitions_by_key: dict[bytes, set[int]] = {}
    values_by_key: dict[bytes, list[int]] = {}
    for partition, key, value in got:
        assert int(key[1:]) == int(value[1:]) % 17
        partitions_by_key.setdefault(key, set()).add(partition)
        values_by_key.setdefault(key, []).append(int(value[1:]))
    assert all(len(parts) == 1 for parts in partitions_by_key.values())
    assert all(seq == sorted(seq) for seq in values_by_key.values())


async def test_ensure_topics_creates_several_and_accepts_duplicates(kafka_bootstrap: str) -> None:
    names = [f"test-ensure-{uuid.uuid4().hex}" for _ in range(3)]
    await ensure_topics(kafka_bootstrap, [*names, names[0]], partitions=2)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        topics = {t["topic"]: t for t in await admin.describe_topics(names)}
    finally:
        await admin.close()
    assert {name: len(topics[name]["partitions"]) for name in names} == dict.fromkeys(names, 2)


def test_status_and_start_are_idempotent(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    kafka = LocalKafka(broker_home(tmp_path_factory), cache_dir=JAR_CACHE)  # a second handle
    info = kafka.status()
    assert info is not None
    assert info.bootstrap == kafka_bootstrap
    assert info.log_file.is_file()
    assert (info.log_dir / "meta.properties").is_file()
    again = kafka.start(timeout=30)
    assert again == info


def test_requested_port_in_use_fails_with_log_path(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        kafka = LocalKafka(tmp_path / "broker", port=port, cache_dir=JAR_CACHE)
        with pytest.raises(KafkaRuntimeError, match=f"port {port} on 127.0.0.1 is in use"):
            kafka.start()
    assert kafka.status() is None


def test_broker_that_dies_at_startup_raises_with_log_tail(tmp_path: Path) -> None:
    home = tmp_path / "broker"
    (home / "data").mkdir(parents=True)  # storage "formatted" for another node id: fatal
    (home / "data" / "meta.properties").write_text(
        "version=1\nnode.id=2\ncluster.id=MCS8OQpiQgSqQknc3z2S6A\n"
        "directory.id=VMcEiDHdhWzAo6MrlODo0A\n"
    )
    kafka = LocalKafka(home, cache_dir=JAR_CACHE)
    with pytest.raises(KafkaRuntimeError) as failure:
        kafka.start(timeout=60)
    message = str(failure.value)
    assert "the broker process exited" in message
    assert f"log: {home / 'server.log'}" in message
    assert "Stored node id 2 doesn't match previous node id 1" in message
    assert failure.value.log_path == home / "server.log"
    assert not (home / "kafka.pid").exists()
    assert kafka.status() is None


@pytest.mark.slow
async def test_stop_then_restart_keeps_port_and_data(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path / "broker", cache_dir=JAR_CACHE)
    first = await asyncio.to_thread(kafka.start)
    try:
        topic = f"test-restart-{uuid.uuid4().hex}"
        await ensure_topics(first.bootstrap, [topic])
        assert await _produce(first.bootstrap, topic, 10) == {0: 10}

        assert await asyncio.to_thread(kafka.stop) is True
        assert kafka.status() is None
        assert not (tmp_path / "broker" / "kafka.pid").exists()
        assert await asyncio.to_thread(kafka.stop) is False

        second = await asyncio.to_thread(kafka.start)
        assert second.port == first.port
        assert second.pid != first.pid
        got = await _consume(second.bootstrap, topic, 10)
        assert sorted(v for _, _, v in got) == sorted(f"v{i}".encode() for i in range(10))
    finally:
        await asyncio.to_thread(kafka.stop)


def test_preferred_port_in_use_falls_back_to_a_free_one(tmp_path: Path) -> None:
    """`vitals up` prefers VITALS_KAFKA_PORT (9092); when something listens there the broker
    takes a free loopback port instead of failing."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        kafka = LocalKafka(tmp_path / "broker", preferred_port=port, cache_dir=JAR_CACHE)
        try:
            info = kafka.start(timeout=120.0)
            assert info.port != port and info.bootstrap == f"127.0.0.1:{info.port}"
            assert kafka.status() == info
        finally:
            kafka.stop()
