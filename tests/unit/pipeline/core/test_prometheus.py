"""The one Prometheus writer: the pipeline's own metrics (`Telemetry.render`) go through it,
so non-finite values read `+Inf`/`-Inf`/`NaN` and the text passes the real promtool."""

from __future__ import annotations

import math

from pipeline.core.prometheus import Exposition, number
from pipeline.core.telemetry import Telemetry
from tests.promtool import check_metrics


def test_numbers() -> None:
    assert [number(v) for v in (3.0, 0.25, math.inf, -math.inf, math.nan, 1e15)] == [
        "3", "0.25", "+Inf", "-Inf", "NaN", "1000000000000000.0"]


def test_telemetry_renders_through_the_writer_and_passes_promtool() -> None:
    t = Telemetry()
    t.inc("vitals_events_consumed_total", 3, topic="requests")
    t.set("vitals_consumer_lag", math.inf, topic="requests", partition="0")
    t.set("vitals_consumer_lag", math.nan, topic="requests", partition="1")
    t.observe("vitals_insert_seconds", 0.02, topic="requests")
    text = t.render()
    assert 'vitals_consumer_lag{partition="0",topic="requests"} +Inf' in text
    assert 'vitals_consumer_lag{partition="1",topic="requests"} NaN' in text
    assert "inf\n" not in text and "nan\n" not in text
    check_metrics(text)


def test_a_family_is_written_once() -> None:
    ex = Exposition()
    ex.family("x_total", "counter", "x", [({}, 1.0)])
    try:
        ex.family("x_total", "counter", "x", [({}, 2.0)])
    except ValueError:
        return
    raise AssertionError("a second family of one name was written")
