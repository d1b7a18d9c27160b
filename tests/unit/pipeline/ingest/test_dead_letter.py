"""A dead-letter record fits any producer limit, whatever its source message was."""

from __future__ import annotations

import hashlib

import orjson

from pipeline.ingest.dlq import MAX_KEY_BYTES, MAX_PAYLOAD_BYTES, MAX_RECORD_BYTES, dead_letter


def test_huge_key_and_payload_are_cut_with_sizes_and_digests():
    key = b"k" * (9 << 20)
    payload = b"\xff" * (16 << 20)
    k, v, why = dead_letter("requests", 3, 42, key, None, "r" * 10_000, payload, b"invalid")
    assert k == key[:MAX_KEY_BYTES]
    assert len(k) + len(v) <= MAX_RECORD_BYTES < 1 << 20
    doc = orjson.loads(v)
    assert (doc["topic"], doc["partition"], doc["offset"], doc["index"]) == ("requests", 3, 42,
                                                                             None)
    assert doc["key_bytes"] == 9 << 20 and doc["key_sha256"] == hashlib.sha256(key).hexdigest()
    assert doc["payload_bytes"] == 16 << 20
    assert doc["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    assert len(doc["payload"]) == MAX_PAYLOAD_BYTES
    assert len(doc["reason"]) == 2000 and why == b"invalid"


def test_small_records_are_unchanged():
    k, v, _ = dead_letter("jobs", 0, 1, b"acme", 2, "bad", b'{"x":1}', b"invalid")
    assert k == b"acme"
    assert orjson.loads(v) == {"topic": "jobs", "partition": 0, "offset": 1, "index": 2,
                               "reason": "bad", "payload": '{"x":1}'}
