"""The msgspec fast path of decoding never accepts what the Python validators reject, and when
it accepts, it yields the same events: checked over thousands of mutated envelopes."""

from __future__ import annotations

import gc
import random
from typing import Any

import orjson
import pytest

import schemas
from pipeline.ingest.decode import (
    EVENT_TYPES,
    EventChecker,
    _decode_fast,
    decode_envelope,
    decode_structs,
)
from pipeline.ingest.rows.requests import SinkBatch

NOW_MS = 1_800_000_000_000

BASE = {
    "requests": {"v": 1, "type": "request", "ts": NOW_MS / 1000 - 3, "tenant": "acme",
                 "endpoint_id": 7, "endpoint": "ep", "autogroup_id": 70, "worker_id": 3,
                 "status": 200, "latency_ms": 41.5, "queue_ms": 2, "work_units": 2,
                 "tokens_in": 10, "tokens_out": 20, "cold_start": False, "cold_start_ms": 0,
                 "error_kind": "", "gpu_seconds": 0.1, "bytes_out": 100, "id": "e-1"},
    "heartbeats": {"v": 1, "type": "heartbeat", "ts": NOW_MS, "tenant": "acme",
                   "endpoint_id": 7, "autogroup_id": 70, "id": 3, "loadtime": 1.5,
                   "cur_load": 3, "max_perf": 120.0, "num_requests_working": 2,
                   "num_requests_recieved": 5, "error_msg": "", "gpu_util": 55.5},
    "jobs": {"v": 1, "type": "task", "ts": NOW_MS / 1000, "tenant": "acme", "user": "ann",
             "task_id": "t-1", "state": "queued", "cluster": "c1"},
    "jobs-node": {"v": 1, "type": "node", "ts": NOW_MS / 1000, "tenant": "acme",
                  "user": "ann", "cluster": "c1", "node_id": "n-1", "state": "up"},
}

ODD_VALUES: list[Any] = [None, True, False, 0, -1, 1, 1.0, 2.5, -0.0, 99, 100, 599, 600,
                         2**53, 2**63 - 1, 2**64 - 1, 1e12, 1e13, 86_400_000, 86_400_001, "",
                         "x", "200", "a" * 129, "a" * 4097, [], {}, [1], {"a": 1},
                         "timeout", "meteor", 946_684_799, 946_684_800,
                         NOW_MS / 1000 + 301, NOW_MS + 299_000, "queued", "up", "down",
                         "node", "task", "request"]


def mutate(rng: random.Random, event: dict[str, Any], kind: str) -> dict[str, Any]:
    e = dict(event)
    props = list(schemas.load(EVENT_TYPES[kind][event["type"]])["properties"])
    for _ in range(rng.randint(0, 3)):
        roll = rng.random()
        if roll < 0.6:
            e[rng.choice(props)] = rng.choice(ODD_VALUES)
        elif roll < 0.8 and e:
            e.pop(rng.choice(list(e)))
        else:
            e[rng.choice(["surprise", "extra", "pyworker_field"])] = rng.choice(ODD_VALUES)
    return e


