"""The dashboard in headless Chromium against a live Vitals (real Kafka, the faust worker,
embedded ClickHouse): each page loads with a key and shows the numbers the API gives for data
published here, with no console error and no request leaving the machine; a reader sees only
its tenant; empty tenants get the empty states. Screenshots go to `.artifacts/ui/`."""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import orjson

from pipeline.core.clock import ManualClock
from pipeline.sdk.producer import Producer
from tests.integration.ui.conftest import Watch, watch

T = int(time.time()) - 30  # whole second; recent, inside every retention
NOW = T + 0.5


def js_num(v: float | None, digits: int = 2) -> str:
    """`Vitals.num` (toLocaleString en-US, at most `digits` decimals) in Python."""
    if v is None:
        return "—"
    if float(v).is_integer():
        return f"{int(v):,}"
    q = Decimal(repr(float(v))).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    whole, _, frac = f"{q:f}".partition(".")
    frac = frac.rstrip("0")
    return f"{int(whole):,}" + (f".{frac}" if frac else "")


def requests_events() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    # endpoint 11: 120 requests in the last stats window (2/s), one in ten a 500
    for i in range(120):
        out.append({"v": 1, "type": "request", "ts": T - 59.5 + i * 0.49, "tenant": "acme",
                    "endpoint_id": 11, "endpoint": "llm-a", "autogroup_id": 101,
                    "worker_id": 1 + i % 2, "status": 500 if i % 10 == 0 else 200,
                    "latency_ms": 10.0 + i, "work_units": 1.5,
                    "cold_start": i % 40 == 0, "cold_start_ms": 2000.0})
    # and a trickle over the previous half hour (the sparkline)
    for m in range(2, 30):
        for j in range(m % 5 + 1):
            out.append({"v": 1, "type": "request", "ts": T - m * 60 + j, "tenant": "acme",
                        "endpoint_id": 11, "endpoint": "llm-a", "status": 200,
                        "latency_ms": 30.0})
    for i in range(30):
        out.append({"v": 1, "type": "request", "ts": T - 40 + i, "tenant": "acme",
                    "endpoint_id": 12, "endpoint": "llm-b", "status": 200, "latency_ms": 5.0})
    for i in range(10):
        out.append({"v": 1, "type": "request", "ts": T - 20 + i, "tenant": "other",
                    "endpoint_id": 99, "endpoint": "theirs", "status": 200,
                    "latency_ms": 50.0})
    return out


def heartbeats() -> list[dict[str, Any]]:
    hb = []
    for worker, perf, ts in ((1, 100.0, T - 5), (2, 50.0, T - 8), (3, 70.0, T - 600)):
        hb.append({"v": 1, "type": "heartbeat", "ts": ts + 0.25, "tenant": "acme",
                   "endpoint_id": 11, "autogroup_id": 101, "id": worker, "max_perf": perf,
                   "cur_load": 2.0, "num_requests_working": 1, "cur_capacity": perf / 2,
                   "max_capacity": perf})
    return hb


def task_events(image_url: str) -> list[dict[str, Any]]:
    base = (T - 900) * 1000
    ev: list[dict[str, Any]] = []
    for i in range(50):
        for variant, value in (("train", 2.0 / (1 + i)), ("val", 2.5 / (1 + i) + 0.05)):
            ev.append({"type": "training_stats_scalar", "task": "run-1", "iter": i,
                       "metric": "loss", "variant": variant, "value": value,
                       "timestamp": base + i * 1000})
        ev.append({"type": "training_stats_scalar", "task": "run-1", "iter": i,
                   "metric": "accuracy", "variant": "val", "value": min(0.99, 0.5 + i / 80),
                   "timestamp": base + i * 1000})
    for i in range(150):
        level = "error" if i == 77 else "info"
        ev.append({"type": "log", "task": "run-1", "level": level, "worker": "w1",
                   "msg": f"step {i} loss={2.0 / (1 + i):.4f}" if i != 77 else
                   "CUDA out of memory at step 77", "timestamp": base + i * 1000 + 500})
    for it in (10, 20, 30):
        for variant in ("input", "mask"):
            ev.append({"type": "training_debug_image", "task": "run-1", "iter": it,
                       "metric": "samples", "variant": variant, "url": image_url,
                       "timestamp": base + it * 1000 + 700})
    fig = {"data": [{"type": "scatter", "mode": "lines", "x": [0, 0.1, 0.4, 1],
                     "y": [0, 0.6, 0.9, 1], "name": "roc"}],
           "layout": {"title": {"text": "ROC"}, "xaxis": {"title": {"text": "FPR"}}}}
    ev.append({"type": "plot", "task": "run-1", "iter": 49, "metric": "eval", "variant": "roc",
               "plot_str": json.dumps(fig), "timestamp": base + 49_900})
    return ev


