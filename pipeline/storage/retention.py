"""Retention per data family: how long each family's ClickHouse tables keep rows, and the oldest
event a topic kind accepts. Pure: no I/O.

A family is a group of tables that expire together. `TTL_TABLES` is the one home of which table
belongs to which family and which column its TTL counts from; `pipeline.storage.clickhouse.migrate`
applies
it on every run (`MODIFY TTL` where the retention changed, `REMOVE TTL` where it became
unlimited), so a changed setting takes effect on the next migrate.

Event age rules, the same at every door (HTTP ingest, `vitals publish`) and in the worker:
an event older than its kind's retention would be dropped by the TTL at the next merge, so it is
refused with a reason instead. Doors measure the age when the event arrives; the worker measures
it when it reads the event, up to a consumer lag later, so it allows `CONSUMER_GRACE_MS` more:
an event a door accepted is stored unless the worker reads it more than that grace later (it
then expires with the rows around it at the next TTL merge anyway).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = ["CONSUMER_GRACE_MS", "DAY_MS", "ENV", "FAMILIES", "KIND_FAMILY", "TTL_TABLES",
           "Family", "Retention", "from_env", "parse_days"]

Family = Literal["requests", "requests_1s", "requests_1m", "requests_1h", "heartbeats",
                 "task_events", "metrics", "jobs", "dead_letters"]

DAY_MS = 86_400_000
#: How much later than a door the worker may read an event and still accept its age.
CONSUMER_GRACE_MS = 6 * 3_600_000


@dataclass(frozen=True)
class Retention:
    """Days each family keeps its rows; None keeps them until deleted (no TTL)."""

    requests: int | None = 30
    requests_1s: int | None = 30
    requests_1m: int | None = 400
    requests_1h: int | None = 400
    heartbeats: int | None = 30
    task_events: int | None = None
    metrics: int | None = 30
    jobs: int | None = 400
    dead_letters: int | None = 30

    def days(self, family: Family) -> int | None:
        days: int | None = getattr(self, family)
        return days

    def max_age_ms(self, kind: str) -> int | None:
        """Oldest event (ms before the worker's clock) the worker stores for topic kind `kind`;
        None: no limit."""
        days = self.days(KIND_FAMILY[kind])
        return None if days is None else days * DAY_MS + CONSUMER_GRACE_MS

    def door_max_age_ms(self, kind: str) -> int | None:
        """Oldest event (ms before arrival) a door (HTTP ingest, `vitals publish`) accepts."""
        days = self.days(KIND_FAMILY[kind])
        return None if days is None else days * DAY_MS


FAMILIES: tuple[Family, ...] = get_args(Family)

#: The environment variable of each family.
ENV: dict[Family, str] = {f: f"VITALS_RETENTION_{f.upper()}_DAYS" for f in FAMILIES}

#: Topic kind → the family whose retention bounds the age of its events (the family of its raw
#: rows: an older request event would lose its raw row before its rollups).
KIND_FAMILY: dict[str, Family] = {
    "requests": "requests", "heartbeats": "heartbeats", "task-events": "task_events",
    "metrics": "metrics", "jobs": "jobs",
}

#: (table, TTL column expression, family) of every table that expires rows.
TTL_TABLES: tuple[tuple[str, str, Family], ...] = (
    ("requests_raw", "toDateTime(ts)", "requests"),
    ("requests_1s", "bucket", "requests_1s"),
    ("requests_1m", "bucket", "requests_1m"),
    ("requests_1m_merged", "bucket", "requests_1m"),
    ("requests_1m_rows", "bucket", "requests_1m"),
    ("requests_io_1m", "bucket", "requests_1m"),
    ("requests_1h", "bucket", "requests_1h"),
    ("requests_1h_merged", "bucket", "requests_1h"),
    ("requests_1h_rows", "bucket", "requests_1h"),
    ("heartbeats_raw", "toDateTime(ts)", "heartbeats"),
    ("task_metric_events", "toDateTime(timestamp)", "task_events"),
    ("task_log_events", "toDateTime(timestamp)", "task_events"),
    ("metrics_1s", "bucket", "metrics"),
    ("job_tasks", "toDateTime(ts)", "jobs"),
    ("job_nodes", "toDateTime(ts)", "jobs"),
    ("dead_letters", "toDateTime(received_at)", "dead_letters"),
)

#: Families that `VITALS_RETENTION_DAYS` (the single setting of earlier versions) still sets
#: when their own variable is unset.
_LEGACY: tuple[Family, ...] = ("requests", "requests_1s", "heartbeats", "metrics",
                               "dead_letters")


def parse_days(name: str, raw: str) -> int | None:
    """A retention value: a whole number of days >= 1, or `none` (keep until deleted)."""
    text = raw.strip().lower()
    if text in ("none", "forever"):
        return None
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ValueError(f"{name}={raw!r}: use a whole number of days >= 1, or 'none' "
                         f"(keep until deleted)")
    return int(text)


def from_env(env: Mapping[str, str]) -> Retention:
    """The retention settings in `env` (ValueError naming the variable on a bad value)."""
    base = Retention()
    values: dict[str, int | None] = {}
    legacy = env.get("VITALS_RETENTION_DAYS")
    if legacy:
        days = parse_days("VITALS_RETENTION_DAYS", legacy)
        values.update({f: days for f in _LEGACY})
    for family in FAMILIES:
        raw = env.get(ENV[family])
        if raw:
            values[family] = parse_days(ENV[family], raw)
    return Retention(**{f: values.get(f, base.days(f)) for f in FAMILIES})
