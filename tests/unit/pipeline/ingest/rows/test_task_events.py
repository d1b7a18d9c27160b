"""Task events, pure parts: per-type validation, rows and identities, downsampling, scroll ids,
log line formats, page parsing."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from pipeline.ingest.decode import decode_envelope
from pipeline.ingest.rows.requests import SinkBatch
from pipeline.ingest.rows.task_events import (
    LOG_COLUMNS,
    METRIC_COLUMNS,
    add_task_events,
    log_event_id,
    metric_event_id,
)
from query_api.clearml import histogram
from query_api.clearml.scroll import ScrollCodec, ScrollIdInvalid, load_secret
from query_api.clearml.task_events_store import Page
from query_api.clearml.task_log import compile_format
from query_api.errors import ApiError

NOW = int(time.time() * 1000)


def decode(events: list[dict]) -> tuple[list[dict], list[str]]:
    d = decode_envelope(orjson.dumps(events), "task-events", now_ms=NOW, max_future_ms=300_000,
                        max_bytes=1 << 22)
    return [e for _, e in d.events], [r.reason for r in d.rejects]


def test_per_type_validation_and_defaults():
    ok, bad = decode([
        {"type": "training_stats_scalar", "task": "t", "value": 1},
        {"type": "training_stats_vector", "task": "t", "values": [1, 2.5], "iter": 3.0},
        {"type": "training_debug_image", "task": "t", "url": "s3://x"},
        {"type": "plot", "task": "t", "plot_str": "{\"a\": 1}", "timestamp": NOW / 1000},
        {"type": "log", "task": "t", "msg": "hi", "extra": "ignored"},
    ])
    assert bad == []
    scalar, vector, image, plot, log = ok
    assert scalar["timestamp"] == NOW and scalar["iter"] == 0
    assert (scalar["metric"], scalar["variant"], scalar["tenant"]) == ("", "", "default")
    assert vector["iter"] == 3 and image["key"] == "" and plot["timestamp"] == NOW
    assert log["level"] == "info" and "extra" not in log
    _, bad = decode([
        {"type": "training_stats_scalar", "task": "t"},
        {"type": "training_stats_scalar", "task": "t", "value": 1, "iter": 2**63},
        {"type": "training_stats_vector", "task": "t", "values": [1, None]},
        {"type": "plot", "task": "t", "plot_str": "nope"},
        {"type": "log", "task": "t", "level": "loud"},
        {"type": "log"},
        {"type": "log", "task": ""},
        {"type": "metric", "task": "t"},
    ])
    assert bad[0] == "value: required field is missing"
    assert bad[1] == "iter: 9223372036854775808 is above the maximum 9223372036854775807"
    assert bad[2] == "values[1]: expected number, got null"
    assert bad[3].startswith("plot_str: not valid JSON") and "skip_validation" in bad[3]
    assert bad[4].startswith("level: 'loud' is not one of 'notset'")
    assert bad[5] == "task: required field is missing"
    assert bad[6] == "task: shorter than 1 characters"
    assert bad[7].startswith("type: 'metric' is not an event type of this topic")
    ok, bad = decode([{"type": "plot", "task": "t", "plot_str": "nope",
                       "skip_validation": True}])
    assert bad == [] and ok[0]["plot_str"] == "nope"


def test_rows_identity_and_owners():
    events = [
        (0, {"tenant": "a", "task": "t", "type": "training_stats_scalar", "timestamp": 5,
             "iter": 1, "metric": "m", "variant": "v", "value": 2, "worker": ""}),
        (1, {"tenant": "a", "task": "t", "type": "log", "timestamp": 9, "level": "info",
             "worker": "w", "msg": "x"}),
    ]
    batch = SinkBatch()
    add_task_events(batch, 2, 7, events)
    tables = {t: dict(zip(names, cols, strict=True)) for t, names, cols in batch.tables()}
    m = tables["task_metric_events"]
    assert tuple(m) == METRIC_COLUMNS
    assert m["event_id"] == [metric_event_id("training_stats_scalar", 1, "m", "v", "")]
    assert m["version"] == [(7 << 20) | 0] and m["value"] == [2.0]
    lg = tables["task_log_events"]
    assert tuple(lg) == LOG_COLUMNS and lg["event_id"] == [log_event_id(2, 7, 1)]
    assert tables["task_owners"] == {"task": ["t", "t"], "tenant": ["a", "a"],
                                     "kind": ["metrics", "logs"], "last_seen": [5, 9]}
    assert len(batch) == 2
    # identity: the key (or url) separates images; logs order by source position
    assert metric_event_id("plot", 1, "m", "v", "") != metric_event_id("plot", 2, "m", "v", "")
    assert log_event_id(0, 9, 5) < log_event_id(0, 10, 0) < log_event_id(1, 0, 0)


def test_interval_rule_and_downsample():
    assert histogram.interval_for(99, 0, 98, 100) == 1
    assert histogram.interval_for(150, 0, 149, 10) == 15
    assert histogram.interval_for(10, 0, 90, 10) == 10
    assert histogram.interval_for(1000, 0, 999, 3) == 334
    assert histogram.bucket_of(-7, 5) == -10 and histogram.bucket_of(7, 5) == 5
    interval, pts = histogram.downsample([(i, float(i % 4)) for i in range(10)], 3)
    # ceil(10 / 3) = 4: buckets 0..3, 4..7, 8..9
    assert interval == 4
    assert pts == [(0, 1.5, 0.0, 3.0), (4, 1.5, 0.0, 3.0), (8, 0.5, 0.0, 1.0)]
    assert histogram.downsample([], 5) == (1, [])


def test_scroll_ids_signed_and_scoped(tmp_path: Path):
    codec = ScrollCodec(b"k1")
    sid = codec.encode({"a": "events", "t": "acme", "k": "t1", "ts": 5, "id": "x"})
    assert codec.decode(sid, {"a": "events", "t": "acme"})["ts"] == 5
    with pytest.raises(ScrollIdInvalid) as err:
        codec.decode(sid, {"t": "rival"})
    assert err.value.reason == "foreign"
    with pytest.raises(ScrollIdInvalid) as err:
        ScrollCodec(b"k2").decode(sid, {})
    assert err.value.reason == "tampered"
    for bad in ("", "a.b.c", "!!!.???", "abc"):
        with pytest.raises(ScrollIdInvalid) as err:
            codec.decode(bad, {})
        assert err.value.reason in ("malformed", "tampered")
    # the secret: configured wins; else generated once into the data dir and reused
    assert load_secret("s3cret", tmp_path) == b"s3cret"
    first = load_secret(None, tmp_path / "d")
    assert load_secret(None, tmp_path / "d") == first and len(first) >= 32
    assert (tmp_path / "d" / "scroll-secret").stat().st_mode & 0o777 == 0o600


def test_line_format_compiles_to_sql_or_400():
    expr, params = compile_format("{asctime} [{level}] {msg}")
    assert params == {"lit0": " [", "lit1": "] "}
    assert expr.startswith("concat(concat(formatDateTime(timestamp")
    assert compile_format("plain") == ("concat({lit0:String}, '')", {"lit0": "plain"})
    for bad in ("{nope}", "{msg:>5}", "{msg!r}", "{}", "{msg", "}"):
        with pytest.raises(ApiError) as err:
            compile_format(bad)
        assert err.value.details["parameter"] == "line_format"
        assert err.value.details["allowedValues"] == ["asctime", "level", "msg", "timestamp",
                                                      "worker"]


def test_page_parse_and_json():
    data = b'{"timestamp":1,"id":"a"}\n{"timestamp":2,"id":"b","msg":"x\\ny"}\n'
    page = Page.parse(data)
    assert (page.count, page.last, page.span_ms) == (2, (2, "b"), 1)
    assert orjson.loads(orjson.dumps(page.json())) == [
        {"timestamp": 1, "id": "a"}, {"timestamp": 2, "id": "b", "msg": "x\ny"}]
    assert [e["id"] for e in orjson.loads(orjson.dumps(page.json(reverse=True)))] == ["b", "a"]
    empty = Page.parse(b"")
    assert (empty.count, empty.last, orjson.dumps(empty.json())) == (0, None, b"[]")
