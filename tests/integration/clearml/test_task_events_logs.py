"""get_task_log (2.9 and 1.7 behaviours) and download_task_log, exact lines."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import orjson

from pipeline.ingest.rows.task_events import request_log_id
from query_api.clearml import task_events_store as task_events_db
from query_api.clearml import task_log
from tests.integration.clearml.task_events_helpers import (
    BASE_MS,
    add_batch,
    call,
    data,
    log,
    wait_count,
)

TS = [BASE_MS + i * 1000 + (-1000 if i == 6 else 0) + 7 for i in range(12)]  # 5 and 6 tie
LEVELS = ["info", "error", "warning"]


def lines() -> list[dict]:
    return [log("L", i, f"m{i}", level=LEVELS[i % 3], ts=TS[i]) for i in range(12)]


async def loaded(stack_factory):
    stack = await stack_factory()
    key = await stack.key("acme", "reader")
    admin = await stack.key("acme", "admin")
    status, doc = await add_batch(stack, admin, lines())
    assert status == 200, doc
    await wait_count(stack, "task_log_events", 12)
    return stack, key


def msgs(page: dict) -> list[str]:
    return [e["msg"] for e in page["events"]]


async def test_get_task_log_v29_and_v17(stack_factory):
    stack, key = await loaded(stack_factory)
    page = await data(stack, key, "get_task_log", {"task": "L", "batch_size": 5})
    assert msgs(page) == ["m11", "m10", "m9", "m8", "m7"]
    assert page["returned"] == 5 and page["total"] == 12
    assert page["events"][0] == {"type": "log", "task": "L", "timestamp": TS[11],
                                 "@timestamp": page["events"][0]["@timestamp"],
                                 "level": "warning", "worker": "w1", "msg": "m11",
                                 "id": page["events"][0]["id"]}
    # HTTP ingest's idempotency key: (tenant, body) digest + line number (m11 is line 12)
    body = b"\n".join(orjson.dumps(e) for e in lines())
    digest = hashlib.blake2b(b"acme\0" + body, digest_size=12).hexdigest()
    assert page["events"][0]["id"] == request_log_id(digest, 12)
    nxt = await data(stack, key, "get_task_log",
                     {"task": "L", "batch_size": 5, "scroll_id": page["scroll_id"]})
    assert msgs(nxt) == ["m6", "m5", "m4", "m3", "m2"]
    asc = await data(stack, key, "get_task_log", {"task": "L", "batch_size": 5, "order": "asc"})
    assert msgs(asc) == ["m7", "m8", "m9", "m10", "m11"]
    later = await data(stack, key, "get_task_log",
                       {"task": "L", "batch_size": 5, "navigate_earlier": False})
    assert msgs(later) == ["m0", "m1", "m2", "m3", "m4"]
    later_desc = await data(stack, key, "get_task_log", {
        "task": "L", "batch_size": 3, "navigate_earlier": False, "order": "desc",
        "from_timestamp": TS[2]})
    assert msgs(later_desc) == ["m5", "m4", "m3"]  # m5 and m6 tie: source order breaks it
    earlier = await data(stack, key, "get_task_log",
                         {"task": "L", "batch_size": 4, "from_timestamp": TS[7]})
    assert msgs(earlier) == ["m6", "m5", "m4", "m3"]
    # 1.7: from head / tail with scroll ids
    got, sid = [], None
    for _ in range(4):
        body = {"task": "L", "batch_size": 5, **({"scroll_id": sid} if sid else {})}
        page = await data(stack, key, "get_task_log", body, version="1.7")
        sid = page["scroll_id"]
        got.append(msgs(page))
    assert got == [["m0", "m1", "m2", "m3", "m4"], ["m5", "m6", "m7", "m8", "m9"],
                   ["m10", "m11"], []]
    tail = await data(stack, key, "get_task_log", {"task": "L", "batch_size": 5,
                                                   "from": "tail"})
    assert msgs(tail) == ["m7", "m8", "m9", "m10", "m11"]
    tail2 = await data(stack, key, "get_task_log", {"task": "L", "batch_size": 5, "from": "tail",
                                                    "order": "desc",
                                                    "scroll_id": tail["scroll_id"]})
    assert msgs(tail2) == ["m6", "m5", "m4", "m3", "m2"]
    # get_task_events in desc order pages through the log exactly once, ties included
    got, sid = [], None
    while True:
        body = {"task": "L", "order": "desc", "batch_size": 5,
                **({"scroll_id": sid} if sid else {})}
        page = await data(stack, key, "get_task_events", body)
        if not page["events"]:
            break
        sid = page["scroll_id"]
        got += msgs(page)
    assert got == [f"m{i}" for i in sorted(range(12), key=lambda i: (TS[i], i), reverse=True)]
    status, doc = await call(stack, key, "get_task_log", {"task": "L", "from": "middle"})
    assert status == 400 and doc["details"]["allowedValues"] == ["head", "tail"]


def asctime(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S") + \
        f",{ms % 1000:03d}"


async def test_download_task_log(stack_factory, monkeypatch):
    stack, key = await loaded(stack_factory)
    monkeypatch.setattr(task_log, "CHUNK", 5)  # walk several chunks
    order = sorted(range(12), key=lambda i: (TS[i], i))
    headers = {"Authorization": f"Bearer {key}"}
    r = await stack.http.post("/events.download_task_log",
                              json={"task": "L", "line_type": "text"}, headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="task_L.log"'
    assert r.text == "".join(f"{asctime(TS[i])} w1 {LEVELS[i % 3]} m{i}\n" for i in order)
    r = await stack.http.post("/events.download_task_log", headers=headers, json={
        "task": "L", "line_type": "text", "line_format": "{timestamp}|{level}|{msg}|{{x}}"})
    assert r.text == "".join(f"{TS[i]}|{LEVELS[i % 3]}|m{i}|{{x}}\n" for i in order)
    r = await stack.http.post("/events.download_task_log", json={"task": "L"}, headers=headers)
    assert r.headers["content-disposition"] == 'attachment; filename="task_L.jsonl"'
    assert [orjson.loads(x) for x in r.content.splitlines()] == [
        {"timestamp": TS[i], "asctime": asctime(TS[i]), "level": LEVELS[i % 3],
         "worker": "w1", "msg": f"m{i}"} for i in order]
    for fmt in ("{asctime} {foo}", "{msg!r}", "{}", "{msg"):
        status, doc = await call(stack, key, "download_task_log",
                                 {"task": "L", "line_type": "text", "line_format": fmt})
        assert status == 400, fmt
        assert doc["details"]["parameter"] == "line_format"
        assert doc["details"]["allowedValues"] == ["asctime", "level", "msg", "timestamp",
                                                   "worker"]
    status, doc = await call(stack, key, "download_task_log", {"task": "L", "line_type": "xml"})
    assert status == 400 and doc["details"]["allowedValues"] == ["json", "text"]


async def test_large_log_lines_are_paged_by_size(stack_factory, monkeypatch):
    stack = await stack_factory()
    admin = await stack.key("acme", "admin")
    big = [log("B", i, f"{i}:" + "x" * 5000) for i in range(6)]
    status, _ = await add_batch(stack, admin, big)
    assert status == 200
    await wait_count(stack, "task_log_events", 6)
    monkeypatch.setattr(task_events_db, "PAGE_BYTES", 12_000)
    monkeypatch.setattr(task_log, "CHUNK_BYTES", 12_000)
    got, sid = [], None
    while True:
        body = {"task": "B", "navigate_earlier": False, **({"scroll_id": sid} if sid else {})}
        page = await data(stack, admin, "get_task_log", body)
        if not page["events"]:
            break
        assert page["returned"] <= 2
        sid = page["scroll_id"]
        got += [e["msg"].split(":")[0] for e in page["events"]]
    assert got == [str(i) for i in range(6)]
    r = await stack.http.post("/events.download_task_log", headers={
        "Authorization": f"Bearer {admin}"}, json={"task": "B", "line_type": "text",
                                                  "line_format": "{msg}"})
    assert r.text == "".join(e["msg"] + "\n" for e in big)
