"""The worker's request rows built in Python (today) against rows built by ClickHouse from the
envelopes' JSON bytes: CPU and wall time per event, on the same envelopes, in one run.

Way A (today, exactly the worker's functions): `Sink.build` (per message `decode_structs`, the
msgspec fast path, then `SinkBatch.add_request_structs`), `SinkBatch.tables(RegistryCache)`,
then `ClickHouseStore.insert` of the `requests_raw` Native block (clickhouse-connect writes it to
a temp file, chdb runs `INSERT ... FROM INFILE ... FORMAT Native`).

Way B: the batch's message values, untouched, each wrapped as one JSONEachRow line
`{"p":<partition>,"o":<offset>,"e":<the envelope's bytes>}`, written to a temp file, and one
`INSERT INTO requests_raw SELECT ... FROM file(..., JSONEachRow, <structure>) ARRAY JOIN ...`
(`B_INSERT`): ClickHouse's JSON parser reads the events into an array of named tuples, the
SELECT derives every column `SinkBatch._append_requests` derives (event time to epoch ms, the
failure class, success, defaults, source position), and the schema's checks (request.json, the
event-time window) are one `throwIf` per batch, so a refused batch would go down today's path,
which names every reason. The registry rows (`endpoints`, `autogroups`) are not inserted by
either way; way A computes them (in `add_request_structs`), way B does not.

Both ways run on the calling thread (the worker runs A's build on its decode thread and the
insert on a store thread; the work is the same). Per way: wall seconds, CPU of the calling
thread (`time.thread_time`: the Python code, plus whatever chdb runs on that thread) and of
the process (`time.process_time`: with the engine's threads), split into the Python part
before the insert call and the insert call itself; first into a `requests_raw` without its
materialized views, then with them (the real schema). The ways take turns batch by batch, each
into its own database; a third, way B without its checks, says what the checks cost.
Background merges are stopped (`SYSTEM STOP MERGES`), so a way's figures hold its own inserts
only. Each database is warmed with 4 small batches of its way first (not counted: the engine
JIT-compiles an expression on its third use, `min_count_to_compile_expression`), then the
ways' tables are compared:
`count()` and `sum(cityHash64(*))` of `requests_raw` and of every table its views fill.

    python -m bench.json_insert [--events 200000] [--per-message 500] [--batch 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.loadgen import EventGen
from pipeline.core.settings import Settings, TopicNames
from pipeline.core.telemetry import Telemetry
from pipeline.ingest.rows.requests import TABLE_COLUMNS, RegistryCache
from pipeline.ingest.sink import Message, Sink
from pipeline.sdk.event_encoder import EventEncoder
from pipeline.storage.clickhouse import INSERT_SETTINGS, AsyncStore, ClickHouseStore, migrate

PARTITIONS = 6
#: The ways, by database suffix: today's, the proposed one, and the proposed one without its
#: checks (not safe to run: it says what the checks cost).
LABELS = {"a": "A (Python)", "b": "B (ClickHouse JSON)", "n": "B without checks"}
WARM_ENVELOPES = 20

#: The envelope's events as ClickHouse reads them. Integers are read as Float64: an Int/UInt
#: column wraps an out-of-range JSON integer silently (70000 into UInt16 is 4464), and the
#: Python path accepts an integral float (200.0) for an integer; every schema bound on an
#: integer is below 2^53, exact in a double. Nullable only where absent must be told from a
#: value: a required field whose zero is valid (endpoint_id) and the fields whose schema
#: default is not the type's (tenant "default", work_units 1). Every other absent field is the
#: type's default, which is the schema's; a required field's zero fails its check.
EVENT_TUPLE = (
    "v Float64, type String, id String, ts Float64, tenant Nullable(String), "
    "endpoint_id Nullable(Float64), endpoint String, autogroup_id Float64, worker_id Float64, "
    "status Float64, latency_ms Float64, queue_ms Float64, work_units Nullable(Float64), "
    "tokens_in Float64, tokens_out Float64, cold_start Bool, cold_start_ms Float64, "
    "error_kind String, gpu_seconds Float64, bytes_out Float64, bytes_in Float64, cache String"
)
STRUCTURE = f"p UInt16, o UInt64, e Array(Tuple({EVENT_TUPLE}))"

_MAX_SAFE = 9007199254740991


def _int_in(col: str, lo: int, hi: int) -> str:
    return f"{col} = trunc({col}) AND {col} >= {lo} AND {col} <= {hi}"


def _num_in(col: str, lo: float, hi: float) -> str:
    return f"{col} >= {lo:g} AND {col} <= {hi:g}"


#: schemas/request.json as SQL over `ev` (the event tuple), plus the event-time window; NaN and
#: ±inf (which ClickHouse's parser accepts as NaN/Infinity/1e400) fail every range.
EVENT_CHECK = " AND ".join(f"({c})" for c in (
    "ev.v = 1", "ev.type = 'request'",
    "lengthUTF8(ev.id) <= 128 AND isValidUTF8(ev.id)",
    "ev.ts >= 946684800 AND ts_ms <= {max_ms} AND ts_ms >= {min_ms}",
    "isNull(ev.tenant) OR (lengthUTF8(assumeNotNull(ev.tenant)) BETWEEN 1 AND 64 "
    "AND isValidUTF8(assumeNotNull(ev.tenant)))",
    f"isNotNull(ev.endpoint_id) AND {_int_in('assumeNotNull(ev.endpoint_id)', 0, _MAX_SAFE)}",
    "lengthUTF8(ev.endpoint) <= 128 AND isValidUTF8(ev.endpoint)",
    _int_in("ev.autogroup_id", 0, _MAX_SAFE), _int_in("ev.worker_id", 0, _MAX_SAFE),
    _int_in("ev.status", 100, 599),
    _num_in("ev.latency_ms", 0, 86400000), _num_in("ev.queue_ms", 0, 86400000),
    "isNull(ev.work_units) OR " + _num_in("assumeNotNull(ev.work_units)", 0, 1e12),
    _int_in("ev.tokens_in", 0, 4294967295), _int_in("ev.tokens_out", 0, 4294967295),
    _num_in("ev.cold_start_ms", 0, 86400000),
    "ev.error_kind IN ('', 'client', 'server', 'timeout', 'resource_exhausted', 'other')",
    _num_in("ev.gpu_seconds", 0, 1e9),
    _int_in("ev.bytes_out", 0, 1099511627776), _int_in("ev.bytes_in", 0, 1099511627776),
    "ev.cache IN ('', 'hit', 'miss')",
))

#: Parsing as strict as ClickHouse allows (each of these is lenient by default: a number or
#: bool read into a String, a bool into a number, an unknown key skipped, null read as the
#: type's default); `precise_float_parsing` for the same doubles as msgspec; single-threaded
#: parsing keeps the file's row order (the views' float sums depend on it).
JSON_SETTINGS = {
    "input_format_json_read_numbers_as_strings": 0,
    "input_format_json_read_bools_as_numbers": 0,
    "input_format_json_read_bools_as_strings": 0,
    "input_format_json_read_objects_as_strings": 0,
    "input_format_json_read_arrays_as_strings": 0,
    "input_format_json_ignore_unknown_keys_in_named_tuple": 0,
    "input_format_null_as_default": 0,
    "precise_float_parsing": 1,
    "input_format_parallel_parsing": 0,
}

B_INSERT = """INSERT INTO {db}.requests_raw ({columns})
SELECT
    ifNull(ev.tenant, 'default') AS tenant,
    toUInt64(assumeNotNull(ev.endpoint_id)) AS endpoint_id,
    toUInt64(ev.autogroup_id) AS autogroup_id,
    toUInt64(ev.worker_id) AS worker_id,
    fromUnixTimestamp64Milli(ts_ms, 'UTC') AS ts,
    ev.id AS event_id,
    toUInt16(ev.status) AS status,
    kind = '' AS success,
    if(ev.error_kind != '', ev.error_kind,
       multiIf(ev.status < 400, '', ev.status < 500, 'client', 'server')) AS kind,
    ev.latency_ms AS latency_ms,
    ev.queue_ms AS queue_ms,
    ifNull(ev.work_units, 1.) AS work_units,
    toUInt32(ev.tokens_in) AS tokens_in,
    toUInt32(ev.tokens_out) AS tokens_out,
    ev.cold_start AS cold_start,
    ev.cold_start_ms AS cold_start_ms,
    ev.gpu_seconds AS gpu_seconds,
    toUInt64(ev.bytes_out) AS bytes_out,
    toUInt64(ev.bytes_in) AS bytes_in,
    ev.cache AS cache,
    p AS src_partition,
    o AS src_offset,
    toUInt32(i - 1) AS src_index
