"""A message whose processing throws is dead-lettered whole with its reason and the partition
keeps moving; a dead-letter burst above VITALS_DLQ_ALERT_RATIO raises the alert (gauge + log)."""

from __future__ import annotations

import dataclasses
import logging
import time

import orjson
import pytest

from pipeline.ingest import topics as topic_registry
from pipeline.ingest.rows.requests import SinkBatch
from pipeline.sdk.producer import Producer
from tests.integration.ingest.test_dead_letters import good, read_dlq
from tests.promtool import check_metrics


def boom_on_marked_events(batch: SinkBatch, partition: int, offset: int, events) -> None:
    """The requests builder with a bug tripped by one event's content (after half the rows)."""
    events = list(events)
    if any(e.get("id") == "boom" for _, e in events):
        SinkBatch.add_requests(batch, partition, offset, events[:1])
        raise RuntimeError("builder bug tripped by event 'boom'")
    SinkBatch.add_requests(batch, partition, offset, events)


def boom_on_marked_structs(batch: SinkBatch, partition: int, offset: int, events,
                           ts_ms) -> None:
    """The same bug in the columnar builder (`TopicKind.build_structs`)."""
    if any(e.id == "boom" for e in events):
        SinkBatch.add_request_structs(batch, partition, offset, events[:1], ts_ms[:1])
        raise RuntimeError("builder bug tripped by event 'boom'")
    SinkBatch.add_request_structs(batch, partition, offset, events, ts_ms)


@pytest.mark.parametrize("path", ["dicts", "columnar"])
async def test_processing_error_dead_letters_the_message_and_moves_on(stack_factory,
                                                                      monkeypatch, path):
    bugged = (dict(build=boom_on_marked_events, build_structs=None) if path == "dicts"
              else dict(build_structs=boom_on_marked_structs))
    monkeypatch.setitem(topic_registry.KINDS, "requests", dataclasses.replace(
        topic_registry.KINDS["requests"], **bugged))
    stack = await stack_factory()
    s = stack.settings
    now = time.time()
    async with Producer(s.kafka_bootstrap, s.topics, validate=False) as p:
        await p.send_raw(s.topics.requests, orjson.dumps([good(0, now), good(1, now)]), b"5")
        await p.send_raw(s.topics.requests,
                         orjson.dumps([good(2, now), {**good(3, now), "id": "boom"}]), b"5")
        await p.send_raw(s.topics.requests, orjson.dumps([good(4, now)]), b"5")
    await stack.wait_for(lambda: stack.rows("SELECT src_offset, src_index FROM {db}.requests_raw "
                                            "FINAL ORDER BY ALL"), [(0, 0), (0, 1), (2, 0)])
    [dead] = await read_dlq(s.kafka_bootstrap, s.topics.dlq("requests"), 1)
    assert (dead["topic"], dead["partition"], dead["offset"], dead["index"]) == (
        s.topics.requests, 0, 1, None)
    assert dead["reason"] == "processing failed: RuntimeError: builder bug tripped by event 'boom'"
    assert orjson.loads(dead["payload"])[1]["id"] == "boom"
    # the half-built rows of the poisoned message were rolled back, in every table
    await stack.wait_requests(3)  # the views write after the raw rows of the same insert
    assert await stack.rows("SELECT sum(requests) FROM {db}.requests_1s FINAL") == [(3,)]
    metrics = (await stack.http.get("/metrics")).text
    check_metrics(metrics)
    assert f'vitals_processing_errors_total{{topic="{s.topics.requests}"}} 1' in metrics


async def test_dlq_burst_above_ratio_raises_alert(stack_factory, caplog):
    stack = await stack_factory(dlq_alert_ratio=0.25, dlq_alert_min_events=10)
    s = stack.settings
    now = time.time()
    metrics = (await stack.http.get("/metrics")).text
    check_metrics(metrics)
    assert f'vitals_dlq_alert{{topic="{s.topics.requests}"}} 0' in metrics
    caplog.set_level(logging.WARNING, logger="vitals.sink")
    async with Producer(s.kafka_bootstrap, s.topics, validate=False) as p:
        await p.send_raw(s.topics.requests, orjson.dumps([good(i, now) for i in range(20)]), b"5")
        for _ in range(10):  # a producer gone wrong: 10 unreadable messages
            await p.send_raw(s.topics.requests, b'{"v": 1, "type": "request", "ts": ', b"5")
    await stack.wait_for(lambda: stack.rows("SELECT count() FROM {db}.dead_letters FINAL"),
                         [(10,)])

    async def alert() -> str:
        text = (await stack.http.get("/metrics")).text
        return next(line for line in text.splitlines()
                    if line.startswith(f'vitals_dlq_alert{{topic="{s.topics.requests}"}}'))

    await stack.wait_for(alert, f'vitals_dlq_alert{{topic="{s.topics.requests}"}} 1')
    metrics = (await stack.http.get("/metrics")).text
    check_metrics(metrics)
    # 10 dead of 30 events seen
    assert f'vitals_dlq_ratio{{topic="{s.topics.requests}"}} 0.333333' in metrics
    warnings = [r.getMessage() for r in caplog.records if "DLQ alert on" in r.getMessage()]
    assert warnings and warnings[-1].startswith(
        f"DLQ alert on {s.topics.requests}: 10 of 30 events (33.3%) dead-lettered in the last "
        f"60 s, above the 25.0% limit")
