"""HTTP ingest and `vitals publish` tell the truth about what the pipeline keeps.

- A ClearML run months old, imported with `events.add_batch`, is stored and read back whole
  (task events keep their history by default), and importing it again adds nothing twice.
- Events past their family's retention are refused at the door with the worker's reason, in the
  HTTP answer and in `vitals publish`'s output, and never reach the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

from pipeline.storage.retention import DAY_MS, Retention
from tests.integration.clearml.task_events_helpers import add_batch, call, count, wait_count

NOW_MS = int(time.time()) * 1000
OLD_MS = NOW_MS - 72 * DAY_MS  # a training run from 72 days ago


def run_events(task: str, start_ms: int, n_iters: int) -> list[dict[str, Any]]:
    """A ClearML-shaped training run: 3 scalars per iteration and a log line every 10."""
    events: list[dict[str, Any]] = []
    for i in range(n_iters):
        ts = start_ms + i * 1000
        for variant, value in (("train", 1.0 / (i + 1)), ("val", 2.0 / (i + 1))):
            events.append({"type": "training_stats_scalar", "task": task, "iter": i,
                           "metric": "loss", "variant": variant, "value": value,
                           "timestamp": ts, "worker": "gpu-1"})
        events.append({"type": "training_stats_scalar", "task": task, "iter": i,
                       "metric": "lr", "variant": "lr", "value": 0.001, "timestamp": ts,
                       "worker": "gpu-1"})
        if i % 10 == 0:
            events.append({"type": "log", "task": task, "level": "info", "worker": "gpu-1",
                           "msg": f"epoch {i // 10} done", "timestamp": ts + 500})
    return events


async def read_all(stack: Any, key: str, task: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    scroll = None
    while True:
        body: dict[str, Any] = {"task": task, "batch_size": 1000}
        if scroll:
            body["scroll_id"] = scroll
        status, doc = await call(stack, key, "get_task_events", body)
        assert status == 200, doc
        page = doc["data"]
        scroll = page["scroll_id"]
        if not page["events"]:
            return got
        got += page["events"]


def comparable(e: dict[str, Any]) -> tuple[Any, ...]:
    if e["type"] == "log":
        return ("log", e["task"], e["timestamp"], e["level"], e["worker"], e["msg"])
    return (e["type"], e["task"], e["timestamp"], e["iter"], e["metric"], e["variant"],
            e["value"], e["worker"])


async def test_clearml_run_months_old_is_imported_and_read_back_whole(stack_factory):
    stack = await stack_factory()
    key = await stack.key("acme", "admin")
    events = run_events("run-72d", OLD_MS, 1000)  # 3,000 scalars + 100 log lines
    half = len(events) // 2
    for chunk in (events[:half], events[half:]):
        status, doc = await add_batch(stack, key, chunk)
        assert (status, doc["data"]) == (200, {"added": len(chunk), "errors": 0,
                                               "errors_info": {}}), doc
    await wait_count(stack, "task_metric_events", 3000)
    await wait_count(stack, "task_log_events", 100)
    got = await read_all(stack, key, "run-72d")
    assert len(got) == 3100
    assert sorted(map(comparable, got)) == sorted(map(comparable, events))

    # importing the same batches again (a retried import) stores nothing twice: scalars
    # replace by identity, log lines carry the request-derived id
    for chunk in (events[:half], events[half:]):
        status, doc = await add_batch(stack, key, chunk)
        assert status == 200 and doc["data"]["added"] == len(chunk)
    marker = {"type": "log", "task": "run-72d", "level": "info", "worker": "gpu-1",
              "msg": "import done", "timestamp": NOW_MS}
    status, _ = await add_batch(stack, key, [marker])
    assert status == 200
    await wait_count(stack, "task_log_events", 101)  # the marker is behind the re-import
    assert await count(stack, "task_metric_events") == 3000
    assert await count(stack, "dead_letters") == 0


async def test_events_past_retention_are_refused_with_the_reason(stack_factory):
    stack = await stack_factory(retention=Retention(task_events=60))
    key = await stack.key("acme", "admin")
    recent = NOW_MS - 59 * DAY_MS
    events = run_events("run", recent, 1)  # 3 scalars + 1 log line, 59 days old
    too_old = run_events("run", OLD_MS, 1)[2:]  # 1 scalar + 1 log line, 72 days old
    status, doc = await add_batch(stack, key, events + too_old)
    assert status == 200, doc
    reason = f"timestamp: {OLD_MS} is older than the retention of 60 days"
    assert doc["data"] == {"added": 4, "errors": 2, "errors_info": {"5": reason}
                           | {"6": f"timestamp: {OLD_MS + 500} is older than the retention "
                                    f"of 60 days"}}
    status, doc = await call(stack, key, "add", too_old[0])
    assert status == 400 and doc["meta"]["result_msg"] == f"invalid event: {reason}"
    assert {k: doc[k] for k in ("error", "message", "details")} == {
        "error": "INVALID_PARAMETERS", "message": f"invalid event: {reason}",
        "details": {"parameter": "timestamp", "value": None}}
    status, doc = await add_batch(stack, key, too_old)
    assert status == 400 and doc["error"] == "EVENTS_NOT_ADDED"
    assert doc["details"]["errors_info"] == {
        "1": reason, "2": f"timestamp: {OLD_MS + 500} is older than the retention of 60 days"}
    await wait_count(stack, "task_metric_events", 3)
    await wait_count(stack, "task_log_events", 1)
    assert await count(stack, "dead_letters") == 0


async def test_vitals_publish_reports_events_past_retention(stack_factory, tmp_path):
    stack = await stack_factory()
    s = stack.settings
    now_s = time.time()
    fresh = f'{{"v":1,"type":"request","ts":{now_s - 60:.3f},"endpoint_id":5,"status":200,' \
            f'"latency_ms":12.5}}'
    old_ts = round(now_s - 31 * 86400)
    old = f'{{"v":1,"type":"request","ts":{old_ts},"endpoint_id":5,"status":200,' \
          f'"latency_ms":12.5}}'
    lines = "\n".join([fresh, old, "{nope"]) + "\n"
    env = {**os.environ, "KAFKA_BOOTSTRAP": s.kafka_bootstrap or "",
           "VITALS_TOPIC_PREFIX": s.topics.prefix, "VITALS_DATA_DIR": str(tmp_path)}
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "from pipeline.cli.main import main; raise SystemExit(main())",
         "publish", "--topic", "requests"],
        input=lines, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "sent 1, rejected 2\n"
    assert proc.stderr.splitlines()[0] == \
        f"line 2: ts: {old_ts} is older than the retention of 30 days"
    assert proc.stderr.splitlines()[1].startswith("line 3: not valid JSON")
    await stack.wait_requests(1)
    assert await count(stack, "dead_letters") == 0
