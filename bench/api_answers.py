"""Record the query API's answers to a fixed workload: the proof that a refactor changed no
behaviour.

A private broker and a private embedded ClickHouse are started; a deterministic workload with
fixed timestamps (requests, heartbeats, jobs, custom metrics, task events) is published; then
every route family is called at one fixed instant (the API's clock is a fake one) and each
answer — status, content type, body — is written to one JSON file. Run it before and after a
change and compare the files byte for byte::

    python -m bench.api_answers --out /tmp/before.json
    python -m bench.api_answers --out /tmp/after.json && cmp /tmp/before.json /tmp/after.json

Masked (inherently different from run to run, replaced by ``"<masked>"``): API key ids and
prefixes and their creation times in `/admin/keys` and `/ui/api/session`, the RSA public key of
`/vast/…/pubkey/`, the request `id` and `trx` of ClearML's `meta`, the HMAC signature of scroll
ids (its key is per process; the cursor itself is kept), and the sample values of the
pipeline's own `/metrics` (counters of batches, bytes and timings; names, help and labels are
kept).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from pipeline.cli.runtime import Runtime
from pipeline.core.clock import ManualClock
from pipeline.core.settings import Settings, TopicNames
from pipeline.local.kafka import LocalKafka
from pipeline.sdk.producer import Producer
from pipeline.storage import keys

__all__ = ["main"]

JAR_CACHE = Path.home() / ".cache" / "vitals"
#: The instant every answer is computed at: 2026-12-02T08:20:34.5Z.
NOW = 1796198400 + 1234.5
T = int(NOW)
MASK = "<masked>"


def requests_and_heartbeats() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(42)
    req: list[dict[str, Any]] = []
    for sec in range(T - 900, T):
        for ag, n in ((101, sec % 3 + 1), (102, 1)):
            for j in range(n):
                status = 503 if (sec + j) % 7 == 0 else 429 if (sec + j) % 11 == 0 else 200
                e: dict[str, Any] = {
                    "v": 1, "type": "request", "ts": sec + round(rng.random() * 0.999, 3),
                    "tenant": "acme", "endpoint_id": 11, "endpoint": "llm-a",
                    "autogroup_id": ag, "worker_id": ag * 10 + j % 2, "status": status,
                    "latency_ms": round(rng.uniform(5, 500), 3), "work_units": float(1 + j % 3),
                    "tokens_in": 10 + j, "tokens_out": 20, "queue_ms": round(rng.uniform(0, 50), 3)}
                if (sec + j) % 13 == 0:
                    e["error_kind"] = "timeout"
                if sec % 97 == 0 and j == 0:
                    e["cold_start"] = True
                req.append(e)
    for i in range(300):
        req.append({"v": 1, "type": "request", "ts": (T - 7200 + i * 7) * 1000 + 250,
                    "tenant": "acme", "endpoint_id": 11, "autogroup_id": 101, "status": 200,
                    "latency_ms": 42.0})
    for i in range(50):
        req.append({"v": 1, "type": "request", "ts": T - 30 + i * 0.1, "tenant": "other",
                    "endpoint_id": 99, "endpoint": "theirs", "status": 200, "latency_ms": 3.0})
    hb: list[dict[str, Any]] = []
    plan = {1: (101, 100.0, T - 900, T), 2: (101, 150.0, T - 900, T),
            3: (102, 80.0, T - 900, T - 90)}
    for worker, (ag, perf, start, stop) in plan.items():
        for t in range(start, stop, 10):
            hb.append({"v": 1, "type": "heartbeat", "ts": t + 0.5, "tenant": "acme",
                       "endpoint_id": 11, "autogroup_id": ag, "id": worker, "max_perf": perf,
                       "cur_load": 1.0, "num_requests_working": 1})
    return req, hb


def jobs() -> list[dict[str, Any]]:
    t0 = T // 60 * 60 - 1800
    ev: list[dict[str, Any]] = []
    for i in range(8):
        tid = f"t-{i}"
        ev.append({"v": 1, "type": "task", "ts": t0 + i, "tenant": "acme", "user": "alice",
                   "task_id": tid, "state": "queued", "cluster": "c"})
        if i >= 3:
            ev.append({"v": 1, "type": "task", "ts": t0 + 20 + i, "tenant": "acme",
                       "user": "alice", "task_id": tid, "state": "started", "cluster": "c"})
        if i >= 6:
            ev.append({"v": 1, "type": "task", "ts": t0 + 40 + i, "tenant": "acme",
                       "user": "alice", "task_id": tid, "state": "finished", "cluster": "c"})
    for n in range(3):
        ev.append({"v": 1, "type": "node", "ts": t0, "tenant": "acme", "user": "alice",
                   "cluster": "c3", "node_id": f"n{n}", "state": "up"})
    ev.append({"v": 1, "type": "node", "ts": t0 + 600, "tenant": "acme", "user": "alice",
               "cluster": "c3", "node_id": "n0", "state": "down"})
    return ev


def custom_metrics() -> list[dict[str, Any]]:
    rng = random.Random(7)
    ev: list[dict[str, Any]] = []
    for s in range(T - 120, T):
        ev.append({"v": 1, "type": "metric", "ts": s, "tenant": "acme", "name": "api.calls",
                   "kind": "c", "value": float(s % 4 + 1), "tags": {"model": "ab"[s % 2]}})
        ev.append({"v": 1, "type": "metric", "ts": s + 0.5, "tenant": "acme",
                   "name": "api.latency", "kind": "h", "value": round(rng.uniform(1, 900), 3),
                   "tags": {"model": "ab"[s % 2]}})
        if s % 10 == 0:
            ev.append({"v": 1, "type": "metric", "ts": s, "tenant": "acme",
                       "name": "queue.depth", "kind": "g", "value": float(s % 17)})
    return ev


def task_events() -> list[dict[str, Any]]:
    base = (T - 3600) * 1000
    ev: list[dict[str, Any]] = []
    for i in range(60):
        ev.append({"type": "training_stats_scalar", "task": "M", "iter": i, "metric": "loss",
                   "variant": "train", "value": float((i * 7) % 13 + i),
                   "timestamp": base + i * 1000})
    for i in range(0, 60, 10):
        ev.append({"type": "training_stats_scalar", "task": "M", "iter": i, "metric": "loss",
                   "variant": "val", "value": float(i) / 3, "timestamp": base + i * 1000 + 1})
    for i in range(3):
        ev.append({"type": "training_stats_vector", "task": "M", "iter": i, "metric": "vec",
                   "variant": "v", "values": [i, i + 1.5], "timestamp": base + i * 1000 + 4})
    for i in range(20):
        ev.append({"type": "log", "task": "M", "level": "info" if i % 5 else "warning",
                   "worker": "w1", "msg": f"step {i} done", "timestamp": base + i * 1000 + 2})
    ev.append({"type": "plot", "task": "M", "iter": 3, "metric": "conf", "variant": "m",
               "plot_str": '{"data": [{"z": [[1, 2], [3, 4]]}]}', "timestamp": base + 3003})
    ev.append({"type": "training_debug_image", "task": "M", "iter": 4, "metric": "img",
               "variant": "a", "key": "M/img/a/4.png", "url": "http://files/M/img/a/4.png",
               "timestamp": base + 4005})
    return ev


def calls() -> list[tuple[str, str, str, dict[str, Any] | None]]:
    """(family, method, path, json body); the caller's key is added by `run`."""
    ep = "/v2/endpoints/11/metrics"
    out: list[tuple[str, str, str, dict[str, Any] | None]] = [
        ("vast", "POST", "/get_endpoint_stats/", {"id": 11}),
        ("vast", "POST", "/get_endpoint_stats/", {"id": 99}),
        ("vast", "POST", "/get_autogroup_stats/", {"id": 101}),
        ("vast", "POST", "/get_autogroup_stats/", {"id": 102}),
        ("vast", "POST", "/get_endpoint_stats/", {"id": "x"}),
    ]
    for q in ("timeframe=1h&granularity=5m",
              "timeframe=1h&granularity=1m&metrics=performance,errors,usage,costs",
              "timeframe=24h&granularity=1h", "timeframe=15m&granularity=1m&aggregation=p95",
              "timeframe=1h&granularity=5m&format=csv",
              "timeframe=1h&granularity=5m&format=prometheus",
              "timeframe=1h&granularity=7m"):
        out.append(("endpoint_metrics", "GET", f"{ep}?{q}", None))
    out += [
        ("endpoint_metrics", "POST", "/v2/endpoints/metrics/batch",
         {"endpointIds": ["11", "12"], "timeframe": "1h", "granularity": "5m"}),
        ("endpoint_metrics", "GET", "/v2/endpoints/11/pricing", None),
        ("coopr", "GET", "/v2/metrics/queues", None),
        ("coopr", "GET", f"/v2/metrics/nodes/usage?start={T - 3600}&end={T}", None),
        ("coopr", "GET", "/v2/metrics/nodes/usage?tenant=acme", None),
        ("custom_metrics", "GET", "/v2/metrics/custom/series", None),
        ("custom_metrics", "GET", "/v2/metrics/custom/series?prefix=api.", None),
    ]
    for name, agg in (("api.calls", "sum"), ("api.calls", "rate"), ("api.latency", "p95"),
                      ("api.latency", "p50"), ("queue.depth", "last"), ("queue.depth", "avg")):
        out.append(("custom_metrics", "GET",
                    f"/v2/metrics/custom/timeseries?name={name}&t1={T - 120}&t2={T}&step=30"
                    f"&aggregation={agg}&group_by=model", None))
    out.append(("custom_metrics", "GET", "/v2/metrics/custom/timeseries?t1=1", None))
    for action, body in (
            ("get_task_metrics", {"tasks": ["M"]}),
            ("get_task_events", {"task": "M", "batch_size": 50}),
            ("get_task_log", {"task": "M", "batch_size": 10}),
            ("scalar_metrics_iter_histogram", {"task": "M"}),
            ("get_scalar_metrics_and_variants", {"task": "M"}),
            ("get_multi_task_plots", {"tasks": ["M"]}),
            ("get_task_plots", {"task": "M"}),
            ("debug_images", {"metrics": [{"task": "M"}]}),
            ("get_vector_metrics_and_variants", {"task": "M"}),
            ("vector_metrics_iter_histogram", {"task": "M", "metric": "vec", "variant": "v"}),
            ("get_task_latest_scalar_values", {"task": "M"}),
            ("download_task_log", {"task": "M", "line_type": "text"}),
            ("get_task_events", {"task": "nope"})):
        out.append(("clearml", "POST", f"/events.{action}", body))
    out += [
        ("ops", "GET", "/healthz", None),
        ("ops", "GET", "/readyz", None),
        ("ops", "GET", "/metrics", None),
        ("ops", "POST", "/sql", {"query": "SELECT endpoint_id, count() FROM {db}.requests_raw "
                                          "FINAL GROUP BY endpoint_id ORDER BY endpoint_id"}),
        ("ops", "GET", "/admin/keys?tenant=acme", None),
        ("ui", "GET", "/ui/api/session", None),
        ("ui", "GET", "/ui/api/endpoints", None),
        ("ui", "GET", "/ui/api/endpoints/11/workers", None),
        ("ui", "GET", "/ui/api/endpoints/11/cold-starts", None),
        ("ui", "GET", "/ui/api/tasks", None),
        ("ui", "GET", "/ui/api/dead-letters", None),
        ("vast_worker", "GET", "/vast/11/pubkey/", None),
        ("openapi", "GET", "/openapi.json", None),
    ]
    return out


