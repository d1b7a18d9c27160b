"""The migrations' text as ClickHouse runs it: placeholders filled from the Python specs. Pure.

A migration (schemas/clickhouse/NNN_*.sql) writes a repeated schema fact as a placeholder, and
`render` fills it in, statement by statement (`statements` drops the comments first), from the
one place that declares it:

- `{db}`: the database;
- `{ttl:<table>}`: the TTL clause the table gets when created (`migrate`'s retention);
- `{rollup_from_raw}`: the select list of the request rollup columns from `requests_raw`
  (`pipeline.storage.rollup.from_raw_select`, whose histogram is `sketch.sql_bucket_of`);
- `{io_from_raw}`: the select list of the `requests_io_1m` columns from `requests_raw`
  (`pipeline.storage.rollup.io_from_raw_select`);
- `{stored_percentiles:<map column>}`: the `ADD COLUMN` list of the percentile bucket columns
  (`sketch.STORED_PERCENTILES`, each `sketch.sql_hist_quantile` of the map column).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pipeline.storage.rollup import from_raw_select, io_from_raw_select
from pipeline.storage.sketch import STORED_PERCENTILES, sql_hist_quantile

__all__ = ["render", "statements", "stored_percentile_columns"]

_SPEC = re.compile(r"\{(rollup_from_raw|io_from_raw|stored_percentiles:(\w+))\}")


def stored_percentile_columns(hist: str) -> str:
    """The `ADD COLUMN` clauses of the materialized percentile bucket columns of `hist`."""
    return ",\n    ".join(
        f"ADD COLUMN IF NOT EXISTS {name} Int16 MATERIALIZED\n        {sql_hist_quantile(q, hist)}"
        for name, q in STORED_PERCENTILES.items())


def _spec(match: re.Match[str]) -> str:
    if match.group(1) == "rollup_from_raw":
        return from_raw_select()
    if match.group(1) == "io_from_raw":
        return io_from_raw_select()
    return stored_percentile_columns(match.group(2))


def render(text: str, db: str, ttl: Mapping[str, str]) -> str:
    """`text` with every placeholder filled, stripped; `ttl` maps a table to its TTL clause
    ('' for none)."""
    text = text.replace("{db}", db)
    for table, clause in ttl.items():
        text = text.replace(f"{{ttl:{table}}}", clause)
    return _SPEC.sub(_spec, text).strip()


def statements(sql: str) -> list[str]:
    """The `;`-separated statements of `sql`, comment lines dropped."""
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
