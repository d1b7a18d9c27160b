"""Third-party chatter that says nothing to an operator is logged at DEBUG: mode's "Timer ...
is overlapping" and faust's slow-processing walls ("Has not committed ..."), produced here by
their own code (mode's Timer under a fake clock, faust's consumer-thread message builder and
mode's CompositeLogger). Records of the same loggers that matter still pass at their level."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.timers import Timer
from mode.utils.logging import CompositeLogger

from pipeline.core.log_limit import THIRD_PARTY_NOISE, DemoteFilter


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[Capture]:
    """A root handler as `vitals` installs one (level NOTSET, root at WARNING), with the
    demotion installed as the worker installs it."""
    root = logging.getLogger()
    handler, level = Capture(), root.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    DemoteFilter.install()
    DemoteFilter.install()  # idempotent: one filter per logger
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def overlapping_timer() -> None:
    """mode's Timer, whose callback ran 2.5 s of a 1 s interval: it logs the overlap warning."""
    now = [100.0]
    timer = Timer(1.0, name="Consumer._commit_livelock_detector", clock=lambda: now[0])
    timer.tick()
    now[0] += 1.0
    timer.on_before_yield()
    now[0] += 2.5
    timer.tick()
    assert timer.overlaps == 1


def has_not_committed(logger: CompositeLogger) -> None:
    """What faust's consumer thread logs per partition after an outage (its own builder)."""
    text = faust_aiokafka.AIOKafkaConsumerThread._make_slow_processing_error(
        None,  # type: ignore[arg-type]  # the builder reads nothing of the thread
        faust_aiokafka.SLOW_PROCESSING_NO_RECENT_COMMIT,
        [faust_aiokafka.SLOW_PROCESSING_CAUSE_COMMIT],
        "broker_commit_livelock_soft_timeout", 300.0)
    logger.error(text, "TP(topic='requests', partition=0)", "2 minutes ago")


def faust_logger() -> CompositeLogger:
    def label(_severity: int, message: str, *_args: object, **_kw: object) -> str:
        return f"[^---AIOKafkaConsumerThread]: {message}"  # as faust's Service labels it

    return CompositeLogger(logging.getLogger(faust_aiokafka.__name__), formatter=label)


def test_the_noise_is_logged_at_debug_only(captured: Capture) -> None:
    assert {n for n, _ in THIRD_PARTY_NOISE} == {"mode.timers", faust_aiokafka.__name__}
    overlapping_timer()
    has_not_committed(faust_logger())
    assert captured.records == []
    # with DEBUG enabled on those loggers, the same records come through, as DEBUG
    for name in ("mode.timers", faust_aiokafka.__name__):
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        overlapping_timer()
        has_not_committed(faust_logger())
    finally:
        for name in ("mode.timers", faust_aiokafka.__name__):
            logging.getLogger(name).setLevel(logging.NOTSET)
    overlap, commit = [r for r in captured.records
                       if "overlapping" in r.getMessage() or "committed" in r.getMessage()]
    assert (overlap.name, overlap.levelname) == ("mode.timers", "DEBUG")
    assert overlap.getMessage().startswith(
        "Timer Consumer._commit_livelock_detector is overlapping (interval=1.0 runtime=2.5")
    assert (commit.name, commit.levelname) == (faust_aiokafka.__name__, "DEBUG")
    assert commit.getMessage().startswith(
        "[^---AIOKafkaConsumerThread]: Has not committed \"TP(topic='requests', partition=0)\" "
        "(last commit 2 minutes ago).")


def test_other_records_of_those_loggers_keep_their_level(captured: Capture) -> None:
    faust_logger().error("Cannot get highwater for %r", "requests")
    logging.getLogger("mode.timers").warning("something else")
    assert [(r.name, r.levelname, r.getMessage()) for r in captured.records] == [
        (faust_aiokafka.__name__, "ERROR",
         "[^---AIOKafkaConsumerThread]: Cannot get highwater for 'requests'"),
        ("mode.timers", "WARNING", "something else")]
