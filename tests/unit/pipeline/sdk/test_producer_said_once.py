"""Said once: the SDK's log filter, with an injected clock (no broker, no network)."""

from __future__ import annotations

import logging

import pytest

from pipeline.core.clock import ManualClock
from pipeline.sdk.producer_kafka import SDK_LOGGERS, SaidOnce


def _record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_one_record_per_cause_per_minute_and_the_next_says_how_many_were_held_back() -> None:
    clock = ManualClock(1000.0)
    said = SaidOnce(60.0, clock)
    # the 1,168 copies of one line, for three topics: one cause
    passed = [said.filter(_record("aiokafka.cluster", "Topic %s not found in cluster metadata",
                                  f"t{i % 3}")) for i in range(1168)]
    assert passed.count(True) == 1 and passed[0]
    clock.t += 59.999
    assert not said.filter(_record("aiokafka.cluster", "Topic %s not found in cluster metadata",
                                   "t0"))
    clock.t += 0.001
    again = _record("aiokafka.cluster", "Topic %s not found in cluster metadata", "t9")
    assert said.filter(again)
    assert again.getMessage() == ("Topic t9 not found in cluster metadata "
                                  "[1168 more like this held back]")


def test_logger_level_and_template_each_make_a_cause() -> None:
    said = SaidOnce(60.0, ManualClock(1000.0))
    assert said.filter(_record("aiokafka", "Unable connect to node with id %s: %s", 1, "refused"))
    assert not said.filter(_record("aiokafka", "Unable connect to node with id %s: %s", 2, "x"))
    assert said.filter(_record("aiokafka", "Unable to update metadata from %s", [1]))
    assert said.filter(_record("aiokafka", "Unable to update metadata from %s", [1],
                               level=logging.WARNING))
    assert said.filter(_record("vitals.producer", "Unable to update metadata from %s", [1]))
    assert said.filter(_record("vitals.producer", "delivery timed out: %s", "20 events ..."))
    assert said.filter(_record("vitals.producer", "delivery failed: %s", "1 event ..."))
    assert not said.filter(_record("vitals.producer", "delivery timed out: %s", "7 events ..."))


def test_reset_forgets_and_install_is_idempotent() -> None:
    said = SaidOnce(60.0, ManualClock(1000.0))
    assert said.filter(_record("aiokafka", "x"))
    assert not said.filter(_record("aiokafka", "x"))
    said.reset()
    assert said.filter(_record("aiokafka", "x"))
    names = ("vitals.test_said_once.a", "vitals.test_said_once.b")
    said.install(names)
    said.install(names)
    assert [logging.getLogger(n).filters.count(said) for n in names] == [1, 1]
    for n in names:
        logging.getLogger(n).removeFilter(said)


def test_the_sdk_filters_its_own_logger_and_every_aiokafka_producer_logger() -> None:
    assert "vitals.producer" in SDK_LOGGERS
    assert {"aiokafka", "aiokafka.cluster", "aiokafka.conn", "aiokafka.producer.sender"} <= set(
        SDK_LOGGERS)


@pytest.mark.parametrize("n", [1, 2, 1000])
def test_a_passing_record_never_loses_its_arguments(n: int) -> None:
    clock = ManualClock(1000.0)
    said = SaidOnce(1.0, clock)
    for _ in range(n):
        said.filter(_record("aiokafka", "Got error produce response: %s", "NodeNotReadyError"))
    clock.t += 1.0
    record = _record("aiokafka", "Got error produce response: %s", "RequestTimedOutError")
    assert said.filter(record)
    held = f" [{n - 1} more like this held back]" if n > 1 else ""
    assert record.getMessage() == f"Got error produce response: RequestTimedOutError{held}"
