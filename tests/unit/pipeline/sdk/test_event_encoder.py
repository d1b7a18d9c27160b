"""`EventEncoder`: one event checked and encoded (`prepare`), many packed into envelopes (`pack`).

Packing is an optimisation of `prepare` event by event, so it is held to it: the same bytes per
event, in the same order per key, and no packing at all when any event would need the
per-event path to be judged."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest

from pipeline.core.errors import InvalidEvent
from pipeline.core.settings import TopicNames
from pipeline.sdk.envelopes import Envelope
from pipeline.sdk.event_encoder import EventEncoder, event_key

NOW = 1_796_000_000.0


def request(i: int, endpoint: int) -> dict[str, Any]:
    return {"v": 1, "type": "request", "ts": NOW - 1, "endpoint_id": endpoint, "status": 200,
            "latency_ms": 40.0 + i, "id": f"r{i}"}


def encoder(**kwargs: Any) -> EventEncoder:
    return EventEncoder(TopicNames("p-"), clock=lambda: NOW, max_message_bytes=1 << 20,
                        **kwargs)


def test_packed_envelopes_hold_each_events_prepared_bytes_in_order_per_key() -> None:
    enc = encoder()
    events = [request(i, endpoint=i % 3) for i in range(1203)]
    packed = enc.pack("requests", events, max_events=500, max_bytes=512 * 1024)
    assert packed is not None
    assert [(t, k, n) for t, k, _, n in packed] == [
        ("p-requests", b"0", 401, ), ("p-requests", b"1", 401), ("p-requests", b"2", 401)]
    for topic, key, value, count in packed:
        env = Envelope.of_packed(topic, key, time.monotonic(), value, count)
        expected = [enc.prepare("requests", e)[2] for e in events
                    if str(e["endpoint_id"]).encode() == key]
        assert env.event_bytes() == expected
        assert env.value() == b"[" + b",".join(expected) + b"]"


def test_envelopes_are_split_to_the_event_and_byte_limits() -> None:
    enc = encoder()
    events = [request(i, endpoint=7) for i in range(1000)]
    one = len(enc.prepare("requests", events[0])[2])
    packed = enc.pack("requests", events, max_events=300, max_bytes=40 * one)
    assert packed is not None
    assert sum(n for *_, n in packed) == 1000
    assert all(len(v) <= 40 * one and n <= 300 for _, _, v, n in packed)
    ids = [e["id"] for _, _, v, _ in packed for e in msgspec.json.decode(v)]
    assert ids == [f"r{i}" for i in range(1000)]


@pytest.mark.parametrize("bad", [
    {"status": "200"},                 # wrong type: the per-event path names it
    {"ts": NOW + 3600},                # in the future
    {"latency_ms": 200},               # fine, but not alone: the batch is still packed
])
def test_no_packing_unless_the_fast_path_accepts_every_event(bad: dict[str, Any]) -> None:
    enc = encoder()
    events = [request(i, endpoint=1) for i in range(10)]
    events[6] = {**events[6], **bad}
    packed = enc.pack("requests", events, max_events=500, max_bytes=512 * 1024)
    try:
        enc.prepare("requests", events[6])
    except InvalidEvent:
        assert packed is None
    else:
        assert packed is not None and packed[0][3] == 10


def test_an_event_over_the_byte_limit_alone_is_left_to_prepare() -> None:
    enc = encoder()
    events = [request(0, 1), {**request(1, 1), "endpoint": "x" * 5000}]
    assert enc.pack("requests", events, max_events=500, max_bytes=4096) is None


def test_validate_false_packs_without_checking() -> None:
    enc = encoder(validate=False)
    events = [{**request(0, 1), "status": "not a number"}]
    packed = enc.pack("requests", events, max_events=500, max_bytes=4096)
    assert packed is not None and packed[0][3] == 1


def test_key_values_that_print_alike_are_not_packed_apart() -> None:
    enc = encoder()
    events = [request(0, 1), {**request(1, 1), "endpoint_id": "1"}]
    assert enc.pack("requests", events, max_events=500, max_bytes=4096) is None


def test_event_key_is_the_key_prepare_and_pack_send_with() -> None:
    enc = encoder()
    events = [request(i, endpoint=i % 3) for i in range(6)]
    packed = enc.pack("requests", events, max_events=500, max_bytes=512 * 1024)
    assert packed is not None
    assert {k for _, k, _, _ in packed} == {event_key("requests", e) for e in events}
    for e in events:
        assert enc.prepare("requests", e)[1] == event_key("requests", e) == b"%d" % e["endpoint_id"]


@pytest.mark.parametrize(("change", "reason"), [
    # orjson declines an integer beyond 64 bits; msgspec encodes it and the check names it
    ({"tokens_in": 2**70}, "tokens_in: 1180591620717411303424 is above the maximum 4294967295"),
    ({"latency_ms": float("nan")}, "latency_ms: expected number, got null"),
])
def test_what_either_encoder_writes_is_judged_by_the_workers_reason(
        change: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        encoder().prepare("requests", {**request(0, 1), **change})
    assert str(err.value) == reason


def test_an_array_is_not_an_event() -> None:
    with pytest.raises(InvalidEvent, match=r"^event: expected object$"):
        encoder().prepare("requests", [request(0, 1)])  # type: ignore[arg-type]
