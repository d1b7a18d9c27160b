"""The producer's pure batching: envelope boundaries, linger, order per key."""

from __future__ import annotations

import orjson
import pytest

from pipeline.sdk.envelopes import Envelope, EnvelopeBuffer


def test_closes_at_max_events_and_keeps_keys_apart() -> None:
    buf = EnvelopeBuffer(max_events=3, max_bytes=1 << 20)
    closed = [buf.add("requests", b"7", b'{"i":%d}' % i, now=float(i))[1] for i in range(7)]
    assert [c is not None for c in closed] == [False, False, False, True, False, False, True]
    assert [orjson.loads(c.value()) for c in closed if c is not None] == [
        [{"i": 0}, {"i": 1}, {"i": 2}], [{"i": 3}, {"i": 4}, {"i": 5}]]
    env, _ = buf.add("requests", b"8", b"{}", now=7.0)
    assert [(e.key, len(e.items), e.born) for e in buf.take_all()] == [(b"7", 1, 6.0),
                                                                      (b"8", 1, 7.0)]
    assert env.value() == b"[{}]"


def test_closes_before_exceeding_max_bytes_and_an_oversized_event_goes_alone() -> None:
    buf = EnvelopeBuffer(max_events=100, max_bytes=20)
    assert buf.add("t", b"k", b"x" * 8, 0.0)[1] is None       # [xxxxxxxx] = 10 bytes
    assert buf.add("t", b"k", b"y" * 8, 0.0)[1] is None       # + ",yyyyyyyy" = 19 bytes
    env, closed = buf.add("t", b"k", b"z" * 30, 0.0)          # would be 50: closes the first
    assert closed is not None and closed.nbytes == 19 == len(closed.value())
    assert closed.payload == 16
    assert env.items == [b"z" * 30] and env.nbytes == 32 == len(env.value())


def test_take_due_returns_only_lingering_envelopes_oldest_first() -> None:
    buf = EnvelopeBuffer(max_events=10, max_bytes=1000)
    buf.add("t", b"b", b"1", 5.0)
    buf.add("t", b"a", b"2", 3.0)
    buf.add("t", b"c", b"3", 9.0)
    assert [e.key for e in buf.take_due(opened_before=6.0)] == [b"a", b"b"]
    assert [e.key for e in buf.take_due(opened_before=6.0)] == []
    assert buf.take("t", b"c") is not None and buf.take_all() == []


def test_raw_envelope_is_its_value() -> None:
    env = Envelope("t", b"", 0.0, raw=True, keyless=True)
    env.add(b"{not json")
    assert env.value() == b"{not json" and env.payload == 9


def test_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        EnvelopeBuffer(0, 100)


def test_extend_builds_the_envelopes_that_add_builds() -> None:
    items = [b"x" * n for n in (5, 9, 30, 2, 2, 2, 2, 50, 1, 1)]
    one, many = EnvelopeBuffer(3, 40), EnvelopeBuffer(3, 40)
    closed_one = [c for c in (one.add("t", b"k", d, 0.0)[1] for d in items) if c is not None]
    opened, closed_many = many.extend("t", b"k", items, 0.0)
    assert [e.items for e in closed_many] == [e.items for e in closed_one]
    assert [e.items for e in one.take_all()] == [e.items for e in many.take_all()]
    assert len(opened) == len(closed_many) + 1