_METRIC_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) \S+$")
_MASKED_KEYS = {"created", "created_at", "key_id", "keyId", "prefix", "last_used"}


def _mask_json(doc: Any, path: str) -> Any:
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            masked = k in _MASKED_KEYS and path.startswith(("/admin/keys", "/ui/api/session"))
            if masked or (k in ("id", "key") and path.startswith("/admin/keys")):
                out[k] = MASK
            elif k == "meta" and isinstance(v, dict) and path.startswith("/events."):
                out[k] = {**v, **{f: MASK for f in ("id", "trx") if f in v}}
            elif k == "scroll_id" and isinstance(v, str) and "." in v:
                out[k] = v.rsplit(".", 1)[0] + "." + MASK
            else:
                out[k] = _mask_json(v, path)
        return out
    if isinstance(doc, list):
        return [_mask_json(v, path) for v in doc]
    return doc


def _render(path: str, r: httpx.Response) -> Any:
    ctype = r.headers.get("content-type", "")
    if path == "/metrics":
        return "\n".join(_METRIC_SAMPLE.sub(r"\1 " + MASK, line)
                         if not line.startswith("#") else line for line in r.text.splitlines())
    if path.startswith("/vast/") and path.endswith("/pubkey/"):
        return MASK if r.status_code == 200 else r.text
    if "json" in ctype:
        return _mask_json(r.json(), path)
    return r.text