def stored(kind: str, event: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    """An event as its columns will hold it: "number" fields are Float64 (an integer given to
    one is stored as a float either way), every other value keeps its exact type."""
    props = schemas.load(EVENT_TYPES[kind][event["type"]])["properties"]
    return {name: (float, float(v)) if props[name].get("type") == "number" else (type(v), v)
            for name, v in event.items()}


@pytest.mark.parametrize("case", ["requests", "heartbeats", "jobs", "jobs-node"])
def test_fast_path_agrees_with_python_validators(case: str) -> None:
    kind = case.split("-")[0]
    rng = random.Random(20261123)
    accepted = rejected = 0
    for _ in range(3000):
        bases = [BASE[c] for c in BASE if c.split("-")[0] == kind]
        events = [mutate(rng, rng.choice(bases), kind) for _ in range(rng.randint(1, 4))]
        value = orjson.dumps(events if rng.random() < 0.8 else events[0],
                             option=orjson.OPT_PASSTHROUGH_DATACLASS)
        checker = EventChecker(kind, now_ms=NOW_MS, max_future_ms=300_000,
                               max_age_ms=30 * 86_400_000)
        fast = _decode_fast(value, kind, checker)
        items = orjson.loads(value)
        items = items if isinstance(items, list) else [items]
        slow: list[Any] = []
        for item in items:
            try:
                slow.append(checker(item))
            except schemas.SchemaViolation:
                slow.append(None)
        if fast is None:
            rejected += 1
            continue
        accepted += 1
        assert None not in slow, (value, fast)
        assert [stored(kind, e) for e in fast] == [stored(kind, e) for e in slow]
    assert accepted > 300 and rejected > 300


def test_fallback_names_every_bad_event() -> None:
    good = dict(BASE["requests"])
    value = orjson.dumps([good, {**good, "status": 200.0}, {**good, "status": "x"}])
    out = decode_envelope(value, "requests", now_ms=NOW_MS, max_future_ms=300_000,
                          max_bytes=1 << 20)
    assert [i for i, _ in out.events] == [0, 1]
    assert out.events[1][1]["status"] == 200 and type(out.events[1][1]["status"]) is int
    assert [(r.index, r.reason) for r in out.rejects] == [
        (2, "status: expected integer, got string")]


def test_columnar_path_builds_the_rows_of_the_dict_path() -> None:
    """`decode_structs` + `SinkBatch.add_request_structs` (the requests hot path) against
    `decode_envelope` + `SinkBatch.add_requests`: identical Native blocks and registry rows,
    over envelopes mixing tenants, endpoints, autogroups, event orders, ids and failures."""
    rng = random.Random(7)
    limits = {"now_ms": NOW_MS, "max_future_ms": 300_000, "max_bytes": 1 << 20,
              "max_age_ms": 30 * 86_400_000}
    columnar, fallback = SinkBatch(), SinkBatch()
    endpoints: dict[tuple[Any, ...], int] = {}
    autogroups: dict[tuple[Any, ...], int] = {}
    taken = 0
    for offset in range(2000):
        events = []
        for _ in range(rng.randint(1, 6)):
            e = {**BASE["requests"], "tenant": rng.choice(["acme", "beta", "ünï"]),
                 "endpoint_id": rng.choice([7, 8]),
                 "endpoint": rng.choice(["ep", f"ep-{offset}"]),
                 "autogroup_id": rng.choice([70, 1000 + offset]),
                 "status": rng.choice([200, 404, 503]),
                 "error_kind": rng.choice(["", "", "timeout"]),
                 "ts": NOW_MS / 1000 - rng.randint(0, 5000) / 1000,
                 "id": rng.choice(["e-1", "é" * 100, "x" * 128])}
            if rng.random() < 0.5:
                del e["id"]
            if rng.random() < 0.3:
                del e["tenant"], e["autogroup_id"], e["work_units"]
            if rng.random() < 0.05:
                e = mutate(rng, e, "requests")
            events.append(e)
        if rng.random() < 0.5:  # in time order: the registry's dict(zip()) shortcut
            events.sort(key=lambda e: e["ts"] if type(e.get("ts")) is float else 0.0)
        value = orjson.dumps(events if len(events) > 1 or rng.random() < 0.5 else events[0])
        fast = decode_structs(value, "requests", **limits)
        slow = decode_envelope(value, "requests", **limits)
        if fast is None:
            continue
        taken += 1
        assert not slow.rejects, value
        columnar.add_request_structs(offset % 3, offset, *fast)
        fallback.add_requests(offset % 3, offset, slow.events)
        for _, e in slow.events:  # the registries: the latest event time per key
            for key, ref in (((e["tenant"], e["endpoint_id"], e["endpoint"]), endpoints),
                             ((e["tenant"], e["autogroup_id"], e["endpoint_id"]), autogroups)):
                ref[key] = max(ref.get(key, -1), e["ts"])
    assert taken > 1500
    assert columnar.raw_rows("requests_raw") == fallback.raw_rows("requests_raw")
    tables = columnar.tables()
    assert tables == fallback.tables()
    assert len(columnar) == len(fallback) > 5000
    rows = {table: list(zip(*cols, strict=True)) for table, _, cols in tables
            if table in ("endpoints", "autogroups")}
    assert sorted(rows["endpoints"]) == sorted((*k, ts) for k, ts in endpoints.items())
    assert sorted(rows["autogroups"]) == sorted((*k, ts) for k, ts in autogroups.items())


def test_event_structs_do_not_count_towards_garbage_collections() -> None:
    """Every field of an event struct is a scalar (no cycle can form), so the struct type is
    not a garbage-collected type (`schemas.fast._Kind`): decoding a worker batch neither sets
    off collections nor is walked by them."""
    checked = 0
    for kind, base in BASE.items():
        value = orjson.dumps([base] * 500)
        gc.disable()
        try:
            before = gc.get_count()[0]
            events = decode_structs(value, kind.split("-")[0], now_ms=NOW_MS,
                                    max_future_ms=300_000, max_bytes=1 << 20, max_age_ms=None)
            allocated = gc.get_count()[0] - before
        finally:
            gc.enable()
        if events is None:  # a kind without the columnar fast path
            continue
        assert len(events[0]) == 500 and not gc.is_tracked(events[0][0])
        # a GC type would count every event (652 here for the 500); the rest is the decoder's
        assert allocated < len(events[0]) // 2, (kind, allocated)
        checked += 1
    assert checked
