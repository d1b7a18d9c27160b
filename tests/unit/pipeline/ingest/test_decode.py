"""Envelope decoding and event validation: what is kept, what is rejected and why."""

from __future__ import annotations

import orjson
import pytest

from pipeline.ingest.decode import EventChecker, decode_envelope, normalise_ts_ms
from schemas import SchemaViolation

NOW_MS = 1_800_000_000_000


def req(**over: object) -> dict:
    e = {"v": 1, "type": "request", "ts": NOW_MS / 1000 - 5, "endpoint_id": 7, "status": 200}
    e.update(over)
    return e


def decode(value: bytes | None, kind: str = "requests", **kw: int):
    opts = {"now_ms": NOW_MS, "max_future_ms": 300_000, "max_bytes": 1 << 20}
    opts.update(kw)
    return decode_envelope(value, kind, **opts)


def test_normalise_ts_reads_seconds_and_milliseconds() -> None:
    assert normalise_ts_ms(1_700_000_000) == 1_700_000_000_000
    assert normalise_ts_ms(1_700_000_000.2345) == 1_700_000_000_234
    assert normalise_ts_ms(1_700_000_000_123) == 1_700_000_000_123


def test_single_object_and_array_envelopes() -> None:
    one = decode(orjson.dumps(req()))
    assert [i for i, _ in one.events] == [0] and one.rejects == []
    many = decode(orjson.dumps([req(), req(status=503)]))
    assert [e["status"] for _, e in many.events] == [200, 503]


def test_defaults_are_filled_and_ts_normalised() -> None:
    (_, e), = decode(orjson.dumps(req(ts=1_799_999_990.5))).events
    assert e["ts"] == 1_799_999_990_500
    assert e["tenant"] == "default" and e["work_units"] == 1 and e["error_kind"] == ""
    assert e["cold_start"] is False and e["latency_ms"] == 0


@pytest.mark.parametrize("value,reason", [
    (None, "empty message value"),
    (b"{nope", "invalid JSON"),
    (b"[]", "empty envelope: an array needs at least one event"),
    (b"42", "envelope must be a JSON object or an array of objects"),
    (b'"x"', "envelope must be a JSON object or an array of objects"),
])
def test_whole_message_rejects(value: bytes | None, reason: str) -> None:
    out = decode(value)
    assert out.events == []
    (r,) = out.rejects
    assert r.index is None and r.reason.startswith(reason)


def test_oversized_message_is_rejected_with_its_size() -> None:
    value = orjson.dumps([req()] * 100)
    out = decode(value, max_bytes=1000)
    assert out.rejects[0].reason == f"message of {len(value)} bytes exceeds the 1000-byte limit"
    assert out.rejects[0].payload == value[:1024]  # the first KiB is kept for diagnosis


@pytest.mark.parametrize("event,reason", [
    (req(status="200"), "status: expected integer, got string"),
    (req(status=True), "status: expected integer, got boolean"),
    (req(status=99), "status: 99 is below the minimum 100"),
    ({k: v for k, v in req().items() if k != "endpoint_id"},
     "endpoint_id: required field is missing"),
    (req(surprise=1), "unknown field(s) surprise"),
    (req(latency_ms=-1), "latency_ms: -1 is below the minimum 0"),
    (req(type="heartbeat"), "type: 'heartbeat' is not an event type of this topic; "
                            "allowed: request"),
    (req(error_kind="meteor"), "error_kind"),
    (req(ts=NOW_MS / 1000 + 301), "ts: "),
    ([1, 2], "event: expected object"),
])
def test_bad_events_are_rejected_alone_with_a_reason(event: object, reason: str) -> None:
    out = decode(orjson.dumps([req(), event, req()]))
    assert [i for i, _ in out.events] == [0, 2]
    (r,) = out.rejects
    assert r.index == 1 and r.reason.startswith(reason)
    assert orjson.loads(r.payload) == event


def test_future_and_retention_limits() -> None:
    future = decode(orjson.dumps(req(ts=NOW_MS + 301_000)))
    assert future.rejects[0].reason == (
        f"ts: {NOW_MS + 301_000} is 301 s in the future (limit 300 s)")
    assert decode(orjson.dumps(req(ts=NOW_MS + 299_000))).rejects == []
    old = decode(orjson.dumps(req(ts=NOW_MS - 31 * 86_400_000)), max_age_ms=30 * 86_400_000)
    assert old.rejects[0].reason.endswith("is older than the retention of 30 days")


def test_heartbeat_accepts_pyworker_fields_and_ignores_extras() -> None:
    beat = {"v": 1, "type": "heartbeat", "ts": NOW_MS, "endpoint_id": 3, "id": 9,
            "loadtime": 12.5, "cur_load": 3.0, "max_perf": 40.0, "cur_perf": 35.0,
            "error_msg": "", "num_requests_working": 2, "num_requests_recieved": 100,
            "cur_capacity": 1.0, "max_capacity": 4.0, "pyworker_only_field": "x"}
    (_, e), = decode(orjson.dumps(beat), "heartbeats").events
    assert e["max_perf"] == 40.0 and e["num_requests_recieved"] == 100
    assert "pyworker_only_field" not in e and e["gpu_util"] == 0


def test_event_checker_returns_a_new_dict() -> None:
    check = EventChecker("requests", now_ms=NOW_MS, max_future_ms=0)
    event = req()
    out = check(event)
    assert out is not event and event["ts"] == NOW_MS / 1000 - 5 and out["ts"] == NOW_MS - 5000
    with pytest.raises(SchemaViolation):
        check(req(ts=NOW_MS + 1))


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown topic kind"):
        decode(b"{}", "nope")
