"""kill -9 of the worker process at each fault point; after a restart, every acknowledged event
is stored exactly once and every stat equals ground truth."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from pipeline.core.settings import Settings
from pipeline.core.telemetry import Telemetry
from pipeline.ingest.worker import create_worker_app
from tests.integration.faults.harness import (
    VitalsProcess,
    assert_exact,
    committed,
    names,
    publish,
    workload,
)
from tests.integration.faults.ledger import Ledger, distinct_stored


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


class StalledStore:
    """A store whose writes never return: a group member stuck on storage, never committing."""

    database = "stalled"

    async def insert(self, table, columns, names) -> None:
        await asyncio.Event().wait()


async def test_kill9_during_rebalance_loses_and_duplicates_nothing(kafka_bootstrap, tmp_path):
    _, topics, db, group = names()
    vp = VitalsProcess(tmp_path / "data", bootstrap=kafka_bootstrap, topics=topics,
                       database=db, group=group)
    ledger = Ledger(topics)
    t0, span = int(time.time()) - 400, 300
    requests, heartbeats = workload(600, t0=t0, span_s=span)
    member = None
    try:
        await vp.start(fault="rebalance:1")
        await publish(kafka_bootstrap, topics, ledger, requests[:300], heartbeats)
        await vp.wait_for(lambda: distinct_stored(vp.sql, db),
                          {"requests": 300, "heartbeats": len(heartbeats)})
        # a second member joins the group: the worker is killed inside the rebalance
        settings = Settings(kafka_bootstrap=kafka_bootstrap, topics=topics, consumer_group=group,
                            data_dir=tmp_path, topic_partitions=2, session_timeout_s=6,
                            batch_max_seconds=0.05)
        member = create_worker_app(settings, StalledStore(), Telemetry())  # type: ignore[arg-type]
        member.finalize()
        await member.start()
        assert await vp.wait_exit() == -signal.SIGKILL
        assert "injected fault rebalance:1 reached" in vp.log_tail()
        # traffic while the worker is dead goes to the stuck member, which commits nothing
        await publish(kafka_bootstrap, topics, ledger, requests[300:], [])
        await member.stop()
        member = None
        await vp.start()
        lines = await assert_exact(vp, ledger, t0=t0, span_s=span)
        print("\nrebalance:1: " + "; ".join(lines))
    finally:
        if member is not None:
            await member.stop()
        await vp.close()
