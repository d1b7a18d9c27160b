"""The ledger checker: what the producer got acknowledged vs what ClickHouse holds.

Generic per topic kind: a `LedgerKind` names the raw table and how an event's identity reads in
the event (as sent) and in the table (as stored). `check_ledger` counts, per kind:

- `acked`: distinct events Kafka acknowledged to the producer (delivery reports);
- `stored`: distinct identities in the raw table after deduplication (`FINAL`);
- `lost`: acknowledged but not stored; `duplicated`: identities stored more than once after
  FINAL (a redelivery the source-position keys failed to absorb, or a producer duplicate);
- `physical`: rows before FINAL (redeliveries not merged away yet) — shown, not asserted.

Stats are then compared with ground truth computed from the acknowledged events
(`request_truth`, `timeseries_truth`). Kinds added later (task events, metrics, jobs) add one
`LEDGER_KINDS` row each.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.core.settings import TopicNames
from pipeline.ingest.decode import normalise_ts_ms
from pipeline.ingest.rows.requests import classify
from pipeline.storage import sketch

Sql = Callable[[str], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True)
class LedgerKind:
    kind: str
    table: str
    #: SQL expression giving an event's identity in `table`
    stored_id: str
    #: the same identity computed from the event as sent
    event_id: Callable[[dict[str, Any]], str]


LEDGER_KINDS: dict[str, LedgerKind] = {
    "requests": LedgerKind("requests", "requests_raw", "event_id", lambda e: str(e["id"])),
    # heartbeats have no event id: a worker's heartbeat is identified by (worker id, event time)
    "heartbeats": LedgerKind(
        "heartbeats", "heartbeats_raw",
        "concat(toString(worker_id), '@', toString(toUnixTimestamp64Milli(ts)))",
        lambda e: f"{e['id']}@{normalise_ts_ms(e['ts'])}"),
}


class Ledger:
    """Collects delivery reports (`Producer(on_delivery=ledger.on_delivery)`)."""

    def __init__(self, topics: TopicNames) -> None:
        self._kind_of = {topics.topic(k): k for k in LEDGER_KINDS}
        self.acked: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.failed: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.messages = 0  # envelopes acknowledged


    def on_delivery(self, topic: str, items: list[bytes], error: BaseException | None) -> None:
        kind = self._kind_of[topic]
        lk = LEDGER_KINDS[kind]
        into = self.acked[kind] if error is None else self.failed[kind]
        self.messages += error is None
        for raw in items:
            event = orjson.loads(raw)
            into[lk.event_id(event)] = event

    def events(self, kind: str) -> list[dict[str, Any]]:
        return list(self.acked[kind].values())


@dataclass
class KindReport:
    kind: str
    acked: int
    stored: int
    physical: int
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unacked_stored: int = 0

    @property
    def exact(self) -> bool:
        return not self.lost and not self.duplicated

    def line(self) -> str:
        return (f"{self.kind}: acked {self.acked}, stored {self.stored} (physical rows "
                f"{self.physical}), lost {len(self.lost)}, duplicated {len(self.duplicated)}, "
                f"stored without ack {self.unacked_stored}")


async def stored_ids(sql: Sql, db: str, lk: LedgerKind) -> dict[str, int]:
    rows = await sql(f"SELECT {lk.stored_id} AS id, count() AS n FROM {db}.{lk.table} FINAL "
                     f"GROUP BY id")
    return {r["id"]: int(r["n"]) for r in rows}


async def check_ledger(ledger: Ledger, sql: Sql, db: str) -> dict[str, KindReport]:
    out = {}
    for kind, lk in LEDGER_KINDS.items():
        acked = ledger.acked.get(kind, {})
        stored = await stored_ids(sql, db, lk)
        physical = (await sql(f"SELECT count() AS n FROM {db}.{lk.table}"))[0]["n"]
        out[kind] = KindReport(
            kind, len(acked), len(stored), int(physical),
            lost=sorted(set(acked) - set(stored)),
            duplicated=sorted(i for i, n in stored.items() if n > 1),
            unacked_stored=len(set(stored) - set(acked)))
    return out


async def distinct_stored(sql: Sql, db: str) -> dict[str, int]:
    """Distinct stored identities per kind: the probe to wait on."""
    out = {}
    for kind, lk in LEDGER_KINDS.items():
        rows = await sql(f"SELECT uniqExact({lk.stored_id}) AS n FROM {db}.{lk.table} FINAL")
        out[kind] = int(rows[0]["n"])
    return out


# --------------------------------------------------------------------------- ground truth


def _sec(e: dict[str, Any]) -> float:
    return normalise_ts_ms(e["ts"]) / 1000


def request_truth(events: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (tenant, endpoint): requests, successes, work units, latency histogram."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for e in events:
        key = (e.get("tenant", "default"), e["endpoint_id"])
        t = out.setdefault(key, {"requests": 0, "successes": 0, "work_units": 0.0, "hist": {}})
        t["requests"] += 1
        t["successes"] += not classify(e["status"], e.get("error_kind", ""))
        t["work_units"] += e.get("work_units", 1.0)
        sketch.add(t["hist"], e.get("latency_ms", 0.0))
    return out


async def rollup_totals(sql: Sql, db: str, table: str) -> dict[tuple[str, int], dict[str, Any]]:
    rows = await sql(
        f"SELECT tenant, endpoint_id, sum(requests) AS requests, sum(successes) AS successes, "
        f"sum(work_units) AS work_units, sumMap(latency_hist) AS hist FROM {db}.{table} FINAL "
        f"GROUP BY tenant, endpoint_id")
    return {(r["tenant"], int(r["endpoint_id"])): {
        "requests": int(r["requests"]), "successes": int(r["successes"]),
        "work_units": float(r["work_units"]),
        "hist": {int(k): int(v) for k, v in r["hist"].items()}} for r in rows}


def same_totals(got: dict[Any, dict[str, Any]], want: dict[Any, dict[str, Any]]) -> list[str]:
    """Differences between rollup totals and truth ([] when exact; work units to 1e-9)."""
    diffs = []
    for key in sorted(set(got) | set(want)):
        g, w = got.get(key), want.get(key)
        if g is None or w is None:
            diffs.append(f"{key}: got {g is not None}, want {w is not None}")
            continue
        for f in ("requests", "successes", "hist"):
            if g[f] != w[f]:
                diffs.append(f"{key} {f}: got {g[f]!r}, want {w[f]!r}")
        if not math.isclose(g["work_units"], w["work_units"], rel_tol=1e-9):
            diffs.append(f"{key} work_units: got {g['work_units']}, want {w['work_units']}")
        gq = sketch.quantiles(g["hist"], (0.5, 0.95, 0.99))
        wq = sketch.quantiles(w["hist"], (0.5, 0.95, 0.99))
        if gq != wq:
            diffs.append(f"{key} p50/p95/p99: got {gq}, want {wq}")
    return diffs


def timeseries_truth(events: list[dict[str, Any]], *, tenant: str, endpoint_id: int,
                     metric: str, points: list[int], window_s: int) -> list[float | None]:
    """The value `/get_endpoint_stats/` must give at each point (see query_api.vast.store)."""
    mine = [e for e in events if e.get("tenant", "default") == tenant
            and e["endpoint_id"] == endpoint_id]
    out: list[float | None] = []
    for t in points:
        win = [e for e in mine if t - window_s <= _sec(e) < t]
        if metric == "totreqs":
            out.append(float(sum(1 for e in mine if _sec(e) < t)))
        elif metric == "reqrate":
            out.append(len(win) / window_s)
        elif metric == "curload":
            out.append(sum(e.get("work_units", 1.0) for e in win) / window_s)
        elif metric == "reliable":
            ok = sum(1 for e in win if not classify(e["status"], e.get("error_kind", "")))
            out.append(ok / len(win) if win else None)
        else:
            raise ValueError(metric)
    return out
