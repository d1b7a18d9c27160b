"""`run_demo` over a broker outage: the producer's full buffer drops events with one log line a
minute; the demo goes on and sends again once Kafka takes events (never ends `vitals up`)."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from pipeline.core.clock import ManualClock
from pipeline.local.demo import run_demo
from pipeline.sdk.producer_errors import BufferFull


class FlakySink:
    """Refuses every event while `away` (as the SDK does with its buffer full)."""

    def __init__(self, clock: ManualClock, away_until: float) -> None:
        self.clock = clock
        self.away_until = away_until
        self.sent: list[str] = []

    async def send(self, kind: str, event: dict[str, Any]) -> None:
        if self.clock.t < self.away_until:
            raise BufferFull(10_000, 1 << 20, 5.0)
        self.sent.append(kind)

    async def flush(self) -> None:
        return None


async def test_demo_drops_while_kafka_is_away_and_resumes(caplog: pytest.LogCaptureFixture):
    clock = ManualClock(1_000_000.0)
    sink = FlakySink(clock, away_until=clock.t + 30)

    async def sleep(s: float) -> None:
        clock.t += s

    with caplog.at_level(logging.WARNING, "vitals.demo"):
        final = await run_demo(sink, 20.0, 40.0, clock, sleep=sleep, tick_s=0.05)
    lines = [r.getMessage() for r in caplog.records if r.name == "vitals.demo"]
    assert len(lines) == 1 and "dropping them until it does" in lines[0]
    assert final.requests == sink.sent.count("requests")
    assert 150 <= final.requests <= 201  # the last ~10 s at 20 requests/s, none of the outage


def test_the_demo_reports_a_training_task_every_two_seconds() -> None:
    from pipeline.core.settings import Settings
    from pipeline.ingest.admission import Admission
    from pipeline.local.demo import TRAIN_TASK, DemoTraffic

    now = [1_800_000_000.0]
    traffic = DemoTraffic(clock=lambda: now[0], rng=random.Random(1))
    first = [e for kind, e in traffic.events(0) if kind == "task-events"]
    assert [(e["type"], e.get("metric"), e.get("variant"), e.get("iter")) for e in first] == [
        ("training_stats_scalar", "loss", "train", 0), ("training_stats_scalar", "loss", "val", 0),
        ("training_stats_scalar", "accuracy", "val", 0), ("log", None, None, None)]
    assert {(e["task"], e["tenant"], e["timestamp"]) for e in first} == {
        (TRAIN_TASK, "default", 1_800_000_000_000)}
    now[0] += 1.9
    assert traffic.training_due() == []
    now[0] += 0.1
    assert [e.get("iter") for e in traffic.training_due()] == [1, 1, 1, None]
    admit = Admission.of(Settings(), "task-events", now[0])
    for event in first:
        admit.check(event)  # as the worker would store it
