"""Metric reads: listings, scalar data, latest values, vector and scalar histograms with
downsampling checked against values computed by hand in the test."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from tests.integration.clearml.task_events_helpers import (
    BASE_MS,
    add_batch,
    call,
    data,
    scalar,
    wait_count,
)


def f(i: int) -> float:
    return float((i * 7) % 13 + i)


def workload() -> list[dict]:
    ev = [scalar("M", i, f(i), variant="train") for i in range(150)]
    ev += [scalar("M", i, f(i) * 2, variant="val", ts=BASE_MS + i * 1000 + 1)
           for i in range(0, 100, 10)]
    ev += [scalar("M", i, float(i), metric="acc", variant="top1", ts=BASE_MS + i * 1000 + 2)
           for i in range(5)]
    ev.append(scalar("M", -(2**31), 7.0, metric="single", variant="s", ts=BASE_MS + 3))
    ev += [{"type": "training_stats_vector", "task": "M", "iter": i, "metric": "vec",
            "variant": "v", "values": [i, i + 1.5], "timestamp": BASE_MS + i * 1000 + 4}
           for i in range(3)]
    ev += [scalar("M2", i, float(i), variant="train") for i in range(50)]
    return ev


async def loaded(stack_factory):
    stack = await stack_factory()
    admin = await stack.key("acme", "admin")
    ev = workload()
    status, doc = await add_batch(stack, admin, ev)
    assert status == 200 and doc["data"]["added"] == len(ev), doc
    await wait_count(stack, "task_metric_events", len(ev))
    return stack, await stack.key("acme", "reader")


def by_hand(points: list[tuple[int, float]], interval: int) -> dict:
    buckets: dict[int, list[float]] = {}
    for x, v in points:
        buckets.setdefault(math.floor(x / interval) * interval, []).append(v)
    xs = sorted(buckets)
    return {"x": xs, "y": [sum(buckets[b]) / len(buckets[b]) for b in xs],
            "y_min": [min(buckets[b]) for b in xs], "y_max": [max(buckets[b]) for b in xs]}


async def test_listings_latest_values_and_vectors(stack_factory):
    stack, key = await loaded(stack_factory)
    got = await data(stack, key, "get_task_metrics", {"tasks": ["M", "M2"]})
    assert got == {"metrics": [{"task": "M", "metrics": ["acc", "loss", "single", "vec"]},
                               {"task": "M2", "metrics": ["loss"]}]}
    got = await data(stack, key, "get_task_metrics",
                     {"tasks": ["M"], "event_type": "training_stats_vector"})
    assert got == {"metrics": [{"task": "M", "metrics": ["vec"]}]}
    got = await data(stack, key, "get_scalar_metrics_and_variants", {"task": "M"})
    assert got == {"metrics": {"acc": ["top1"], "loss": ["train", "val"], "single": ["s"]}}
    got = await data(stack, key, "get_vector_metrics_and_variants", {"task": "M"})
    assert got == {"metrics": {"vec": ["v"]}}
    got = await data(stack, key, "get_scalar_metric_data",
                     {"task": "M", "metric": "acc", "batch_size": 3})
    assert [(e["iter"], e["value"]) for e in got["events"]] == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert got["total"] == 5
    got = await data(stack, key, "get_scalar_metric_data",
                     {"task": "M", "metric": "acc", "scroll_id": got["scroll_id"]})
    assert [(e["iter"], e["value"]) for e in got["events"]] == [(3, 3.0), (4, 4.0)]
    got = await data(stack, key, "get_task_latest_scalar_values", {"task": "M"})
    assert got == {"last_iter": 149, "metrics": [
        {"name": "acc", "variants": [{"name": "top1", "last_value": 4.0,
                                      "last_100_value": 2.0}]},
        {"name": "loss", "variants": [
            {"name": "train", "last_value": f(149),
             "last_100_value": sum(f(i) for i in range(50, 150)) / 100},
            {"name": "val", "last_value": f(90) * 2,
             "last_100_value": sum(f(i) * 2 for i in range(0, 100, 10)) / 10}]},
        {"name": "single", "variants": [{"name": "s", "last_value": 7.0,
                                         "last_100_value": 7.0}]}]}
    got = await data(stack, key, "vector_metrics_iter_histogram",
                     {"task": "M", "metric": "vec", "variant": "v"})
    assert got == {"metric": "vec", "variant": "v", "iterations": [0, 1, 2],
                   "vectors": [[0.0, 1.5], [1.0, 2.5], [2.0, 3.5]]}


async def test_scalar_histograms_downsampled(stack_factory):
    stack, key = await loaded(stack_factory)
    got = await data(stack, key, "scalar_metrics_iter_histogram", {"task": "M", "samples": 10})
    train = [(i, f(i)) for i in range(150)]
    val = [(i, f(i) * 2) for i in range(0, 100, 10)]
    # 150 points >= 10 samples: interval ceil(150 / 10) = 15; val: ceil(91 / 10) = 10;
    # acc: 5 points < 10 samples: interval 1; the single value (iter -2**31) is left out.
    assert got == {
        "loss": {"train": {"name": "train", **by_hand(train, 15)},
                 "val": {"name": "val", **by_hand(val, 10)}},
        "acc": {"top1": {"name": "top1", **by_hand([(i, float(i)) for i in range(5)], 1)}},
    }
    assert len(got["loss"]["train"]["x"]) == 10
    assert got["loss"]["train"]["y"][0] == sum(f(i) for i in range(15)) / 15
    ts = await data(stack, key, "scalar_metrics_iter_histogram",
                    {"task": "M", "samples": 10, "key": "timestamp"})
    interval = math.ceil((149_000 + 1) / 10)
    assert ts["loss"]["train"] == {"name": "train", **by_hand(
        [(BASE_MS + i * 1000, f(i)) for i in range(150)], interval)}
    iso = await data(stack, key, "scalar_metrics_iter_histogram",
                     {"task": "M", "samples": 10, "key": "iso_time"})
    assert iso["loss"]["train"]["x"] == [
        datetime.fromtimestamp(x / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{x % 1000:03d}Z" for x in ts["loss"]["train"]["x"]]
    full = await data(stack, key, "scalar_metrics_iter_histogram", {"task": "M"})
    assert full["loss"]["train"]["x"] == list(range(150))
    multi = (await data(stack, key, "multi_task_scalar_metrics_iter_histogram",
                        {"tasks": ["M", "M2"], "samples": 25}))["metrics"]
    # clearml-server's shape; `name` is the task's name, its id for tasks no tasks.create made
    assert multi["loss"]["train"] == {
        "M": {"name": "M", **by_hand(train, 6)},
        "M2": {"name": "M2", **by_hand([(i, float(i)) for i in range(50)], 2)}}
    assert sorted(multi) == ["acc", "loss"] and sorted(multi["loss"]) == ["train", "val"]
    for body, param in (({"task": "M", "samples": 6001}, "samples"),
                        ({"task": "M", "key": "epoch"}, "key"),
                        ({"task": "M", "samples": -1}, "samples")):
        status, doc = await call(stack, key, "scalar_metrics_iter_histogram", body)
        assert status == 400 and doc["details"]["parameter"] == param, doc
    status, doc = await call(stack, key, "scalar_metrics_iter_histogram", {"task": "M",
                                                                          "key": "epoch"})
    assert doc["details"]["allowedValues"] == ["iter", "timestamp", "iso_time"]
    status, doc = await call(stack, key, "multi_task_scalar_metrics_iter_histogram",
                             {"tasks": [f"t{i}" for i in range(11)]})
    assert status == 400 and doc["details"]["parameter"] == "tasks"
    other = await stack.key("rival", "reader")
    status, doc = await call(stack, other, "multi_task_scalar_metrics_iter_histogram",
                             {"tasks": ["M"]})
    assert status == 403
