"""A real 3-broker KRaft cluster on loopback (issue 15, point 6): topics with replication
factor 3 and min.insync.replicas=2; the leader of the busiest partition is killed with SIGKILL
mid-stream and brought back. The SDK producer (acks=all, idempotent) and the worker fail over;
the ledger shows 0 lost, 0 duplicated, every stat exact."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.core.settings import TopicNames
from pipeline.ingest.topic_admin import ensure_topics
from pipeline.ingest.topics import KINDS
from pipeline.local.kafka_cluster import LocalKafkaCluster
from pipeline.sdk.producer import Producer
from tests.integration.faults.harness import InProcess, assert_exact, trickle_through, workload
from tests.integration.faults.ledger import Ledger
from tests.integration.kafka_fixture import JAR_CACHE


async def busiest_leader(bootstrap: str, topic: str) -> tuple[int, int]:
    """(partition, leader broker id) of the partition of `topic` holding most messages."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        (described,) = await admin.describe_topics([topic])
        leaders = {p["partition"]: p["leader"] for p in described["partitions"]}
        assert all(len(p["replicas"]) == 3 for p in described["partitions"]), described
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in leaders])
        partition = max(leaders, key=lambda p: ends[TopicPartition(topic, p)])
        return partition, leaders[partition]
    finally:
        await consumer.stop()
        await admin.close()


async def test_leader_kill_on_three_brokers_loses_and_duplicates_nothing(stack_factory,
                                                                         tmp_path):
    cluster = LocalKafkaCluster(tmp_path / "cluster", size=3, cache_dir=JAR_CACHE,
                                progress=lambda _m: None)
    bootstrap = await asyncio.to_thread(cluster.start)
    try:
        # topics with 3 replicas before the worker starts (it creates missing ones with 1)
        topics = TopicNames(prefix=f"t{uuid.uuid4().hex[:10]}-")
        names = [n for k in KINDS for n in (topics.topic(k), topics.dlq(k))]
        await ensure_topics(bootstrap, names, partitions=3, replication=3, timeout=120)
        stack = await stack_factory(kafka_bootstrap=bootstrap, topics=topics, topic_partitions=3,
                                    session_timeout_s=6)
        s = stack.settings
        ledger = Ledger(s.topics)
        t0, span = int(time.time()) - 400, 300
        requests, heartbeats = workload(1500, t0=t0, span_s=span)
        killed: list[tuple[int, int]] = []

        async def kill_and_restore() -> None:
            partition, leader = await busiest_leader(bootstrap, s.topics.topic("requests"))
            await asyncio.to_thread(cluster.kill, leader)
            killed.append((partition, leader))
            await asyncio.sleep(5)
            await asyncio.to_thread(cluster.start_node, leader)

        async with Producer(bootstrap, s.topics, max_events=10,
                            on_delivery=ledger.on_delivery) as p:
            await trickle_through(p, requests, heartbeats, kill_and_restore)
        assert not ledger.failed, {k: len(v) for k, v in ledger.failed.items()}
        lines = await assert_exact(InProcess(stack), ledger, t0=t0, span_s=span)
        print(f"\nleader kill on 3 brokers (partition {killed[0][0]}'s leader, broker "
              f"{killed[0][1]}, SIGKILL, back after 5 s): {len(requests)} requests + "
              f"{len(heartbeats)} heartbeats sent; " + "; ".join(lines))
        await stack.rt.stop()
    finally:
        await asyncio.to_thread(cluster.stop)
