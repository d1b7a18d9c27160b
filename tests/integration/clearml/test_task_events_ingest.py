"""HTTP ingest through Kafka, get_task_events with signed scroll ids, idempotency, tenancy."""

from __future__ import annotations

import base64

import orjson

from pipeline.ingest.rows.requests import SinkBatch
from pipeline.ingest.rows.task_events import add_task_events, metric_event_id
from pipeline.sdk.producer import Producer
from tests.integration.clearml.task_events_helpers import (
    BASE_MS,
    add_batch,
    call,
    data,
    log,
    scalar,
    wait_count,
)
from tests.integration.ingest.test_dead_letters import read_dlq


async def test_add_batch_scroll_and_replay(stack_factory):
    stack = await stack_factory()
    key = await stack.key("acme", "admin")
    events = [scalar("t1", i, float(i)) for i in range(6)] + \
             [log("t1", i, f"line {i}", ts=BASE_MS + i * 1000 + 500) for i in range(4)]
    bad = [{"type": "training_stats_scalar", "task": "t1", "value": "x"},
           b"{not json", {"type": "log", "task": "t1", "level": "loud"}]
    status, doc = await add_batch(stack, key, events[:5] + bad + events[5:])
    assert status == 200, doc
    assert doc["data"] == {"added": 10, "errors": 3, "errors_info": {
        "6": "value: expected number, got string",
        "7": doc["data"]["errors_info"]["7"],
        "8": "level: 'loud' is not one of 'notset', 'debug', 'verbose', 'info', 'warn', "
             "'warning', 'error', 'fatal', 'critical'"}}
    assert doc["data"]["errors_info"]["7"].startswith("invalid JSON")
    await wait_count(stack, "task_metric_events", 6)
    await wait_count(stack, "task_log_events", 4)
    # stamped with the key's tenant
    rows = await stack.rows("SELECT DISTINCT tenant FROM {db}.task_metric_events")
    assert rows == [("acme",)]

    # page through in asc order, 3 at a time, inserting newer events between pages
    got: list[tuple[str, int]] = []
    first = await data(stack, key, "get_task_events", {"task": "t1", "batch_size": 3})
    assert first["returned"] == 3 and first["total"] == 10
    got += [(e["type"], e["timestamp"]) for e in first["events"]]
    assert first["events"][0] == {"type": "training_stats_scalar", "task": "t1",
                                  "timestamp": BASE_MS, "@timestamp": first["events"][0]
                                  ["@timestamp"], "iter": 0, "metric": "loss",
                                  "variant": "total", "value": 0.0,
                                  "id": metric_event_id("training_stats_scalar", 0, "loss",
                                                        "total", "")}
    assert first["events"][1]["type"] == "log" and first["events"][1]["msg"] == "line 0"
    extra = [scalar("t1", 100 + i, 1.0, ts=BASE_MS + 50_000 + i) for i in range(3)]
    status, _ = await add_batch(stack, key, extra)
    assert status == 200
    await wait_count(stack, "task_metric_events", 9)
    scroll = first["scroll_id"]
    while True:
        page = await data(stack, key, "get_task_events",
                          {"task": "t1", "batch_size": 3, "scroll_id": scroll})
        scroll = page["scroll_id"]
        if not page["events"]:
            break
        got += [(e["type"], e["timestamp"]) for e in page["events"]]
    expected = sorted([("training_stats_scalar", BASE_MS + i * 1000) for i in range(6)]
                      + [("log", BASE_MS + i * 1000 + 500) for i in range(4)]
                      + [("training_stats_scalar", BASE_MS + 50_000 + i) for i in range(3)],
                      key=lambda x: x[1])
    assert got == expected
    # exhausted: still empty
    again = await data(stack, key, "get_task_events", {"task": "t1", "scroll_id": scroll})
    # total is counted when the scroll starts
    assert again["events"] == [] and again["returned"] == 0 and again["total"] == 10
    fresh = await data(stack, key, "get_task_events", {"task": "t1", "batch_size": 1})
    assert fresh["total"] == 13

    # desc order with an event_type filter
    desc = await data(stack, key, "get_task_events",
                      {"task": "t1", "order": "desc", "event_type": "log", "batch_size": 10})
    assert [e["msg"] for e in desc["events"]] == ["line 3", "line 2", "line 1", "line 0"]

    # replaying the same scalar events (same identity) replaces instead of duplicating; a new
    # value at the same identity wins. Logs sent again are new lines.
    async with Producer(stack.settings.kafka_bootstrap, stack.settings.topics) as p:
        for e in events[:6]:
            await p.send("task-events", {**e, "tenant": "acme"})
        await p.send("task-events", {**scalar("t1", 0, 42.0), "tenant": "acme"})
        await p.send("task-events", {**log("t1", 9, "again"), "tenant": "acme"})
    await wait_count(stack, "task_log_events", 5)
    await wait_count(stack, "task_metric_events", 9)
    page = await data(stack, key, "get_task_events",
                      {"task": "t1", "event_type": "training_stats_scalar", "batch_size": 1})
    assert page["events"][0]["value"] == 42.0 and page["total"] == 9


