"""`run_demo` over a broker outage: the producer's full buffer drops events with one log line a
minute; the demo goes on and sends again once Kafka takes events (never ends `vitals up`)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pipeline.local.demo import run_demo
from pipeline.sdk.producer_errors import BufferFull


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


class FlakySink:
    """Refuses every event while `away` (as the SDK does with its buffer full)."""

    def __init__(self, clock: Clock, away_until: float) -> None:
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
    clock = Clock()
    sink = FlakySink(clock, away_until=clock.t + 30)

    async def sleep(s: float) -> None:
        clock.t += s

    with caplog.at_level(logging.WARNING, "vitals.demo"):
        final = await run_demo(sink, 20.0, 40.0, clock, sleep=sleep, tick_s=0.05)
    lines = [r.getMessage() for r in caplog.records if r.name == "vitals.demo"]
    assert len(lines) == 1 and "dropping them until it does" in lines[0]
    assert final.requests == sink.sent.count("requests")
    assert 150 <= final.requests <= 201  # the last ~10 s at 20 requests/s, none of the outage