FROM (
    SELECT p, o, e FROM file({path}, 'JSONEachRow', {structure})
    WHERE throwIf(empty(e) OR length(e) > 100000, 'an envelope of no events or too many') = 0
)
ARRAY JOIN e AS ev, arrayEnumerate(e) AS i
WHERE throwIf(NOT ifNull({check}, 0), 'an event the schema refuses') = 0
SETTINGS {settings}"""


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def b_insert_sql(db: str, path: str, now_ms: int, max_future_ms: int, max_age_ms: int,
                 *, checks: bool = True) -> str:
    """Way B's statement for the batch file at `path`; without `checks` (not a safe form:
    what the checks cost), no `throwIf`."""
    settings = {**INSERT_SETTINGS.get("requests_raw", {}), **JSON_SETTINGS}
    ts_ms = "toInt64(if(ev.ts > 1e11, round(ev.ts), round(ev.ts * 1000)))"
    check = EVENT_CHECK.format(max_ms=now_ms + max_future_ms, min_ms=now_ms - max_age_ms)
    sql = B_INSERT.format(
        db=db, columns=", ".join(TABLE_COLUMNS["requests_raw"]), path=_quote(path),
        structure=_quote(STRUCTURE), check=check,
        settings=", ".join(f"{k} = {v}" for k, v in settings.items()))
    # ts_ms is used by both the row and the check: one WITH alias, computed once per row
    if not checks:
        sql = re.sub(r"\n *WHERE throwIf\(.*?= 0\n", "\n", sql, flags=re.S)
    return sql.replace("\nSELECT\n", f"\nWITH {ts_ms} AS ts_ms\nSELECT\n", 1)


def write_payload(file: IO[bytes], messages: Sequence[Message]) -> None:
    """The batch as way B sends it: one JSONEachRow line per message, its bytes as delivered
    (written piece by piece: joining 30 MB first costs a copy)."""
    for m in messages:
        file.write(b'{"p":%d,"o":%d,"e":' % (m.partition, m.offset))
        file.write(m.value or b"[]")
        file.write(b"}\n")


def make_messages(n: int, per_message: int, max_bytes: int, now: float) -> list[Message]:
    """`n` request events of `bench.loadgen.EventGen` (8 endpoints), with the optional fields
    the generator leaves out set on some (an id with escapes and non-ASCII text, a tenant,
    bytes_in, cache), packed by the SDK's encoder into envelopes of `per_message` per key
    (endpoint), at partition crc32(key) % 6 and consecutive offsets there."""
    gen = EventGen(8)
    events = list(gen.spread(n, now - 60 - n / 5000, 5000.0))
    for i, e in enumerate(events):
        if i % 7 == 0:
            e["id"] = f"req-{i}-\"é\\ü/\u2603"
        if i % 5 == 0:
            e["cache"] = "hit" if i % 10 == 0 else "miss"
            e["bytes_in"] = 100 + i % 5000
        if e["endpoint_id"] % 3 == 0:
            e["tenant"] = f"team-{e['endpoint_id']}"
        if i % 11 == 0:
            e["work_units"] = 0.0
    encoder = EventEncoder(TopicNames(), max_message_bytes=max_bytes)
    packed = encoder.pack("requests", events, per_message, max_bytes)
    if packed is None:
        raise SystemExit("the SDK's encoder refused the generated events")
    offsets = [0] * PARTITIONS
    out = []
    for topic, key, value, _count in packed:
        part = zlib.crc32(key) % PARTITIONS
        out.append(Message(topic, part, offsets[part], key, value))
        offsets[part] += 1
    return out


@dataclass
class Figures:
    """Seconds accumulated over a way's batches: the part before the insert call (Python) and
    the insert call, each as wall, calling-thread CPU and process CPU."""

    events: int = 0
    prep: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    insert: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])

    def total(self, i: int) -> float:
        return self.prep[i] + self.insert[i]

    def per_event(self, seconds: float) -> float:
        return seconds / self.events * 1e6


def _clock() -> tuple[float, float, float]:
    return time.perf_counter(), time.thread_time(), time.process_time()


def _add(into: list[float], start: tuple[float, float, float],
         end: tuple[float, float, float]) -> None:
    for k in range(3):
        into[k] += end[k] - start[k]


class WayA:
    """Today's worker path: `Sink.build`, `SinkBatch.tables`, the Native insert."""

    def __init__(self, store: ClickHouseStore, settings: Settings) -> None:
        self.store = store

        async def no_dlq(*_: Any) -> None:
            raise AssertionError("a bench message was dead-lettered")

        self.sink = Sink("requests", settings, AsyncStore(lambda: store, store.database),
                         no_dlq, Telemetry())
        self.registry = RegistryCache()

    def prepare(self, messages: Sequence[Message]) -> Callable[[], int]:
        batch, dead = self.sink.build(messages)
        if dead:
            raise AssertionError(f"{len(dead)} messages refused: {dead[0]}")
        tables = batch.tables(self.registry)

        def insert() -> int:
            for table, names, cols in tables:
                if table == "requests_raw":
                    self.store.insert(table, cols, names)
            return batch.events

        return insert


