"""Readiness without a broker: stall detection, the /readyz document, the rate-limited log,
the monitor's storage and broker probes against fakes and a closed port."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from pipeline.cli.readiness import ReadinessMonitor, StallWatch, probe_broker, readiness_document
from pipeline.core.clock import ManualClock
from pipeline.core.health import Health
from pipeline.core.log_limit import RateLimitedLog, RateLimitFilter, Throttle
from pipeline.core.telemetry import Telemetry


def test_stall_watch_needs_lag_without_committed_progress_for_the_whole_period():
    w = StallWatch(after_s=30)
    assert w.observe(0, {"a": (5, 100), "b": (0, 7)}) == {}
    assert w.observe(29, {"a": (5, 100), "b": (0, 7)}) == {}
    assert w.observe(30, {"a": (9, 100), "b": (0, 7)}) == {"a": 30}
    assert w.observe(31, {"a": (9, 101), "b": (0, 7)}) == {}  # committed moved: progress
    assert w.observe(60, {"a": (9, 101), "b": (0, 7)}) == {}
    assert w.observe(61, {"a": (9, 101), "b": (0, 7)}) == {"a": 30}
    assert w.observe(500, {"a": (0, 101), "b": (0, 7)}) == {}  # nothing to do: never stalled
    assert w.observe(501, {"b": (3, 7)}) == {} and "a" not in w._since


def test_readiness_document_lists_each_check_and_is_ready_only_when_all_are():
    clock = ManualClock(1000.0)
    h = Health(clock)
    assert readiness_document(h.snapshot(), {}) == (False, {"status": "not ready", "checks": {}})
    h.report("storage", "ok")
    h.report("broker", "ok")
    h.report("agent:requests", "consuming")
    ready, body = readiness_document(h.snapshot(), {"requests": 12})
    assert ready and body["status"] == "ready"
    assert body["checks"]["agent:requests"] == {"state": "consuming", "since": 1000.0, "lag": 12}
    h.report("agent:requests", "joining", "consumer group rebalancing")
    ready, body = readiness_document(h.snapshot(), {})
    assert not ready and body["checks"]["agent:requests"]["reason"] == "consumer group rebalancing"


def test_throttle_says_once_then_once_a_period_with_the_count_held_back():
    clock = ManualClock(1000.0)
    t = Throttle(60, clock)
    assert t.allow("k") == 0
    assert [t.allow("k") for _ in range(5)] == [None] * 5
    clock.t += 60
    assert t.allow("k") == 5
    t.clear("k")
    assert t.allow("k") == 0


def test_rate_limited_log_and_filter(caplog: pytest.LogCaptureFixture):
    clock = ManualClock(1000.0)
    logger = logging.getLogger("test.ratelimit")
    rl = RateLimitedLog(logger, 60, clock)
    with caplog.at_level(logging.WARNING, "test.ratelimit"):
        for _ in range(100):
            rl.warning("broker", "broker down for %d s", 3)
        clock.t += 61
        rl.warning("broker", "broker down for %d s", 64)
    assert [r.getMessage() for r in caplog.records] == [
        "broker down for 3 s", "broker down for 64 s (99 similar messages held back)"]
    caplog.clear()
    f = RateLimitFilter(("test",), 60, clock)
    caplog.handler.addFilter(f)
    try:
        with caplog.at_level(logging.ERROR):
            for i in range(1000):
                logging.getLogger(f"test.spam{i % 3}").error("Unable connect to node %s", i)
                logging.getLogger("other").error("kept %s", i)
            clock.t += 60
            logging.getLogger("test.spam").error("Unable connect to node %s", 1)
        spam = [r.getMessage() for r in caplog.records if r.name.startswith("test")]
        assert spam == ["Unable connect to node 0",
                        "Unable connect to node 1 (999 more test messages in the last period "
                        "dropped)"]
        assert sum(r.name == "other" for r in caplog.records) == 1000
        # one decision per record: a second handler's filter does not decide again
        rec = logging.LogRecord("test.x", logging.ERROR, __file__, 1, "again %s", (1,), None)
        assert not f.filter(rec)  # held back (one passed this period)
        assert not RateLimitFilter(("test",), 60, clock).filter(rec)
    finally:
        caplog.handler.removeFilter(f)


async def test_probe_broker_reports_a_closed_port_and_a_silent_one():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    why = await probe_broker(f"127.0.0.1:{port}", 1.0)
    assert why is not None and str(port) in why
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        why = await probe_broker(f"127.0.0.1:{silent.getsockname()[1]}", 0.3)
        assert why is not None and "no answer" in why


async def test_monitor_marks_storage_down_and_back():
    clock = ManualClock(1000.0)
    h = Health(clock)
    fail = True

    async def storage() -> None:
        if fail:
            raise ConnectionError("refused")

    telemetry = Telemetry()
    m = ReadinessMonitor(h, storage=storage, bootstrap=None, clock=clock, telemetry=telemetry)
    await m.check_once()
    check = h.get("storage")
    assert check is not None and check.state == "down" and "refused" in (check.reason or "")
    assert telemetry.value("vitals_ready", check="storage") == 0
    fail = False
    clock.t += 5
    await m.check_once()
    check = h.get("storage")
    assert check is not None and check.state == "ok" and check.since == clock.t
    assert telemetry.value("vitals_ready", check="storage") == 1

    async def hangs() -> None:
        await asyncio.sleep(10)

    m = ReadinessMonitor(h, storage=hangs, bootstrap=None, probe_timeout_s=0.05, clock=clock)
    await m.check_once()
    check = h.get("storage")
    assert check is not None and check.state == "down" and "no answer" in (check.reason or "")