async def run(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="vitals-answers-") as tmp:
        home = Path(tmp)
        kafka = LocalKafka(home / "kafka", cache_dir=JAR_CACHE)
        info = kafka.start(timeout=180.0)
        try:
            await _record(home, info.bootstrap, out)
        finally:
            kafka.stop()


async def _record(home: Path, bootstrap: str, out: Path) -> None:
    tag = uuid.uuid4().hex[:10]
    settings = Settings(kafka_bootstrap=bootstrap, clickhouse_dsn=f"chdb://{home / 'chdb'}",
                        data_dir=home / "data", clickhouse_database="answers",
                        topics=TopicNames(prefix=f"a{tag}-"), consumer_group=f"g{tag}",
                        api_port=0, batch_max_seconds=0.1, metrics_rate_limit=10_000,
                        statsd_port=None)
    clock = ManualClock(NOW)
    rt = Runtime(settings, clock=clock, statsd=False)
    await rt.start()
    try:
        assert rt.store is not None
        store = rt.store
        admin = (await store.call(lambda s: keys.create_key(s, "acme", "admin"))).key
        superadmin = (await store.call(lambda s: keys.create_key(s, "ops", "superadmin"))).key
        req, hb = requests_and_heartbeats()
        job_events, metric_events = jobs(), custom_metrics()
        async with Producer(bootstrap, settings.topics, clock=ManualClock(NOW)) as p:
            await p.send_many("requests", req)
            await p.send_many("heartbeats", hb)
            await p.send_many("jobs", job_events)
            await p.send_many("metrics", metric_events)
        http = httpx.AsyncClient(base_url=rt.api_url or "", timeout=60)
        auth = {"Authorization": f"Bearer {admin}"}
        body = "\n".join(json.dumps(e) for e in task_events()).encode()
        r = await http.post("/events.add_batch", content=body,
                            headers={**auth, "Content-Type": "application/json-lines"})
        assert r.status_code == 200, r.text
        db = settings.clickhouse_database
        await _wait(store, f"SELECT (SELECT sum(requests) FROM {db}.requests_1h FINAL), "
                           f"(SELECT count() FROM {db}.heartbeats_raw FINAL)",
                    (len(req), len(hb)))
        n_tasks = sum(1 for e in job_events if e["type"] == "task")
        await _wait(store, f"SELECT (SELECT count() FROM {db}.job_tasks FINAL), "
                           f"(SELECT count() FROM {db}.job_nodes FINAL)",
                    (n_tasks, len(job_events) - n_tasks))
        await _wait(store, f"SELECT count() FROM {db}.task_metric_events FINAL",
                    (len(task_events()) - 20,))
        await _wait(store, f"SELECT count() FROM {db}.task_log_events FINAL", (20,))
        await _wait_metrics(store, db, len(metric_events))
        # pricing needs the endpoint known (registered by its first stored request)
        r = await http.put("/v2/endpoints/11/pricing", headers=auth,
                           json={"gpuHourlyRate": 2.5, "currency": "USD"})
        assert r.status_code == 200, r.text
        await asyncio.sleep(1.0)
        answers: list[dict[str, Any]] = []
        for family, method, path, body_ in calls():
            headers = dict(auth)
            if family == "coopr" and "tenant=" not in path:
                headers = {"Coopr-UserID": "admin", "Coopr-ApiKey": admin,
                           "Coopr-TenantID": "acme"}
            if path in ("/sql", "/ui/api/dead-letters"):
                headers = {"Authorization": f"Bearer {superadmin}"}
            if body_ is not None and "query" in body_:
                body_ = {"query": body_["query"].replace("{db}", db)}
            resp = await http.request(method, path, json=body_, headers=headers)
            answers.append({"family": family, "call": f"{method} {path}",
                            "body": body_ if path != "/sql" else "SELECT … requests_raw",
                            "status": resp.status_code,
                            "content_type": resp.headers.get("content-type", ""),
                            "answer": _render(path, resp)})
        await http.aclose()
    finally:
        await rt.stop()
    text = json.dumps(answers, indent=1, sort_keys=True, ensure_ascii=False)
    out.write_text(text.replace(settings.topics.prefix, "<prefix>") + "\n")


async def _wait(store: Any, sql: str, want: tuple[Any, ...], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        rows = await store.rows(sql)
        last = tuple(rows[0]) if rows else None
        if last == want:
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"timed out: {sql} -> {last!r}, want {want!r}")


async def _wait_metrics(store: Any, db: str, n: int, timeout: float = 120) -> None:
    await _wait(store, f"SELECT toInt64(sum(count)) FROM {db}.metrics_1s FINAL", (n,), timeout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    asyncio.run(run(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