def custom_metrics() -> list[dict[str, Any]]:
    return [{"v": 1, "type": "metric", "ts": T - 100 + i, "tenant": "acme",
             "name": "train.samples", "kind": "c", "value": 32 if i % 2 else 16,
             "tags": {"model": "bert" if i % 3 else "gpt"}} for i in range(90)]


def jobs() -> list[dict[str, Any]]:
    ev: list[dict[str, Any]] = []
    for tid, state in (("j1", "queued"), ("j2", "started"), ("j3", "queued")):
        ev.append({"v": 1, "type": "task", "ts": T - 300, "tenant": "acme", "user": "alice",
                   "task_id": tid, "state": state, "cluster": "c"})
    for state, ts in (("up", T - 7200), ("down", T - 3600)):
        ev.append({"v": 1, "type": "node", "ts": ts, "tenant": "acme", "user": "alice",
                   "cluster": "c", "node_id": "n1", "state": state})
    return ev


async def publish(stack: Any) -> dict[str, str]:
    s = stack.settings
    reqs = requests_events()
    async with Producer(s.kafka_bootstrap, s.topics, clock=ManualClock(NOW)) as p:
        await p.send_many("requests", reqs)
        await p.send_many("heartbeats", heartbeats())
        await p.send_many("metrics", custom_metrics())
        await p.send_many("jobs", jobs())
        # no endpoint_id: refused, dead-lettered with a reason
        await p.send_raw(s.topics.topic("requests"), orjson.dumps(
            {"v": 1, "type": "request", "ts": T, "tenant": "acme", "status": 200}))
    keys = {"reader": await stack.key("acme", "reader"), "admin": await stack.key("acme", "admin"),
            "super": await stack.key("ops", "superadmin"),
            "other_admin": await stack.key("other", "admin"),
            "empty": await stack.key("nobody", "reader")}
    for key, evs in ((keys["admin"], task_events(f"{stack.rt.api_url}/ui/assets/vendor/"
                                                 "swagger-ui/favicon-32x32.png")),
                     (keys["other_admin"], [{"type": "training_stats_scalar",
                                             "task": "their-run", "iter": 1, "metric": "m",
                                             "variant": "v", "value": 1.0,
                                             "timestamp": (T - 60) * 1000}])):
        r = await stack.http.post("/events.add_batch", headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/json-lines"},
            content=b"\n".join(orjson.dumps(e) for e in evs))
        assert r.status_code == 200, r.text
    r = await stack.http.put("/v2/endpoints/11/pricing", headers={
        "Authorization": f"Bearer {keys['admin']}"}, json={"requestPrice": 0.001,
                                                          "monthlyBudget": 100})
    assert r.status_code == 200, r.text
    await stack.wait_requests(len(reqs))
    await stack.wait_for(lambda: stack.rows(
        "SELECT (SELECT count() FROM {db}.heartbeats_raw FINAL), "
        "(SELECT count() FROM {db}.task_log_events FINAL), "
        "(SELECT count() FROM {db}.task_metric_events FINAL), "
        "(SELECT sum(count) FROM {db}.metrics_1s FINAL), "
        "(SELECT count() FROM {db}.job_tasks FINAL), "
        "(SELECT count() FROM {db}.dead_letters FINAL)"),
        [(3, 150, 50 * 3 + 6 + 1 + 1, 90.0, 3, 1)])
    return keys


