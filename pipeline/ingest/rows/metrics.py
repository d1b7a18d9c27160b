"""Rows for the `metrics` topic kind and the per-tenant series gate (pure but `prepare`).

`build` folds a message's metric events into one `metrics_1s` row per (tenant, series, kind,
second) and one `metric_series` row per series, every row keyed by the message's source
position (see schemas/clickhouse/003_metrics_jobs.sql): exact under redelivery.

`SeriesGate` runs before `build`, in the agent: it checks what JSON Schema cannot (tag values
are strings, the name charset, the `value` vs aggregated form, histogram buckets) and enforces
`metrics_max_series` distinct series (name + tags + kind) per tenant. Series beyond the limit
are rejected to the dead-letter topic with the reason "series limit ..." and counted in
`vitals_metrics_series_rejected_total{tenant}`. The gate learns the stored series of a tenant
on its first batch, so its decision is the same when a message is redelivered. With several
worker processes each enforces the limit on what it has seen: a tenant can briefly exceed it
by the series created concurrently on other workers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.core.telemetry import Telemetry
from pipeline.ingest.rows.metrics_store import stored_series
from pipeline.ingest.rows.requests import SinkBatch
from pipeline.statsd.parse import HISTOGRAM_KINDS, MAX_NAME, MAX_TAG_LEN, MAX_TAGS, NAME_CHARS
from pipeline.storage import sketch

if TYPE_CHECKING:
    from pipeline.storage.clickhouse import AsyncStore

__all__ = ["METRICS_COLUMNS", "SERIES_COLUMNS", "SeriesGate", "build", "series_key"]

METRICS_COLUMNS = (
    "tenant", "name", "series_key", "tags", "kind", "bucket", "count", "sum", "min", "max",
    "last", "last_ts", "hist", "src_partition", "src_offset",
)
SERIES_COLUMNS = ("tenant", "name", "series_key", "kind", "tags", "last_seen")

_AGG_FIELDS = ("count", "sum", "min", "max", "last")
_HIST_LO, _HIST_HI = sketch.ZERO_BUCKET, sketch.MAX_BUCKET
#: A bucket's count, as the schema bounds `count`: sums of many stay far inside UInt64.
_MAX_COUNT = 10**15

Event = tuple[int, dict[str, Any]]


def series_key(tags: dict[str, str]) -> str:
    """Canonical identity of a tag set: its JSON object with sorted keys."""
    return orjson.dumps(tags, option=orjson.OPT_SORT_KEYS).decode()


def _problem(e: dict[str, Any]) -> str | None:
    """Why an event that passed its JSON Schema still cannot be stored, or None."""
    name = e["name"]
    if len(name) > MAX_NAME or not NAME_CHARS.issuperset(name):
        return f"name: {name[:40]!r}: use 1-{MAX_NAME} of [A-Za-z0-9_.-/]"
    tags = e["tags"]
    if len(tags) > MAX_TAGS:
        return f"tags: {len(tags)} tags; at most {MAX_TAGS}"
    for k, v in tags.items():
        if type(v) is not str:
            return f"tags.{k[:40]}: expected string"
        if not k or len(k) > MAX_TAG_LEN or len(v) > MAX_TAG_LEN:
            return f"tags.{k[:40]}: key 1-{MAX_TAG_LEN} and value 0-{MAX_TAG_LEN} characters"
    if "value" in e:
        extra = [f for f in (*_AGG_FIELDS, "hist") if f in e]
        if extra:
            return f"{extra[0]}: not allowed with value (one sample or an aggregate, not both)"
        return None
    missing = [f for f in _AGG_FIELDS if f not in e]
    if missing:
        return f"{missing[0]}: required without value"
    hist = e.get("hist")
    if hist is not None:
        if e["kind"] not in HISTOGRAM_KINDS:
            return "hist: allowed for kinds h, ms, d only"
        for k, c in hist.items():
            try:
                b = int(k)
            except ValueError:
                return f"hist: bucket {k[:20]!r} is not an integer"
            if not _HIST_LO <= b <= _HIST_HI:
                return f"hist: bucket {b} outside [{_HIST_LO}, {_HIST_HI}]"
            if type(c) is not int or not 0 <= c <= _MAX_COUNT:
                return f"hist.{k}: count must be an integer in [0, {_MAX_COUNT}]"
    return None


class SeriesGate:
    """Admits metric events: content checks, then at most `max_series` series per tenant.

    `prepare` must have run (the sink awaits it before its first batch)."""

    def __init__(self, max_series: int, telemetry: Telemetry | None = None) -> None:
        self.max_series = max_series
        self.telemetry = telemetry
        self.known: dict[str, set[tuple[str, str, str]]] = {}
        self.ready = False

    async def prepare(self, store: AsyncStore) -> None:
        """Load the stored series of every tenant (at most `max_series` + 1 each), once."""
        if self.ready:
            return
        for tenant, name, key, kind in await stored_series(store, self.max_series + 1):
            self.known.setdefault(tenant, set()).add((name, key, kind))
        self.ready = True

    def admit(self, events: list[Event]) -> tuple[list[Event], list[tuple[int, str, Any]]]:
        ok: list[Event] = []
        bad: list[tuple[int, str, Any]] = []
        for index, e in events:
            problem = _problem(e)
            if problem is not None:
                bad.append((index, problem, e))
                continue
            tenant = e["tenant"]
            known = self.known.setdefault(tenant, set())
            ident = (e["name"], series_key(e["tags"]), e["kind"])
            if ident not in known:
                if len(known) >= self.max_series:
                    bad.append((index, f"series limit: tenant {tenant!r} has "
                                f"{self.max_series} series (VITALS_METRICS_MAX_SERIES); "
                                f"{e['name']} {ident[1]} rejected", e))
                    if self.telemetry is not None:
                        self.telemetry.inc("vitals_metrics_series_rejected_total", tenant=tenant)
                    continue
                known.add(ident)
            ok.append((index, e))
        return ok, bad


def build(batch: SinkBatch, partition: int, offset: int, events: list[Event]) -> None:
    """Append one message's `metrics_1s` and `metric_series` rows (events already admitted)."""
    accs: dict[tuple[str, str, str, str, int], list[Any]] = {}
    tags_of: dict[str, dict[str, str]] = {}
    seen: dict[tuple[str, str, str, str], int] = {}
    bucket_of = sketch.bucket_of
    for _, e in events:
        tenant, name, kind, ts = e["tenant"], e["name"], e["kind"], e["ts"]
        tags = e["tags"]
        skey = series_key(tags)
        tags_of[skey] = tags
        key = (tenant, name, skey, kind, ts // 1000)
        acc = accs.get(key)
        if acc is None:
            acc = accs[key] = [0.0, 0.0, math.inf, -math.inf, 0.0, -1, {}]
        if "value" in e:
            v, rate = e["value"], e["rate"]
            if kind == "c":
                count, total = 1.0, v / rate
            elif kind == "g":
                count, total = 1.0, v
            else:
                w = max(1, round(1 / rate))
                count, total = float(w), v * w
                b = bucket_of(v)
                acc[6][b] = acc[6].get(b, 0) + w
            lo = hi = last = v
        else:
            count, total, lo, hi, last = e["count"], e["sum"], e["min"], e["max"], e["last"]
            hist = e.get("hist")
            if hist:
                h = acc[6]
                for k, c in hist.items():
                    b = int(k)
                    h[b] = h.get(b, 0) + c
        acc[0] += count
        acc[1] += total
        if lo < acc[2]:
            acc[2] = lo
        if hi > acc[3]:
            acc[3] = hi
        if ts >= acc[5]:
            acc[4], acc[5] = last, ts
        skey_full = (tenant, name, skey, kind)
        if seen.get(skey_full, -1) < ts:
            seen[skey_full] = ts
        batch.events += 1
    rows = batch.rows_for("metrics_1s", METRICS_COLUMNS)
    for (tenant, name, skey, kind, sec), acc in accs.items():
        rows.append((tenant, name, skey, tags_of[skey], kind, sec, acc[0], acc[1], acc[2],
                     acc[3], acc[4], acc[5], acc[6], partition, offset))
    series = batch.rows_for("metric_series", SERIES_COLUMNS)
    for (tenant, name, skey, kind), ts in seen.items():
        series.append((tenant, name, skey, kind, tags_of[skey], ts))
