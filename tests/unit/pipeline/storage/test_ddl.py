"""The migrations take γ, the zero bucket, the quantile rule and the rollup columns from the
Python spec (`pipeline.storage.sketch`, `pipeline.storage.rollup`): rendered, they agree."""

from __future__ import annotations

import math
import re

from pipeline.storage import sketch
from pipeline.storage.ddl import render, statements
from pipeline.storage.retention import TTL_TABLES
from pipeline.storage.rollup import FROM_RAW, IO_FROM_RAW, ROLLUP_FIELDS
from schemas import migration_files

TTL = {table: f"TTL {column} + INTERVAL 7 DAY" for table, column, _ in TTL_TABLES}
NUMBER = r"(-?[0-9.e-]+)"


def rendered(name: str) -> list[str]:
    return [render(s, "db", TTL) for s in statements(dict(migration_files())[name])]


def test_every_placeholder_is_filled() -> None:
    placeholder = re.compile(
        r"\{(db|ttl:\w+|rollup_from_raw|io_from_raw|stored_percentiles:\w+)\}")
    for name, text in migration_files():
        for statement in statements(text):
            assert not placeholder.search(render(statement, "db", TTL)), name


def test_the_views_bucket_latencies_by_the_sketch_rule() -> None:
    rule = re.compile(rf"if\(latency_ms <= {NUMBER}, toInt16\({NUMBER}\), "
                      rf"toInt16\(ceil\(log\(latency_ms\) / {NUMBER}\)\)\)")
    views = rendered("006_request_rollup_views.sql")
    found = [rule.search(v) for v in views]
    assert len(views) == 3 and all(found)
    for m in found:
        assert m is not None
        min_value, zero, log_gamma = float(m[1]), int(m[2]), float(m[3])
        assert (min_value, zero, log_gamma) == (sketch.MIN_VALUE, sketch.ZERO_BUCKET,
                                                math.log(sketch.GAMMA))
        for v in (0.0, 0.001, 0.0011, 0.5, 1.0, 3.7, 250.0, 1e6, sketch.MAX_VALUE):
            sql = zero if v <= min_value else math.ceil(math.log(v) / log_gamma)
            assert sql == sketch.bucket_of(v)


def test_the_views_write_every_rollup_column() -> None:
    assert list(FROM_RAW) == list(ROLLUP_FIELDS)
    for view in rendered("006_request_rollup_views.sql"):
        assert re.findall(r" AS (\w+)", view.split("src_offset,", 1)[1]) == list(ROLLUP_FIELDS)


def test_the_stored_percentiles_are_the_sketch_quantiles() -> None:
    column = re.compile(rf"ADD COLUMN IF NOT EXISTS (\w+) Int16 MATERIALIZED\s+"
                        r"arraySort\(mapKeys\(latency_hist\)\)\[arrayFirstIndex\(c -> c >= "
                        rf"greatest\(1, ceil\({NUMBER} \* "
                        r"arraySum\(mapValues\(latency_hist\)\)\)\)")
    tables = rendered("005_merged_percentiles.sql")
    assert len(tables) == 2
    for sql in tables:
        assert {n: float(q) for n, q in column.findall(sql)} == sketch.STORED_PERCENTILES
    for name, q in sketch.STORED_PERCENTILES.items():
        assert name == f"p{round(q * 100)}_bucket"


def test_the_input_view_and_its_backfill_select_the_declared_sums() -> None:
    view, backfill = (s for s in rendered("012_request_input_cache_1m.sql")
                      if "requests_raw" in s)
    for statement in (view, backfill):
        for column, sql in IO_FROM_RAW.items():
            assert f"{sql} AS {column}" in statement