class WayB:
    """The envelopes' bytes to ClickHouse, which builds the rows (`B_INSERT`)."""

    def __init__(self, store: ClickHouseStore, settings: Settings, *, checks: bool = True
                 ) -> None:
        self.store = store
        self.settings = settings
        self.checks = checks

    def prepare(self, messages: Sequence[Message]) -> Callable[[], int]:
        s = self.settings
        if any(m.value is None or len(m.value) > s.max_message_bytes for m in messages):
            raise AssertionError("an empty or oversized message: today's path takes it")
        now_ms = int(time.time() * 1000)
        tmp = tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False)  # noqa: SIM115
        with tmp:
            write_payload(tmp, messages)
        sql = b_insert_sql(self.store.database, tmp.name, now_ms, s.max_future_s * 1000,
                           s.max_age_ms("requests"), checks=self.checks)

        def insert() -> int:
            try:
                self.store.command(sql)
            finally:
                os.unlink(tmp.name)
            return 0

        return insert


def run_ways(ways: dict[str, WayA | WayB], messages: Sequence[Message], batch: int,
             events: int) -> dict[str, Figures]:
    """Each way over the same batches, taking turns batch by batch (the machine is shared: a
    slow spell then falls on every way alike)."""
    figs = {name: Figures(events) for name in ways}
    for first in range(0, len(messages), batch):
        chunk = messages[first:first + batch]
        for name, way in ways.items():
            fig = figs[name]
            t0 = _clock()
            insert = way.prepare(chunk)
            t1 = _clock()
            insert()
            t2 = _clock()
            _add(fig.prep, t0, t1)
            _add(fig.insert, t1, t2)
    return figs


