"""The endpoint-metrics reference's own Python SDK examples, run against a live Vitals with only
the import line and the client construction changed (`reference_sdk.py`), print real numbers
from data this test published; and the read client covers every read family, sync and async,
with typed errors."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import sys
import time
from typing import Any

import pytest

from pipeline import AsyncClient, Client
from pipeline.sdk import BadRequest, ConnectionFailed, NotFound, Unauthorized
from pipeline.sdk.producer import Producer
from tests.integration.clearml.task_events_helpers import (
    BASE_MS,
    add_batch,
    log,
    scalar,
    wait_count,
)

EP = 7


def requests(now: float) -> list[dict[str, Any]]:
    """40 requests to endpoint 7 over the last 20 minutes: 4 failures, 5 cold starts."""
    out = []
    for i in range(40):
        out.append({"v": 1, "type": "request", "ts": now - 1200 + 30 * i, "tenant": "acme",
                    "endpoint_id": EP, "endpoint": "llm-a", "autogroup_id": 70, "worker_id": i % 2,
                    "status": 500 if i % 10 == 3 else 200, "latency_ms": 100.0 + 10 * i,
                    "work_units": 2, "tokens_in": 10, "tokens_out": 20, "gpu_seconds": 0.5,
                    "cold_start": i % 8 == 0, "cold_start_ms": 4000.0 if i % 8 == 0 else 0})
    return out


def heartbeats(now: float) -> list[dict[str, Any]]:
    return [{"v": 1, "type": "heartbeat", "ts": now - 590 + 60 * k, "tenant": "acme",
             "endpoint_id": EP, "autogroup_id": 70, "id": w, "max_perf": 50.0,
             "cur_load": 10.0, "gpu_util": 40.0 + 20 * w, "gpu_mem_util": 30.0}
            for k in range(10) for w in range(2)]


@pytest.fixture
async def published(stack_factory):
    stack = await stack_factory()
    s = stack.settings
    now = time.time()
    async with Producer(s.kafka_bootstrap, s.topics) as p:
        await p.send_many("requests", requests(now))
        await p.send_many("heartbeats", heartbeats(now))
    await stack.wait_requests(40)
    await stack.wait_for(lambda: stack.rows("SELECT count() FROM {db}.heartbeats_raw FINAL"),
                         [(20,)])
    key = await stack.key("acme", "admin")
    r = await stack.http.put(f"/v2/endpoints/{EP}/pricing", headers={
        "Authorization": f"Bearer {key}"}, json={"gpuSecondPrice": 0.001, "requestPrice": 0.01,
                                                 "gbTransferredPrice": 0.0,
                                                 "monthlyBudget": 100, "currency": "USD"})
    assert r.status_code == 200, r.text
    return stack, key


def run_examples(url: str, key: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("VITALS_URL", url)
    monkeypatch.setenv("VITALS_API_KEY", key)
    sys.modules.pop("tests.integration.read_client.reference_sdk", None)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ref = importlib.import_module("tests.integration.read_client.reference_sdk")
        m = ref.get_endpoint_metrics(EP)
        ref.analyze_costs(EP, "30d")
        df = ref.analyze_performance_trends(EP, "7d")
        ref.monitor_resource_utilization(EP)
        ref.analyze_cold_starts(EP)
        dash = ref.create_dashboard_data([EP, "llm-a"])
        print(dash.to_string(index=False))
    ref.client.close()
    assert m.summary.total_executions == 40
    assert len(df) == 7 * 24 and df["avg_latency"].notna().sum() >= 1
    return out.getvalue()


async def test_the_reference_examples_print_real_numbers(published, monkeypatch):
    stack, key = published
    text = await asyncio.to_thread(run_examples, stack.rt.api_url, key, monkeypatch)
    print(text)
    assert f"Metrics for {EP} (last 24h):" in text
    assert "Total Executions: 40" in text
    assert "Success Rate: 90.00%" in text
    mean_latency = sum(100.0 + 10 * i for i in range(40)) / 40 / 1000
    assert f"Average Latency: {mean_latency:.2f}s" in text
    assert "Cold Start Count: 5" in text
    assert "Cold Start Rate: 12.50%" in text
    assert "Average GPU Utilization: 50.0%" in text
    assert "Peak GPU Utilization: 60.0%" in text
    assert "Error fetching" not in text
    # the dashboard frame has a row per endpoint (by id and by name), with the same numbers
    rows = [ln for ln in text.splitlines() if ln.strip().startswith(("7 ", "llm-a "))]
    assert len(rows) == 2 and all(" 40 " in r for r in rows)


def read_everything(url: str, key: str) -> dict[str, Any]:
    with Client(url, api_key=key) as c:
        stats = c.endpoints.stats(EP)
        by_name = c.endpoints.stats("llm-a")
        series = c.endpoints.stats(EP, metric_name="reqrate", t1=time.time() - 120,
                                   t2=time.time(), step=60)
        group = c.autogroups.stats(70)
        batch = c.endpoints.batch_metrics([EP], timeframe="1h", metrics=["performance"])
        csv = c.endpoints.get_metrics(EP, timeframe="1h", granularity="5m", format="csv")
        events = list(c.iter_task_events("task-1", batch_size=2))
        logs = list(c.iter_task_log("task-1", batch_size=2))
        hist = c.tasks.scalar_histograms("task-1")
        queues = c.jobs.queues()
        keys = c.keys.list()
        with pytest.raises(BadRequest) as bad:
            c.endpoints.get_metrics(EP, timeframe="2h")
        with pytest.raises(NotFound):
            c.endpoints.get_metrics(999_999)
    with Client(url, api_key="vk_wrong") as c, pytest.raises(Unauthorized):
        c.endpoints.stats(EP)
    with Client("http://127.0.0.1:9", api_key=key) as c, pytest.raises(ConnectionFailed):
        c.endpoints.stats(EP)
    return dict(stats=stats, by_name=by_name, series=series, group=group, batch=batch, csv=csv,
                events=events, logs=logs, hist=hist, queues=queues, keys=keys, bad=bad.value)


async def test_the_client_reads_every_family(published):
    stack, key = published
    await add_batch(stack, key, [scalar("task-1", i, 0.5 * i) for i in range(5)]
                    + [log("task-1", i, f"line {i}") for i in range(3)])
    await wait_count(stack, "task_metric_events", 5)
    await wait_count(stack, "task_log_events", 3)
    got = await asyncio.to_thread(read_everything, stack.rt.api_url, key)
    assert got["stats"].totreqs == 40 and got["stats"].nworkers == 2
    assert got["stats"].capacity == 100.0
    assert got["by_name"].to_dict() == got["stats"].to_dict()
    assert got["series"].range_len == len(got["series"].reqrate) == 2
    assert got["series"].to_pandas().shape == (2, 1)
    assert got["group"].totreqs == 40
    assert got["batch"].to_dict()  # a document, with the endpoint's summary in it
    assert got["csv"].startswith("timestamp") or "," in got["csv"].splitlines()[0]
    assert [e.iter for e in got["events"] if e.type == "training_stats_scalar"] == [0, 1, 2, 3, 4]
    assert [e.msg for e in got["logs"]] == ["line 0", "line 1", "line 2"]
    assert got["hist"].loss.total.y == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert len(got["keys"]["keys"]) >= 1
    bad = got["bad"]
    assert (bad.status, bad.code, bad.parameter) == (400, "INVALID_PARAMETERS", "timeframe")
    assert "24h" in bad.allowed_values
    # the async twin reads the same
    async with AsyncClient(stack.rt.api_url, api_key=key) as ac:
        assert (await ac.endpoints.stats(EP)).totreqs == 40
        assert [e.msg async for e in ac.iter_task_log("task-1", batch_size=2)] == [
            "line 0", "line 1", "line 2"]
    assert BASE_MS > 0
