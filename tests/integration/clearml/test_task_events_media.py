"""Plots, debug images (2.1 / 2.7 shapes, sample navigation) and delete_for_task."""

from __future__ import annotations

import orjson

from query_api.clearml import task_events_store as task_events_db
from tests.integration.clearml.task_events_helpers import BASE_MS, add_batch, call, data, wait_count


def plot(task: str, metric: str, variant: str, i: int, plot_str: str | None = None) -> dict:
    return {"type": "plot", "task": task, "metric": metric, "variant": variant, "iter": i,
            "timestamp": BASE_MS + i * 1000,
            "plot_str": plot_str or orjson.dumps({"data": [i], "v": variant}).decode()}


def image(task: str, metric: str, variant: str, i: int) -> dict:
    return {"type": "training_debug_image", "task": task, "metric": metric, "variant": variant,
            "iter": i, "timestamp": BASE_MS + i * 1000, "key": f"{metric}/{variant}",
            "url": f"s3://b/{variant}/{i}.png"}


BIG = orjson.dumps({"data": [{"x": list(range(150_000)), "y": [0.5] * 150_000}]}).decode()


async def test_plots(stack_factory, monkeypatch):
    stack = await stack_factory()
    admin = await stack.key("acme", "admin")
    ev = [plot("P", "roc", v, i) for v in ("a", "b") for i in range(3)]
    ev += [plot("P", "cm", "x", 5), plot("P2", "roc", "a", 7), plot("P", "big", "z", 0, BIG)]
    assert len(BIG) > 1_500_000
    status, doc = await add_batch(stack, admin, ev)
    assert status == 200 and doc["data"]["added"] == 9, doc
    await wait_count(stack, "task_metric_events", 9)
    key = await stack.key("acme", "reader")
    page = await data(stack, key, "get_task_plots", {"task": "P", "iters": 2, "batch_size": 4})
    seen = [(e["metric"], e["variant"], e["iter"]) for e in page["plots"]]
    assert seen == [("big", "z", 0), ("cm", "x", 5), ("roc", "a", 2), ("roc", "a", 1)]
    assert page["total"] == 6 and page["returned"] == 4
    assert page["plots"][0]["plot_str"] == BIG
    assert orjson.loads(page["plots"][2]["plot_str"]) == {"data": [2], "v": "a"}
    page2 = await data(stack, key, "get_task_plots",
                       {"task": "P", "iters": 2, "batch_size": 4, "scroll_id": page["scroll_id"]})
    assert [(e["metric"], e["variant"], e["iter"]) for e in page2["plots"]] == [
        ("roc", "b", 2), ("roc", "b", 1)]
    page3 = await data(stack, key, "get_task_plots",
                       {"task": "P", "iters": 2, "scroll_id": page2["scroll_id"]})
    assert page3["plots"] == [] and page3["total"] == 6
    status, doc = await call(stack, key, "get_task_plots",
                             {"task": "P", "iters": 3, "scroll_id": page["scroll_id"]})
    assert (status, doc["error"]) == (400, "INVALID_SCROLL_ID")
    latest = await data(stack, key, "get_task_plots", {"task": "P"})
    assert [(e["metric"], e["variant"], e["iter"]) for e in latest["plots"]] == [
        ("big", "z", 0), ("cm", "x", 5), ("roc", "a", 2), ("roc", "b", 2)]
    multi = await data(stack, key, "get_multi_task_plots", {"tasks": ["P", "P2"]})
    assert multi["total"] == 5 and multi["returned"] == 5
    assert sorted(multi["plots"]["roc"]["a"]) == ["P", "P2"]
    node = multi["plots"]["roc"]["a"]["P2"]["7"]
    assert node["name"] == "P2" and [e["iter"] for e in node["plots"]] == [7]
    assert list(multi["plots"]["roc"]["a"]["P"]) == ["2"]
    # plots are stored compressed (the big plot dominates the table)
    rows = await stack.rows(
        "SELECT sum(data_compressed_bytes) * 3 < sum(data_uncompressed_bytes) FROM system.parts "
        "WHERE database = '{db}' AND table = 'task_metric_events' AND active")
    assert rows == [(1,)]
    # pages stop at PAGE_BYTES of event data (but hold at least one event)
    monkeypatch.setattr(task_events_db, "PAGE_BYTES", 1_000_000)
    small = await data(stack, key, "get_task_plots", {"task": "P", "iters": 2, "batch_size": 10})
    assert [e["metric"] for e in small["plots"]] == ["big"]
    rest = await data(stack, key, "get_task_plots", {"task": "P", "iters": 2, "batch_size": 10,
                                                     "scroll_id": small["scroll_id"]})
    assert rest["returned"] == 5
    seen, sid = [], None
    while True:
        body = {"task": "P", "batch_size": 10, **({"scroll_id": sid} if sid else {})}
        page = await data(stack, key, "get_task_events", body)
        if not page["events"]:
            break
        sid = page["scroll_id"]
        sizes = sorted(len(e.get("plot_str", "")) for e in page["events"])
        assert sum(sizes[:-1]) <= 1_000_000
        seen += [(e["metric"], e["variant"], e["iter"]) for e in page["events"]]
    assert sorted(seen) == sorted([("roc", v, i) for v in "ab" for i in range(3)]
                                  + [("cm", "x", 5), ("big", "z", 0)])


