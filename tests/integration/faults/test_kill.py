"""kill -9 of the worker process at each fault point; after a restart, every acknowledged event
is stored exactly once and every stat equals ground truth."""

from __future__ import annotations

import signal
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.faults.harness import VitalsProcess, assert_exact, names, publish, workload
from tests.integration.faults.ledger import Ledger


async def committed(bootstrap: str, group: str) -> int:
    """Sum of the consumer group's committed offsets (messages it will not see again)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(max(0, meta.offset) for meta in offsets.values())


@pytest.mark.parametrize("fault", ["before_insert:3", "after_insert:3", "after_commit:3"])
async def test_kill9_at_fault_point_loses_and_duplicates_nothing(kafka_bootstrap, tmp_path,
                                                                 fault):
    _, topics, db, group = names()
    vp = VitalsProcess(tmp_path / "data", bootstrap=kafka_bootstrap, topics=topics,
                       database=db, group=group)
    ledger = Ledger(topics)
    t0, span = int(time.time()) - 400, 300
    try:
        await vp.start(fault=fault)
        requests, heartbeats = workload(600, t0=t0, span_s=span)
        await publish(kafka_bootstrap, topics, ledger, requests, heartbeats)
        assert await vp.wait_exit() == -signal.SIGKILL
        assert f"injected fault {fault} reached" in vp.log_tail()
        done = await committed(kafka_bootstrap, group)
        if fault.startswith("after_commit"):
            assert done > 0
        await vp.start()
        more, _ = workload(150, t0=t0, span_s=span, seed=8, id_prefix="s")
        await publish(kafka_bootstrap, topics, ledger, more, [])
        lines = await assert_exact(vp, ledger, t0=t0, span_s=span)
        # the restarted worker resumed exactly at the committed offsets: everything after them
        # was (re)processed, nothing before them was
        await vp.wait_for(vp.consumed_messages, ledger.messages - done)
        print(f"\n{fault}: {ledger.messages} messages, {done} committed before the kill, "
              f"{ledger.messages - done} processed after restart; " + "; ".join(lines))
    finally:
        await vp.close()