def views_of(store: ClickHouseStore, table: str) -> list[str]:
    rows = store.rows("SELECT dependencies_table FROM system.tables WHERE database = {db:String} "
                      "AND name = {t:String}", {"db": store.database, "t": table})
    return list(rows[0][0]) if rows else []


def checksums(store: ClickHouseStore, tables: Sequence[str]) -> dict[str, tuple[int, int]]:
    out = {}
    for t in tables:
        count, digest = store.rows(f"SELECT count(), sum(cityHash64(*)) FROM "
                                   f"{store.database}.{t}")[0]
        out[t] = (int(count), int(digest))
    return out


def targets(store: ClickHouseStore, views: Sequence[str]) -> list[str]:
    """The tables the materialized `views` write to."""
    out = []
    for v in views:
        rows = store.rows("SELECT create_table_query FROM system.tables WHERE database = "
                          "{db:String} AND name = {v:String}", {"db": store.database, "v": v})
        text = str(rows[0][0])
        out.append(text.split(" TO ", 1)[1].split()[0].split(".", 1)[1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.json_insert", description=__doc__)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--per-message", type=int, default=500)
    ap.add_argument("--batch", type=int, default=200, help="messages per insert (the worker's "
                    "VITALS_BATCH_MAX_MESSAGES default)")
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="vitals-bench-json-"))
    settings = Settings(clickhouse_dsn=f"chdb://{data}")
    now = time.time()
    messages = make_messages(args.events, args.per_message, settings.max_message_bytes, now)
    warm = make_messages(WARM_ENVELOPES * args.per_message, args.per_message,
                         settings.max_message_bytes, now)
    warm = [Message(m.topic, m.partition + PARTITIONS, m.offset, m.key, m.value) for m in warm]
    events = args.events
    print(f"{events:,} request events in {len(messages)} envelopes "
          f"({sum(len(m.value or b'') for m in messages) / 1e6:.1f} MB of JSON), "
          f"batches of {args.batch} envelopes; engine in {data}", flush=True)

    stores: dict[tuple[str, str], ClickHouseStore] = {}
    for config in ("plain", "views"):
        for letter in LABELS:
            store = ClickHouseStore(settings.dsn, f"json_{config}_{letter}")
            migrate(store)
            if config == "plain":
                for view in views_of(store, "requests_raw"):
                    store.command(f"DROP VIEW {store.database}.{view}")
            stores[config, letter] = store
    any_store = stores["plain", "a"]
    any_store.command("SYSTEM STOP MERGES")

    results: dict[tuple[str, str], Figures] = {}
    for config in ("plain", "views"):
        ways: dict[str, WayA | WayB] = {
            "a": WayA(stores[config, "a"], settings), "b": WayB(stores[config, "b"], settings),
            "n": WayB(stores[config, "n"], settings, checks=False)}
        run_ways(ways, warm, WARM_ENVELOPES // 4, len(warm))  # warm-up: own partitions
        for name, f in run_ways(ways, messages, args.batch, events).items():
            results[config, name] = f
            print(f"  {config:5} {LABELS[name]:20}: {f.total(0):.2f} s wall, "
                  f"{f.total(1):.2f} s thread CPU, {f.total(2):.2f} s process CPU", flush=True)

    identical = True
    print("\ncontents, count() and sum(cityHash64(*)) (warm-up batch included), and active "
          "parts (merges stopped: one per insert block):")
    for config in ("plain", "views"):
        a = stores[config, "a"]
        tables = ["requests_raw", *targets(a, views_of(a, "requests_raw"))]
        sums = {w: checksums(stores[config, w], tables) for w in LABELS}
        for t in tables:
            same = sums["a"][t] == sums["b"][t] == sums["n"][t]
            identical &= same
            print(f"  {config:5} {t:14} {'identical' if same else 'DIFFER':9} "
                  + "  ".join(f"{w.upper()} {sums[w][t][0]:,} {sums[w][t][1]:>20} "
                              f"{parts(stores[config, w], t)} parts" for w in LABELS))
    print_table(results, events)
    load = os.getloadavg()[0]
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, check=False).stdout.strip()
    print(f"\nrevision {rev}, nproc={os.cpu_count()}, Python {platform.python_version()}, "
          f"load average {load:.2f}; rows identical in every table: "
          f"{'yes' if identical else 'NO'}")


