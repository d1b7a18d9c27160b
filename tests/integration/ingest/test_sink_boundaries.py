"""No valid event can be refused by storage: boundary values for every field of every event type,
pushed through the real sink into embedded ClickHouse. Each event is either stored or
dead-lettered with a reason; no insert fails, nothing is isolated, nothing stalls.

The values come from the JSON Schemas themselves (type limits, ±1 ulp around every bound, huge
finite floats, 0, negatives, NaN/Infinity literals and numbers beyond a double, long strings,
deep unicode, lone surrogates), one field changed at a time on a valid base event. Hypothesis then
mixes them into envelopes: whether an event is accepted never depends on its neighbours.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import schemas
from pipeline.core.errors import InvalidEvent
from pipeline.core.settings import Settings, TopicNames
from pipeline.core.telemetry import Telemetry
from pipeline.ingest.decode import decode_envelope
from pipeline.ingest.sink import Message, Sink
from pipeline.ingest.topics import KINDS
from pipeline.sdk.event_encoder import EventEncoder
from pipeline.sdk.producer_errors import EventTooLarge
from pipeline.storage.clickhouse import AsyncStore, migrate

NOW = time.time()

#: A valid value for every required field that has no schema-derived one.
BASE: dict[str, Any] = {"v": 1, "ts": NOW, "timestamp": NOW, "endpoint_id": 7, "id": 3,
                        "status": 200, "name": "p1.x", "kind": "h", "value": 1.5,
                        "task_id": "t1", "state": None, "cluster": "c1", "node_id": "n1",
                        "task": "task-1", "values": [1.0, 2.0], "plot_str": "{}"}

UNICODE = ["é", "😀", "中", "a\u0301", "\u202e", "\u0000", "\x7f", "\ufeff"]


def _raw(text: str) -> str:
    """A JSON literal spliced into the message as it is (NaN, 1e400, a lone surrogate)."""
    return f"@@RAW:{text}@@"


def number_cases(spec: dict[str, Any], integer: bool) -> list[Any]:
    lo, hi = spec.get("minimum"), spec.get("maximum")
    out: list[Any] = [0, -1, 1, 0.5, -0.0, 1.7976931348623157e308, -1.7976931348623157e308,
                      5e-324, 2**63, -(2**63) - 1, 2**64, 10**30,
                      _raw("NaN"), _raw("Infinity"), _raw("1e400"), _raw("-1e400"), "1", True]
    for b in (lo, hi):
        if b is None:
            continue
        out += [b, b - 1, b + 1] if integer else [
            b, math.nextafter(float(b), -math.inf), math.nextafter(float(b), math.inf)]
    return out


def string_cases(spec: dict[str, Any]) -> list[Any]:
    n = spec.get("maxLength", 300)
    out: list[Any] = ["", "x", "x" * n, "x" * (n + 1), 5, None, _raw('"\\ud800"'),
                      _raw('"a\\udc00b"')]
    out += [(u * n)[:n] for u in UNICODE] + [(u * (n + 1))[:n + 1] for u in UNICODE[:3]]
    return out + list(spec.get("enum", ()))


def field_cases(name: str, spec: dict[str, Any]) -> list[Any]:
    kind = spec.get("type")
    if name in ("ts", "timestamp"):
        return [NOW, NOW * 1000, NOW + 299, NOW + 301, NOW - 86_400 * 400, 1e11 - 1, 1e11,
                946684800, 946684799.999, 1e300, _raw("1e400"), -NOW, "now", _raw("NaN")]
    if kind == "integer":
        return number_cases(spec, True)
    if kind == "number":
        return number_cases(spec, False)
    if kind == "string":
        return string_cases(spec)
    if kind == "boolean":
        return [True, False, "true", 1, None]
    if name == "tags":
        return [{}, {"k": "v"}, {"k" * 200: "v"}, {"k": "v" * 201}, {"k": 1},
                {f"t{i}": "v" for i in range(33)}, {"k": "😀" * 200}, []]
    if name == "hist":
        return [{}, {"0": 1}, {"-32768": 1}, {"32767": 1}, {"32768": 1}, {"-32769": 1},
                {"1": 10**15}, {"1": 10**15 + 1}, {"1": 2**64}, {"1": -1}, {"x": 1},
                {"1": 1.5}, {"1_000": 1}]
    if name == "values":
        return [[], [0.0], [1.7976931348623157e308, -5e-324], [1, "2"], [None],
                _raw("[1e400]"), _raw("[NaN]"), [1.0] * 10_000]
    return [None, 1, "x", {}, []]


def events_for(kind: str) -> list[str]:
    """Every boundary event of the kind, as JSON text."""
    out: list[str] = []
    for etype, schema_name in KINDS[kind].event_types.items():
        schema = schemas.load(schema_name)
        props: dict[str, Any] = schema["properties"]
        base = {f: BASE[f] for f in schema.get("required", ()) if f in BASE}
        base["type"] = etype
        for f in ("state",):
            if f in props and f in base:
                base[f] = props[f]["enum"][0]
        bases = [base]
        if kind == "metrics":  # one sample, and the aggregated form (with a histogram)
            bases.append({**{k: v for k, v in base.items() if k != "value"}, "count": 2,
                          "sum": 3.0, "min": 1.0, "max": 2.0, "last": 2.0, "hist": {"1": 2}})
        for b in bases:
            for name, spec in props.items():
                if name in ("type",):
                    continue
                for case in field_cases(name, spec):
                    event = dict(b)
                    event[name] = case
                    out.append(_encode(event))
            out.append(_encode(b))
    return out


def _encode(event: dict[str, Any]) -> str:
    raws: dict[str, str] = {}
    for k, v in event.items():
        if isinstance(v, str) and v.startswith("@@RAW:"):
            raws[k] = v[6:-2]
            event[k] = f"@@{k}@@"
    text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    for k, literal in raws.items():
        text = text.replace(f'"@@{k}@@"', literal)
    return text


@pytest.fixture
async def store(settings: Settings):
    s = await asyncio.get_running_loop().run_in_executor(
        None, AsyncStore.open, settings.dsn, settings.clickhouse_database)
    await s.call(lambda st: migrate(st, retention=settings.retention))
    yield s
    s.close()


def limits(settings: Settings, kind: str, now_ms: int) -> dict[str, Any]:
    return {"now_ms": now_ms, "max_future_ms": settings.max_future_s * 1000,
            "max_bytes": settings.max_message_bytes, "max_age_ms": settings.max_age_ms(kind)}


@pytest.mark.parametrize("kind", list(KINDS))
async def test_every_boundary_event_is_stored_or_dead_lettered(kind, settings, store):
    telemetry = Telemetry()
    dead: list[bytes] = []

    async def send_dlq(_topic: str, _key: bytes | None, value: bytes, _h: Any) -> None:
        dead.append(value)

    sink = Sink(kind, settings, store, send_dlq, telemetry, clock=lambda: NOW)
    events = events_for(kind)
    topic = settings.topics.topic(kind)
    # one event per message (each decided alone), then, in envelopes of 40, every event that is
    # JSON at all (a NaN literal or a lone surrogate makes the whole message invalid JSON)
    # and is small enough that 40 of them stay under the message size limit
    mixable = [e for e in events if is_json(e) and len(e) < 65536]
    messages = [Message(topic, 0, i, b"k", e.encode()) for i, e in enumerate(events)]
    messages += [Message(topic, 0, len(events) + j, b"k",
                         ("[" + ",".join(mixable[j * 40:(j + 1) * 40]) + "]").encode())
                 for j in range((len(mixable) + 39) // 40)]
    for start in range(0, len(messages), 200):
        await asyncio.wait_for(sink.write(messages[start:start + 200]), timeout=60)
    stored = telemetry.value("vitals_events_consumed_total", topic=topic)
    rejected = telemetry.value("vitals_events_rejected_total", topic=topic)
    assert (stored + rejected, telemetry.value("vitals_messages_isolated_total", topic=topic),
            telemetry.value("vitals_insert_errors_total", topic=kind),
            telemetry.value("vitals_topic_stalled", topic=topic)) == (len(events) + len(mixable),
                                                                     0, 0, 0)
    assert stored > 0 and rejected > 0
    assert len(mixable) < len(events)  # the invalid-JSON and oversized cases were sent alone
    print(f"\n{kind}: {len(events) + len(mixable)} boundary events sent, {stored:.0f} stored, "
          f"{rejected:.0f} dead-lettered, 0 refused by storage")
    for record in dead:
        assert orjson.loads(record)["reason"]
    if kind in ("requests", "heartbeats"):
        table, cols = ("requests_raw", ("latency_ms", "queue_ms", "work_units", "gpu_seconds")
                       ) if kind == "requests" else ("heartbeats_raw", ("max_perf", "cur_load",
                                                                          "loadtime"))
        finite = " AND ".join(f"isFinite(sum({c}))" for c in cols)
        assert await store.rows(f"SELECT {finite} FROM {store.database}.{table}") == [(1,)]


@pytest.mark.parametrize("kind", list(KINDS))
@hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_an_events_fate_does_not_depend_on_its_envelope(kind, settings, data):
    events = events_for_cached(kind)
    picked = data.draw(st.lists(st.sampled_from([e for e in events
                                                 if is_json(e) and len(e) < 65536]),
                                min_size=1, max_size=12))
    now_ms = int(NOW * 1000)
    alone = [not decode_envelope(e.encode(), kind, **limits(settings, kind, now_ms)).rejects
             for e in picked]
    together = decode_envelope(("[" + ",".join(picked) + "]").encode(), kind,
                               **limits(settings, kind, now_ms))
    assert all(r.index is not None for r in together.rejects) or len(picked) == 0
    accepted = {i for i, _ in together.events}
    assert [i in accepted for i in range(len(picked))] == alone


def is_json(event: str) -> bool:
    """Whether the text is JSON that any parser reads (no NaN literal, no lone surrogate)."""
    try:
        doc = json.loads(event, parse_constant=lambda c: 1 / 0)
        json.dumps(doc, ensure_ascii=False).encode()
    except (ValueError, ZeroDivisionError):
        return False
    return True


_CACHE: dict[str, list[str]] = {}


def events_for_cached(kind: str) -> list[str]:
    if kind not in _CACHE:
        _CACHE[kind] = events_for(kind)
    return _CACHE[kind]


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_producer_decides_every_boundary_event_as_the_worker_does(kind, settings):
    """`Producer.prepare` (the SDK's check, on the bytes it sends) accepts exactly the events
    the worker accepts from those bytes, and refuses the others with the worker's reason.
    (The retention is the worker's alone: the producer does not know the worker's settings.)"""
    encoder = EventEncoder(TopicNames(), clock=lambda: NOW,
                           max_message_bytes=settings.max_message_bytes)
    now_ms = int(NOW * 1000)
    checked = 0
    for text in events_for_cached(kind):
        if not is_json(text):
            continue
        event = json.loads(text)
        try:
            _, _, data = encoder.prepare(kind, event)
        except InvalidEvent as exc:
            producer_says: str | None = str(exc)
            data = msgspec.json.encode(event)
        except EventTooLarge:  # sent as an envelope, the worker refuses it by its size too
            data = b"[" + msgspec.json.encode(event) + b"]"
            producer_says = f"message of {len(data)} bytes exceeds the " \
                            f"{settings.max_message_bytes}-byte limit"
        else:
            producer_says = None
        worker = decode_envelope(data, kind, **{**limits(settings, kind, now_ms),
                                                "max_age_ms": None})
        worker_says = worker.rejects[0].reason if worker.rejects else None
        if worker_says is not None and worker_says.startswith("message of "):
            assert producer_says is not None, text  # oversized: refused, maybe for more
        else:
            assert producer_says == worker_says, text
        checked += 1
    assert checked > 100