async def test_scroll_id_errors_and_bad_bodies(stack_factory):
    stack = await stack_factory()
    key = await stack.key("acme", "admin")
    other = await stack.key("rival", "admin")
    status, _ = await add_batch(stack, key, [scalar("t1", i, 1.0) for i in range(3)]
                                + [scalar("t2", 0, 1.0)])
    assert status == 200
    status, _ = await add_batch(stack, other, [scalar("r1", 0, 1.0)])
    assert status == 200
    await wait_count(stack, "task_metric_events", 5)
    page = await data(stack, key, "get_task_events", {"task": "t1", "batch_size": 1})
    sid = page["scroll_id"]
    body, mac = sid.split(".")
    state = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged = base64.urlsafe_b64encode(
        orjson.dumps({**state, "ts": 0}, option=orjson.OPT_SORT_KEYS)).rstrip(b"=").decode()
    for bad, reason in ((f"{forged}.{mac}", "tampered"), ("garbage", "malformed"),
                        (sid[:-2] + "AA", "tampered")):
        status, doc = await call(stack, key, "get_task_events", {"task": "t1", "scroll_id": bad})
        assert status == 400, doc
        assert doc["error"] == "INVALID_SCROLL_ID"
        assert doc["details"] == {"parameter": "scroll_id", "reason": reason}
        assert doc["meta"]["result_code"] == 400
    # a valid scroll id of another task is foreign
    status, doc = await call(stack, key, "get_task_events", {"task": "t2", "scroll_id": sid})
    assert (status, doc["error"], doc["details"]["reason"]) == (400, "INVALID_SCROLL_ID",
                                                                "foreign")
    # or of the same task with another order
    status, doc = await call(stack, key, "get_task_events",
                             {"task": "t1", "scroll_id": sid, "order": "desc"})
    assert (status, doc["details"]["reason"]) == (400, "foreign")
    # tenancy: the rival's key neither reads nor deletes acme's task; unknown task is 404
    status, doc = await call(stack, other, "get_task_events", {"task": "t1"})
    assert (status, doc["error"]) == (403, "INSUFFICIENT_PERMISSIONS")
    status, doc = await call(stack, other, "delete_for_task", {"task": "t1"})
    assert (status, doc["error"]) == (403, "INSUFFICIENT_PERMISSIONS")
    status, doc = await call(stack, key, "get_task_events", {"task": "nope"})
    assert (status, doc["error"]) == (404, "NOT_FOUND")
    # bad parameters name the parameter and the allowed values
    status, doc = await call(stack, key, "get_task_events", {"task": "t1", "order": "up"})
    assert status == 400 and doc["details"] == {"parameter": "order", "value": "up",
                                                "allowedValues": ["asc", "desc"]}
    status, doc = await call(stack, key, "get_task_events", {"task": "t1", "batch_size": 0})
    assert status == 400 and doc["details"]["parameter"] == "batch_size"
    status, doc = await call(stack, key, "get_task_events", {})
    assert status == 400 and doc["details"]["parameter"] == "task"
    # bad bodies for ingest
    status, doc = await add_batch(stack, key, [])
    assert (status, doc["error"]) == (400, "INVALID_PARAMETERS")
    status, doc = await add_batch(stack, key, [{"type": "nope", "task": "t1"}])
    assert (status, doc["error"]) == (400, "EVENTS_NOT_ADDED")
    assert doc["details"]["errors_info"]["1"].startswith("type: 'nope' is not an event type")
    r = await stack.http.post("/events.add", content=b"[1]",
                              headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 400 and r.json()["details"]["parameter"] == "body"
    status, doc = await call(stack, key, "add", {"type": "plot", "task": "t1",
                                                 "plot_str": "{bad"})
    assert status == 400 and doc["details"]["parameter"] == "plot_str"
    status, doc = await call(stack, key, "add", {"type": "plot", "task": "t1",
                                                 "plot_str": "{bad", "skip_validation": True})
    assert (status, doc["data"]) == (200, {"added": 1, "errors": 0, "errors_info": {}})
    reader = await stack.key("acme", "reader")
    status, doc = await call(stack, reader, "add", {"type": "log", "task": "t1"})
    assert (status, doc["error"]) == (403, "INSUFFICIENT_PERMISSIONS")
    status, doc = await call(stack, reader, "get_task_events",
                             {"task": "t1", "event_type": "training_stats_scalar"}, version="2.1")
    assert status == 200 and doc["data"]["total"] == 3
    assert doc["meta"]["endpoint"] == {"name": "events.get_task_events",
                                       "requested_version": "2.1", "actual_version": "2.1"}


async def test_invalid_kafka_events_dead_lettered_and_redelivery_collapses(stack_factory):
    stack = await stack_factory()
    s = stack.settings
    good = {"type": "log", "task": "k1", "tenant": "acme", "msg": "ok", "timestamp": BASE_MS}
    async with Producer(s.kafka_bootstrap, s.topics, validate=False) as p:
        await p.send_raw(s.topics.topic("task-events"), orjson.dumps([
            good, {"type": "training_stats_scalar", "task": "k1", "value": "NaN"},
            {"type": "plot", "task": "k1", "plot_str": "{"}]), b"k1")
    await wait_count(stack, "task_log_events", 1)
    dlq = await read_dlq(s.kafka_bootstrap, s.topics.dlq("task-events"), 2)
    assert sorted((d["index"], d["reason"].split(":")[0]) for d in dlq) == [
        (1, "value"), (2, "plot_str")]
    # a redelivered message (same source position) yields the very same rows: seen once
    batch = SinkBatch()
    add_task_events(batch, 0, 99, [(0, {**good, "level": "info", "worker": ""}),
                                   (1, {**good, "level": "info", "worker": "", "msg": "two"})])
    for _ in range(2):
        for table, names, columns in batch.tables():
            await stack.rt.store.insert(table, columns, names)
    await wait_count(stack, "task_log_events", 3)


READS = {
    "get_task_events": {"task": "t1"}, "get_task_log": {"task": "t1"},
    "download_task_log": {"task": "t1"}, "get_task_metrics": {"tasks": ["t1"]},
    "get_scalar_metrics_and_variants": {"task": "t1"},
    "get_scalar_metric_data": {"task": "t1", "metric": "loss"},
    "get_task_latest_scalar_values": {"task": "t1"},
    "get_vector_metrics_and_variants": {"task": "t1"},
    "vector_metrics_iter_histogram": {"task": "t1", "metric": "m", "variant": "v"},
    "scalar_metrics_iter_histogram": {"task": "t1"},
    "multi_task_scalar_metrics_iter_histogram": {"tasks": ["t1"]},
    "get_task_plots": {"task": "t1"}, "get_multi_task_plots": {"tasks": ["t1"]},
    "debug_images": {"task": "t1"},
    "get_debug_image_sample": {"task": "t1", "metric": "m", "variant": "v"},
    "delete_for_task": {"task": "t1"},
}


async def test_every_action_is_tenant_scoped(stack_factory):
    stack = await stack_factory()
    key = await stack.key("acme", "admin")
    rival = await stack.key("rival", "admin")
    status, _ = await add_batch(stack, key, [scalar("t1", 0, 1.0)])
    assert status == 200
    await wait_count(stack, "task_metric_events", 1)
    for action, body in READS.items():
        status, doc = await call(stack, rival, action, body)
        assert (status, doc["error"]) == (403, "INSUFFICIENT_PERMISSIONS"), action
        status, doc = await call(stack, rival, action, {**body, "task": "zz", "tasks": ["zz"]})
        assert (status, doc["error"]) == (404, "NOT_FOUND"), action
        r = await stack.http.post(f"/events.{action}", json=body)
        assert r.status_code == 401, action
    status, doc = await call(stack, key, "debug_images", {"metrics": [{"task": "t1"}]})
    assert status == 200 and doc["data"]["metrics"] == []
    status, doc = await call(stack, rival, "debug_images", {"metrics": [{"task": "t1"}]})
    assert status == 403