def parts(store: ClickHouseStore, table: str) -> int:
    rows = store.rows("SELECT count() FROM system.parts WHERE database = {db:String} AND "
                      "table = {t:String} AND active", {"db": store.database, "t": table})
    return int(rows[0][0])


def _schema(config: str) -> str:
    return "requests_raw only" if config == "plain" else "with its views"


def print_table(results: dict[tuple[str, str], Figures], events: int) -> None:
    print(f"\nper event, µs ({events:,} events; thread = the calling thread):")
    print("| schema | way | wall | thread CPU | process CPU | before the insert call, thread "
          "| insert call, thread | insert call, process |")
    print("| --- " * 8 + "|")
    for (config, way), f in results.items():
        cells = [f.total(0), f.total(1), f.total(2), f.prep[1], f.insert[1], f.insert[2]]
        print(f"| {_schema(config)} | {LABELS[way]} | "
              + " | ".join(f"{f.per_event(c):.2f}" for c in cells) + " |")
    print("\nratios to A:")
    print("| schema | way | wall | thread CPU | process CPU | insert call, process |")
    print("| --- " * 6 + "|")
    for config in ("plain", "views"):
        a = results[config, "a"]
        for way in ("b", "n"):
            b = results[config, way]
            r = [b.total(0) / a.total(0), b.total(1) / a.total(1), b.total(2) / a.total(2),
                 b.insert[2] / a.insert[2]]
            print(f"| {_schema(config)} | {LABELS[way]} / A | "
                  + " | ".join(f"{x:.2f}" for x in r) + " |")
    views = []
    for w in LABELS:
        plain, full = results["plain", w], results["views", w]
        views.append(f"{LABELS[w]} {plain.per_event(full.insert[2] - plain.insert[2]):.2f}")
    print("\nthe views' engine CPU (process CPU of the insert call, with views − without), "
          "µs/event: " + ", ".join(views))


if __name__ == "__main__":
    main()