async def test_debug_images_navigation_and_delete(stack_factory):
    stack = await stack_factory()
    admin = await stack.key("acme", "admin")
    ev = [image("D", "img", "v1", i) for i in range(4)]
    ev += [image("D", "img", "v2", i) for i in range(3)]
    ev += [image("D", "mask", "m", i) for i in (0, 2)]
    status, doc = await add_batch(stack, admin, ev)
    assert status == 200, doc
    await wait_count(stack, "task_metric_events", 9)
    key = await stack.key("acme", "reader")

    v21 = await data(stack, key, "debug_images", {"task": "D"}, version="2.1")
    assert v21["task"] == "D" and v21["total"] == 3
    assert [(e["metric"], e["variant"], e["iter"], e["url"]) for e in v21["images"]] == [
        ("img", "v1", 3, "s3://b/v1/3.png"), ("img", "v2", 2, "s3://b/v2/2.png"),
        ("mask", "m", 2, "s3://b/m/2.png")]

    def shape(d: dict) -> list:
        return [(m["task"], m["metric"], [(it["iter"], [e["variant"] for e in it["events"]])
                                          for it in m["iterations"]]) for m in d["metrics"]]

    p1 = await data(stack, key, "debug_images", {"metrics": [{"task": "D", "metric": "img"}],
                                                 "iters": 2})
    assert shape(p1) == [("D", "img", [(3, ["v1"]), (2, ["v1", "v2"])])]
    p2 = await data(stack, key, "debug_images", {"metrics": [{"task": "D", "metric": "img"}],
                                                 "iters": 2, "scroll_id": p1["scroll_id"]})
    assert shape(p2) == [("D", "img", [(1, ["v1", "v2"]), (0, ["v1", "v2"])])]
    p3 = await data(stack, key, "debug_images", {"metrics": [{"task": "D", "metric": "img"}],
                                                 "iters": 2, "scroll_id": p2["scroll_id"]})
    assert shape(p3) == [("D", "img", [])]
    fresh = await data(stack, key, "debug_images", {
        "metrics": [{"task": "D", "metric": "img"}], "iters": 1, "refresh": True,
        "scroll_id": p2["scroll_id"]})
    assert shape(fresh) == [("D", "img", [(3, ["v1"])])]
    fwd = await data(stack, key, "debug_images", {"metrics": [{"task": "D"}], "iters": 1,
                                                  "navigate_earlier": False})
    assert shape(fwd) == [("D", "img", [(0, ["v1", "v2"])]), ("D", "mask", [(0, ["m"])])]
    assert fwd["metrics"][1]["iterations"][0]["events"][0]["url"] == "s3://b/m/0.png"

    s = await data(stack, key, "get_debug_image_sample",
                   {"task": "D", "metric": "img", "variant": "v2"})
    assert (s["event"]["iter"], s["min_iteration"], s["max_iteration"]) == (2, 0, 2)
    s = await data(stack, key, "get_debug_image_sample",
                   {"task": "D", "metric": "img", "variant": "v2", "iteration": 1})
    assert s["event"]["url"] == "s3://b/v2/1.png"
    walk = []
    for _ in range(4):
        s = await data(stack, key, "next_debug_image_sample",
                       {"task": "D", "scroll_id": s["scroll_id"]})
        walk.append((s["event"]["iter"], s["event"]["variant"], s["min_iteration"],
                     s["max_iteration"]))
    assert walk == [(2, "v1", 0, 3), (2, "v2", 0, 2), (3, "v1", 0, 3), (3, "v1", 0, 3)]
    back = await data(stack, key, "next_debug_image_sample",
                      {"task": "D", "scroll_id": s["scroll_id"], "navigate_earlier": True})
    assert (back["event"]["iter"], back["event"]["variant"]) == (2, "v2")
    status, doc = await call(stack, key, "next_debug_image_sample",
                             {"task": "D", "scroll_id": s["scroll_id"][:-3] + "xyz"})
    assert (status, doc["error"]) == (400, "INVALID_SCROLL_ID")
    status, doc = await call(stack, key, "next_debug_image_sample", {"task": "D"})
    assert status == 400 and doc["details"]["parameter"] == "scroll_id"

    # delete: readers may not; admins get the count; reads afterwards see nothing
    status, doc = await call(stack, key, "delete_for_task", {"task": "D"})
    assert (status, doc["error"]) == (403, "INSUFFICIENT_PERMISSIONS")
    status, doc = await call(stack, admin, "delete_for_task", {"task": "D", "allow_locked": 1})
    assert status == 400 and doc["details"]["parameter"] == "allow_locked"
    assert await data(stack, admin, "delete_for_task", {"task": "D"}) == {"deleted": 9}
    after = await data(stack, key, "get_task_events", {"task": "D"})
    assert (after["events"], after["total"]) == ([], 0)
    after = await data(stack, key, "debug_images", {"task": "D"})
    assert (after["images"], after["total"]) == ([], 0)
    assert await data(stack, admin, "delete_for_task", {"task": "D"}) == {"deleted": 0}
