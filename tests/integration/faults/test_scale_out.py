"""Three workers in one consumer group over 6-partition topics: the same exact totals as one
worker (ground truth), and stopping one mid-stream rebalances without loss or double count.

The three group members run in this process on one embedded ClickHouse (the engine allows one
process; with a ClickHouse server they are separate `vitals worker` processes, see
docs/operations.md). Each member is a full faust app from `create_worker_app`, with its own
Kafka consumer, so the group, the assignment and the rebalances are the real ones.
"""

from __future__ import annotations

import asyncio
import time

from pipeline.core.telemetry import Telemetry
from pipeline.ingest.worker import create_worker_app
from tests.integration.faults.harness import InProcess, assert_exact, publish, workload
from tests.integration.faults.ledger import Ledger

ENDPOINTS = tuple(range(1, 13))  # keys spread over all 6 partitions


def assigned(app) -> set:
    return {tp for tp in app.consumer.assignment() if tp.topic.endswith(("requests",
                                                                          "heartbeats"))}


async def test_three_workers_one_group_exact_and_survive_a_member_stopping(stack_factory):
    stack = await stack_factory(topic_partitions=6, batch_max_messages=4)
    s = stack.settings
    members = [stack.rt.worker_app]
    meters = [stack.rt.telemetry]
    for _ in range(2):
        meters.append(Telemetry())
        app = create_worker_app(s, stack.rt.store, meters[-1])
        app.finalize()
        await app.start()
        members.append(app)
    try:
        deadline = time.monotonic() + 90
        while not all(assigned(m) for m in members) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        owned = [assigned(m) for m in members]
        assert all(owned), f"every member owns partitions: {owned}"
        assert sum(len(o) for o in owned) == 12 and not set.intersection(*owned)

        ledger = Ledger(s.topics)
        t0, span = int(time.time()) - 400, 300
        requests, heartbeats = workload(900, t0=t0, span_s=span, endpoints=ENDPOINTS)
        await publish(s.kafka_bootstrap, s.topics, ledger, requests[:450], heartbeats)
        # stop one member mid-stream (once it has processed some of its share): its
        # partitions move to the other two
        while meters[2].value("vitals_messages_consumed_total", topic=s.topics.requests) == 0:
            assert time.monotonic() < deadline + 120, "member 3 never processed a message"
            await asyncio.sleep(0.05)
        await members[2].stop()
        await publish(s.kafka_bootstrap, s.topics, ledger, requests[450:], [])
        lines = await assert_exact(InProcess(stack), ledger, t0=t0, span_s=span,
                                   endpoints=ENDPOINTS)
        done = [m.value("vitals_messages_consumed_total", topic=s.topics.requests)
                for m in meters]
        assert all(d > 0 for d in done), f"every member processed messages: {done}"
        print("\nscale-out: " + "; ".join(lines) + f"; messages per member {done}")
    finally:
        for app in members[1:]:
            await app.stop()
