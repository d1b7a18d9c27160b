"""A message processed twice (crash after insert, before commit) counts once: the metrics and
jobs rows are keyed by source position and read with FINAL."""

from __future__ import annotations

import time

import orjson

from pipeline.ingest.sink import Message, Sink


async def test_redelivered_messages_count_once(stack_factory):
    stack = await stack_factory()
    s = stack.settings
    now = time.time()
    metrics = [{"v": 1, "type": "metric", "ts": now, "name": "m", "kind": "c", "value": 2,
                "tags": {"a": "1"}},
               {"v": 1, "type": "metric", "ts": now, "name": "h", "kind": "h", "value": 12.5}]
    jobs = [{"v": 1, "type": "node", "ts": now - 60, "cluster": "c", "node_id": "n",
             "state": "up"},
            {"v": 1, "type": "task", "ts": now, "task_id": "t", "state": "queued"}]

    async def no_dlq(*_: object) -> None:
        raise AssertionError("nothing here is invalid")

    for kind, events in (("metrics", metrics), ("jobs", jobs)):
        sink = Sink(kind, s, stack.rt.store, no_dlq, stack.rt.telemetry)
        msgs = [Message(s.topics.topic(kind), 0, 1000 + i, b"k", orjson.dumps(events))
                for i in range(3)]
        await sink.write(msgs)
        await sink.write(msgs[1:])           # redelivery of the last two messages
        await Sink(kind, s, stack.rt.store, no_dlq, stack.rt.telemetry).write(msgs)  # restart
    assert await stack.rows("SELECT name, sum(count), sum(sum) FROM {db}.metrics_1s FINAL "
                            "GROUP BY name ORDER BY name") == [("h", 3.0, 37.5), ("m", 3.0, 6.0)]
    assert await stack.rows("SELECT count() FROM {db}.job_tasks FINAL") == [(3,)]
    assert await stack.rows("SELECT count() FROM {db}.job_nodes FINAL") == [(3,)]
    assert await stack.rows("SELECT count() FROM {db}.metric_series FINAL") == [(2,)]
