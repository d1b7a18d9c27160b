"""The events actions the ClearML SDK defines beyond the original set: plots navigation, plot
samples, single-value metrics, raw scalar pages, clear_task_log, delete_for_model,
clear_scroll — exact values, clearml-server's shapes."""

from __future__ import annotations

import time

from query_api.clearml.histogram import SINGLE_SCALAR_ITERATION
from tests.integration.clearml.task_events_helpers import (
    BASE_MS,
    add_batch,
    data,
    log,
    scalar,
    wait_count,
)
from tests.integration.clearml.test_task_events_media import plot

V = "2.23"


def shape(evs):
    return [(e["metric"], e["variant"], e["iter"]) for e in evs]


async def test_more_events_actions(stack_factory):
    stack = await stack_factory()
    admin = await stack.key("acme", "admin")
    events = [plot("A", "roc", "a", i) for i in range(3)]
    events += [plot("A", "roc", "b", 1), plot("A", "cm", "x", 2)]
    events += [scalar("A", i, float(i), variant="train") for i in range(5)]
    events += [scalar("A", i, 10.0 - i, variant="val") for i in range(5)]
    events += [scalar("A", SINGLE_SCALAR_ITERATION, 0.9, metric="sv", variant="acc",
                      ts=BASE_MS + 7)]
    events += [log("A", i * 10, f"line {i}") for i in range(3)]
    events += [scalar("M", 0, 1.0), scalar("M", 1, 2.0)]
    status, doc = await add_batch(stack, admin, events)
    assert status == 200 and doc["data"]["added"] == len(events), doc
    await wait_count(stack, "task_metric_events", len(events) - 3)
    await wait_count(stack, "task_log_events", 3)
    key = await stack.key("acme", "reader")

    # plots: latest iteration of each metric first, then earlier ones through the scroll id
    page = await data(stack, key, "plots", {"metrics": [{"task": "A"}]}, V)
    assert [(m["task"], m["metric"], [(i["iter"], shape(i["events"])) for i in m["iterations"]])
            for m in page["metrics"]] == [
        ("A", "cm", [(2, [("cm", "x", 2)])]), ("A", "roc", [(2, [("roc", "a", 2)])])]
    page = await data(stack, key, "plots", {"metrics": [{"task": "A", "metric": "roc"}],
                                            "scroll_id": page["scroll_id"], "iters": 5}, V)
    assert [(i["iter"], shape(i["events"])) for i in page["metrics"][0]["iterations"]] == [
        (1, [("roc", "a", 1), ("roc", "b", 1)]), (0, [("roc", "a", 0)])]
    later = await data(stack, key, "plots", {"metrics": [{"task": "A", "metric": "roc"}],
                                             "navigate_earlier": False}, V)
    assert [i["iter"] for i in later["metrics"][0]["iterations"]] == [0]

    # plot samples: every variant of a metric at an iteration, then neighbours
    sample = await data(stack, key, "get_plot_sample", {"task": "A", "metric": "roc"}, V)
    assert (shape(sample["events"]), sample["min_iteration"], sample["max_iteration"]) == (
        [("roc", "a", 2)], 0, 2)
    at1 = await data(stack, key, "get_plot_sample", {"task": "A", "metric": "roc",
                                                     "iteration": 1}, V)
    assert shape(at1["events"]) == [("roc", "a", 1), ("roc", "b", 1)]
    prev = await data(stack, key, "next_plot_sample", {
        "task": "A", "scroll_id": sample["scroll_id"], "navigate_earlier": True}, V)
    assert shape(prev["events"]) == [("cm", "x", 2)]
    prev_iter = await data(stack, key, "next_plot_sample", {
        "task": "A", "scroll_id": sample["scroll_id"], "navigate_earlier": True,
        "next_iteration": True}, V)
    assert shape(prev_iter["events"]) == [("roc", "a", 1), ("roc", "b", 1)]
    last = await data(stack, key, "next_plot_sample", {"task": "A",
                                                       "scroll_id": sample["scroll_id"]}, V)
    assert shape(last["events"]) == [("roc", "a", 2)]  # nothing later: the same sample

    # single-value metrics
    single = await data(stack, key, "get_task_single_value_metrics", {"tasks": ["A", "M"]}, V)
    assert single == {"tasks": [{"task": "A", "task_name": "A", "values": [
        {"metric": "sv", "variant": "acc", "value": 0.9, "timestamp": BASE_MS + 7}]}]}

    # raw scalars, paged, every value once
    body = {"task": "A", "metric": {"metric": "loss"}, "batch_size": 3, "count_total": True}
    got: dict[str, list[tuple[int, float]]] = {}
    pages = 0
    while True:
        page = await data(stack, key, "scalar_metrics_iter_raw", body, V)
        assert page["total"] == 10
        if not page["returned"]:
            break
        pages += 1
        for variant, series in page["variants"].items():
            got.setdefault(variant, []).extend(zip(series["iter"], series["y"], strict=True))
        body = {**body, "scroll_id": page["scroll_id"]}
    assert pages == 4
    assert got == {"train": [(i, float(i)) for i in range(5)],
                   "val": [(i, 10.0 - i) for i in range(5)]}
    ts = await data(stack, key, "scalar_metrics_iter_raw",
                    {"task": "A", "metric": {"metric": "loss", "variants": ["val"]},
                     "key": "timestamp"}, V)
    assert ts["variants"] == {"val": {"y": [10.0 - i for i in range(5)],
                                      "timestamp": [BASE_MS + i * 1000 for i in range(5)]}}

    # clear_scroll: stateless scroll ids, nothing to release
    assert await data(stack, key, "clear_scroll", {"scroll_id": page["scroll_id"]}, V) == {}

    # clear_task_log: the lines older than threshold_sec, then all
    threshold = round(time.time() - (BASE_MS / 1000 + 15))
    cleared = await data(stack, admin, "clear_task_log", {"task": "A",
                                                          "threshold_sec": threshold}, V)
    assert cleared == {"deleted": 2}
    left = await data(stack, key, "get_task_log", {"task": "A"}, V)
    assert [e["msg"] for e in left["events"]] == ["line 2"]
    assert await data(stack, admin, "clear_task_log", {"task": "A"}, V) == {"deleted": 1}
    assert (await data(stack, key, "get_task_events", {"task": "A"}, V))["total"] == 16

    # delete_for_model: every event reported for the model id
    assert await data(stack, admin, "delete_for_model", {"model": "M"}, V) == {"deleted": 2}
    assert (await data(stack, key, "get_task_events", {"task": "M"}, V))["total"] == 0