async def api(stack: Any, key: str, method: str, path: str, **kw: Any) -> Any:
    r = await stack.http.request(method, path, headers={"Authorization": f"Bearer {key}"},
                                 **kw)
    assert r.status_code == 200, r.text
    return r.json()


async def row_cells(w: Watch, table: str, key_col: str, key_text: str) -> dict[str, str]:
    """The cells (data-col → text) of the row of `table` whose `key_col` cell reads key_text."""
    rows = w.page.locator(f"#{table} tbody tr")
    for i in range(await rows.count()):
        cells = rows.nth(i).locator("td")
        texts = {await cells.nth(j).get_attribute("data-col") or "":
                 (await cells.nth(j).inner_text()).strip() for j in range(await cells.count())}
        if texts.get(key_col) == key_text:
            return texts
    raise AssertionError(f"no row {key_col}={key_text!r} in #{table}")


async def test_pages_show_the_published_numbers(stack_factory, browser) -> None:
    clock = ManualClock(NOW)
    stack = await stack_factory(clock=clock)
    keys = await publish(stack)
    base = stack.rt.api_url

    # -- a reader: every page of its tenant ------------------------------------------------
    w = await watch(browser, base)
    await w.sign_in(keys["reader"])
    assert await w.text("#who-tenant") == "acme · reader"
    await w.open("/endpoints", page_name="endpoints")
    await w.shot("01-endpoints")
    stats = await api(stack, keys["reader"], "POST", "/get_endpoint_stats/", json={"id": 11})
    doc = await api(stack, keys["reader"], "GET",
                    "/v2/endpoints/11/metrics?timeframe=1h&granularity=1m&metrics=performance")
    assert stats["reqrate"] == 2.0 and stats["nworkers"] == 2 and stats["capacity"] == 150.0
    row = await row_cells(w, "endpoints-table", "id", "11")
    p95_ms = doc["summary"]["p95Latency"] * 1000
    assert row["name"] == "llm-a"
    assert row["reqrate"] == js_num(stats["reqrate"], 3) == "2"
    assert row["reliable"] == f"{js_num(stats['reliable'] * 100, 1)}%" == "90%"
    assert row["p95LatencyMs"] == f"{js_num(p95_ms, 1)} ms"
    lat = sorted(e["latency_ms"] for e in requests_events() if e["endpoint_id"] == 11)
    truth = lat[math.ceil(0.95 * len(lat)) - 1]
    assert abs(p95_ms - truth) <= truth * 0.021  # the sketch's relative error bound
    assert row["nworkers"] == "2" and row["capacity"] == "150"
    assert row["curload"] == js_num(stats["curload"], 3) == "3"
    assert row["requests1h"] == js_num(doc["summary"]["totalExecutions"])
    assert await w.page.locator("#endpoints-table tr:has(td[data-col=id]:text-is('11')) svg.spark"
                                ).get_attribute("data-points") == "30"
    ids = await w.page.locator("#endpoints-table td[data-col=id]").all_inner_texts()
    assert sorted(ids) == ["11", "12"]  # not the other tenant's 99
    # live: more traffic for llm-b shows up without reloading (the page refreshes every 10 s)
    assert (await row_cells(w, "endpoints-table", "id", "12"))["reqrate"] == "0.5"
    async with Producer(stack.settings.kafka_bootstrap, stack.settings.topics,
                        clock=ManualClock(NOW)) as p:
        await p.send_many("requests", [
            {"v": 1, "type": "request", "ts": T - 30 + i * 0.5, "tenant": "acme",
             "endpoint_id": 12, "endpoint": "llm-b", "status": 200, "latency_ms": 5.0}
            for i in range(60)])
    await w.page.wait_for_function(
        "document.querySelector(\"#endpoints-table tr:has(td[data-col=id]) "
        "td[data-col=reqrate]\") && [...document.querySelectorAll('#endpoints-table tbody tr')]"
        ".some(r => r.querySelector('[data-col=id]').textContent === '12' && "
        "r.querySelector('[data-col=reqrate]').textContent === '1.5')", timeout=30_000)
    # sortable: by name ascending puts llm-a first
    await w.page.click("#endpoints-table th[data-key=name]")
    assert (await w.page.locator("#endpoints-table td[data-col=name]").all_inner_texts()
            )[0] == "llm-a"

    # click through to the endpoint page
    await w.page.click("#endpoints-table a[data-endpoint='11']")
    await w.page.wait_for_function("document.getElementById('page').dataset.page === "
                                   "'endpoint' && document.getElementById('page').dataset.loaded")
    await w.page.wait_for_selector("#workers-table")
    await w.shot("02-endpoint")
    tile = w.page.locator("[data-stat=reqrate] .value")
    assert (await tile.inner_text()) == js_num(stats["reqrate"], 3)
    assert (await w.text("[data-stat=nworkers] .value")) == "2"
    assert (await w.text("[data-stat=totreqs] .value")) == js_num(stats["totreqs"])
    assert (await w.text("[data-stat=p95] .value")) == f"{js_num(p95_ms, 1)} ms"
    assert (await w.text("[data-stat=coldStarts] .value")) == "3"
    assert (await w.text("[data-stat=cost] .value")) == \
        f"{js_num(doc['summary']['totalCost'], 4)} USD" == "0.207 USD"
    charts = await w.page.locator("#endpoint-charts [data-chart]").evaluate_all(
        "cs => cs.map(c => [c.dataset.chart, !!c.querySelector('canvas')])")
    drawn = dict(charts)
    for title in ("Requests and errors by class (per point)", "Latency p50 / p95 / p99 (ms)",
                  "Workers vs load vs capacity", "Requests/s and reliability (stats)",
                  "Cost vs budget (USD)", "Cold starts (per point)"):
        assert drawn[title], f"chart {title!r} not drawn: {charts}"
    width = "document.querySelector('#endpoint-charts .chart canvas').clientWidth"
    before = await w.page.evaluate(width)
    await w.page.set_viewport_size({"width": 900, "height": 900})  # one chart per row
    await w.page.wait_for_function(f"{width} > {before}")
    await w.page.set_viewport_size({"width": 1400, "height": 900})
    cold = await api(stack, keys["reader"], "GET",
                     "/ui/api/endpoints/11/cold-starts?timeframe=1h&granularity=1m")
    assert len(cold["timeSeries"]) == 60
    assert sum(p["coldStarts"] for p in cold["timeSeries"]) == 3
    assert sum(p["coldStartSeconds"] for p in cold["timeSeries"]) == 6.0
    assert sum(p["requests"] for p in cold["timeSeries"]) == doc["summary"]["totalExecutions"]
    workers = await api(stack, keys["reader"], "GET", "/ui/api/endpoints/11/workers")
    assert [x["workerId"] for x in workers["workers"]] == [1, 2, 3]
    assert [x["live"] for x in workers["workers"]] == [True, True, False]
    assert await w.page.locator("#workers-table td[data-col=workerId]").all_inner_texts() == \
        ["1", "2", "3"]
    assert await w.page.locator("#workers-table td[data-col=live]").all_inner_texts() == \
        ["live", "live", "gone"]
    await w.page.select_option("#timeframe", "6h")
    await w.page.wait_for_function("location.hash.endsWith('tf=6h') && "
                                   "document.getElementById('page').dataset.loaded")
    await w.page.wait_for_selector("#workers-table")

    # training tasks
    await w.open("/tasks", page_name="tasks")
    await w.shot("03-tasks")
    tasks = await w.page.locator("#tasks-table td[data-col=task]").all_inner_texts()
    assert tasks == ["run-1"]
    await w.open("/tasks/run-1?tab=scalars", page_name="task")
    await w.page.wait_for_selector("#task-scalars [data-chart=loss] canvas")
    await w.shot("04-task-scalars")
    hist = (await api(stack, keys["reader"], "POST", "/events.scalar_metrics_iter_histogram",
                      json={"task": "run-1"}))["data"]
    assert sorted(hist) == ["accuracy", "loss"] and sorted(hist["loss"]) == ["train", "val"]
    for metric in hist:
        n = len({x for v in hist[metric].values() for x in v["x"]})
        assert await w.page.locator(f"#task-scalars [data-chart='{metric}']").get_attribute(
            "data-points") == str(n)
    legend = await w.page.locator("#task-scalars [data-chart=loss] .u-legend").inner_text()
    assert "train" in legend and "val max" in legend

    await w.open("/tasks/run-1?tab=console", page_name="task")
    assert await w.text("#log-info") == "100 shown · 100 loaded of 150"
    assert await w.page.locator("#log-lines [data-line]").last.inner_text() == \
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(T - 900 + 149))}Z w1 INFO " \
        "step 149 loss=0.0133"
    await w.page.click("#log-older")
    await w.page.wait_for_function("document.getElementById('log-info').textContent"
                                   ".startsWith('150 shown')")
    await w.page.fill("#log-search", "out of memory")
    assert await w.text("#log-info") == "1 shown · 150 loaded of 150"
    assert await w.text("#log-lines mark") == "out of memory"
    await w.shot("05-task-console")

    await w.open("/tasks/run-1?tab=images", page_name="task")
    await w.page.wait_for_function("[...document.querySelectorAll('#image-grid img')]"
                                   ".every(i => i.complete)")
    figures = await w.page.locator("#image-grid figure").evaluate_all(
        "fs => fs.map(f => [f.dataset.image, f.querySelector('img').naturalWidth])")
    assert [f[0] for f in figures] == [f"samples/{v}/{i}" for i in (30, 20, 10)
                                       for v in ("input", "mask")]
    assert all(width == 32 for _, width in figures), figures  # loaded and decoded
    await w.shot("06-task-images")

    await w.open("/tasks/run-1?tab=plots", page_name="task")
    await w.page.wait_for_selector("[data-plot='eval/roc'] .main-svg")
    assert "ROC" in await w.page.locator("[data-plot='eval/roc']").inner_text()
    await w.shot("07-task-plots")

    # custom metrics, grouped by a tag
    await w.open("/metrics?name=train.samples&agg=sum&range=1h&group_by=model",
                 page_name="metrics")
    await w.shot("08-custom-metrics")
    ts = await api(stack, keys["reader"], "GET", "/v2/metrics/custom/timeseries?name="
                   f"train.samples&aggregation=sum&group_by=model&t1={T - 3000}&t2={T + 1}")
    totals = {s["tags"]["model"]: sum(p[1] for p in s["points"]) for s in ts["series"]}
    sent: dict[str, float] = {}
    for m in custom_metrics():
        sent[m["tags"]["model"]] = sent.get(m["tags"]["model"], 0) + m["value"]
    assert totals == sent
    for model, total in sent.items():
        cells = await row_cells(w, "metric-table", "label", model)
        assert cells["total"] == js_num(total, 4)

    # pipeline health (a reader: counts, no dead-letter reasons)
    await w.open("/pipeline", page_name="pipeline")
    await w.shot("09-pipeline-reader")
    assert await w.text("[data-stat=ready] .value") == "yes"
    topic_rows = await w.page.locator("#topics-table td[data-col=topic]").all_inner_texts()
    assert sorted(topic_rows) == sorted(stack.settings.topics.topic(k) for k in
                                        ("requests", "heartbeats", "task-events", "metrics",
                                         "jobs"))
    stored = await row_cells(w, "topics-table", "topic", stack.settings.topics.topic("requests"))
    assert stored["consumed"] == js_num(len(requests_events()) + 60)
    assert stored["rejected"] == "1"
    assert stored["rate"] == "0"  # measured over the first second: nothing arrives now
    assert await w.page.locator("#dead-letters-note").count() == 1

    assert w.console_errors == [], w.console_errors
    assert w.external == [], w.external

    # -- what a reader may not open ---------------------------------------------------------
    await w.open("/jobs", page_name="jobs")  # Coopr queues and node usage take the admin role
    assert "need an admin key" in await w.text("[data-empty]")
    await w.page.goto(f"{base}/ui#/endpoints/99")
    await w.page.wait_for_selector("[data-error='403']")
    await w.shot("10-reader-other-tenant-endpoint")
    await w.page.goto(f"{base}/ui#/tasks/their-run?tab=scalars")
    await w.page.wait_for_selector("[data-error='403']")
    assert "theirs" not in await w.page.content()
    await w.context.close()

    # -- an admin: queues and nodes ---------------------------------------------------------
    a = await watch(browser, base)
    await a.sign_in(keys["admin"])
    await a.open("/jobs", page_name="jobs")
    await a.shot("11-jobs")
    queues = await api(stack, keys["admin"], "GET", "/v2/metrics/queues")
    assert queues == {"acme": {"inProgress": 1, "queued": 2, "total": 3}}
    assert await a.text("[data-stat=queued] .value") == "2"
    assert await a.text("[data-stat=inProgress] .value") == "1"
    usage = await api(stack, keys["admin"], "GET",
                      f"/v2/metrics/nodes/usage?start={T - 86400}&end={T}")
    assert usage["data"][0]["value"] == 3600
    assert await a.text("[data-stat=nodeSeconds] .value") == "1"
    assert a.console_errors == [] and a.external == []
    await a.context.close()

    # -- a superadmin: every tenant, dead-letter reasons ------------------------------------
    s = await watch(browser, base)
    await s.sign_in(keys["super"])
    await s.open("/endpoints", page_name="endpoints")
    assert sorted(await s.page.locator("#endpoints-table td[data-col=id]").all_inner_texts()
                  ) == ["11", "12", "99"]
    assert (await row_cells(s, "endpoints-table", "id", "99"))["tenant"] == "other"
    await s.open("/pipeline", page_name="pipeline")
    await s.shot("12-pipeline-superadmin")
    dead = await api(stack, keys["super"], "GET", "/ui/api/dead-letters")
    [topic] = dead["topics"]
    assert topic["count"] == 1 and "endpoint_id" in topic["latest"][0]["reason"]
    assert await s.text("#dead-letters-table [data-reason]") == topic["latest"][0]["reason"]
    assert s.console_errors == [] and s.external == []
    await s.context.close()

    # -- a tenant with no data: the empty states say what to send ---------------------------
    e = await watch(browser, base)
    await e.sign_in(keys["empty"])
    for route, name, says in (("/endpoints", "endpoints", "vitals publish --topic requests"),
                              ("/tasks", "tasks", "/events.add_batch"),
                              ("/metrics", "metrics", "|c|#model:bert")):
        await e.open(route, page_name=name)
        await e.shot(f"13-empty-{name}")
        assert says in await e.text("[data-empty]")
    # the endpoints page's example, run as shown, brings its endpoint in on the next refresh.
    # It stamps the event with the real time (`date +%s`): the stack's clock, held at NOW so
    # far, moves to the present, or the worker would dead-letter the event as being from the
    # future once this test runs more than VITALS_MAX_FUTURE_S after the module was imported
    # (in a full suite run, `vitals publish` checks against the real clock and said "sent 1")
    clock.t = time.time()
    await e.open("/endpoints", page_name="endpoints")
    example = await e.text("[data-empty] pre")
    command = example.split("\n#")[0]
    env = {**os.environ, "KAFKA_BOOTSTRAP": stack.settings.kafka_bootstrap,
           "VITALS_TOPIC_PREFIX": stack.settings.topics.prefix,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = await asyncio.create_subprocess_exec("bash", "-c", command, env=env,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert (proc.returncode, out.decode()) == (0, "sent 1, rejected 0\n")
    await e.page.wait_for_selector("#endpoints-table a[data-endpoint='1']", timeout=30_000)
    assert await e.text("#endpoints-table td[data-col=name]") == "my-llm"
    r = await stack.http.post("/get_endpoint_stats/", json={"id": 1},
                              headers={"Authorization": f"Bearer {keys['empty']}"})
    assert (r.status_code, r.json()["totreqs"], r.json()["endpoint"]) == (200, 1, "my-llm")
    assert e.console_errors == [] and e.external == []
    await e.context.close()
