"""Dead-letter records that always fit. Pure: no I/O.

A dead-letter record is produced to `<topic>.dlq` with the source message's key and a JSON value
naming the source position, the event index (None: the whole message), the reason and the
payload. Whatever the source message was (a 9 MiB key, a 16 MiB value), the record stays under
`MAX_RECORD_BYTES`, far below any producer or broker limit: the key is cut to `MAX_KEY_BYTES`,
the payload to `MAX_PAYLOAD_BYTES` and the reason to `MAX_REASON_CHARS`; what was cut is said in
the value (`key_bytes`/`key_sha256`, `payload_bytes`/`payload_sha256`: the original size and a
digest, so the record can be matched with its source).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

__all__ = ["MAX_KEY_BYTES", "MAX_PAYLOAD_BYTES", "MAX_REASON_CHARS", "MAX_RECORD_BYTES",
           "DeadLetter", "dead_letter", "fit_payload", "fit_reason"]

MAX_KEY_BYTES = 1024
MAX_PAYLOAD_BYTES = 65536
MAX_REASON_CHARS = 2000
#: Upper bound of key + value of a record (the JSON of a cut payload may escape every byte
#: as \\uXXXX: 6 bytes per payload byte).
MAX_RECORD_BYTES = MAX_KEY_BYTES + 6 * MAX_PAYLOAD_BYTES + 4 * MAX_REASON_CHARS + 4096

#: A dead-letter record: (message key, JSON value, `vitals-reason` header value).
DeadLetter = tuple[bytes | None, bytes, bytes]


def fit_reason(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS - 1] + "…"


def fit_payload(payload: bytes) -> bytes:
    return payload[:MAX_PAYLOAD_BYTES]


def dead_letter(topic: str, partition: int, offset: int, key: bytes | None, index: int | None,
                reason: str, payload: bytes, why: bytes) -> DeadLetter:
    """The record for one rejected event (`index`) or message (`index` None)."""
    doc: dict[str, Any] = {
        "topic": topic, "partition": partition, "offset": offset, "index": index,
        "reason": fit_reason(reason),
        "payload": fit_payload(payload).decode("utf-8", "replace"),
    }
    if len(payload) > MAX_PAYLOAD_BYTES:
        doc["payload_bytes"] = len(payload)
        doc["payload_sha256"] = hashlib.sha256(payload).hexdigest()
    if key is not None and len(key) > MAX_KEY_BYTES:
        doc["key_bytes"] = len(key)
        doc["key_sha256"] = hashlib.sha256(key).hexdigest()
        key = key[:MAX_KEY_BYTES]
    return key, orjson.dumps(doc), why
