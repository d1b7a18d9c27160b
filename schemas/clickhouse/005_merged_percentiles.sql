-- Per-bucket latency percentiles of the compacted rollups, computed once when a compacted row is
-- written instead of on every read. Each column is the sketch bucket index holding rank
-- max(1, ceil(q·n)) of the row's `latency_hist`, the rule of `pipeline.storage.sketch.quantiles`;
-- 0 when the row has no requests; `sketch.bucket_value` turns an index into milliseconds.
-- `{stored_percentiles:latency_hist}` is filled in by the migrator from
-- `sketch.STORED_PERCENTILES` and `sketch.sql_hist_quantile` (pipeline/storage/ddl.py).
-- MATERIALIZED: not returned by SELECT *, select them by name. Rows written before this migration
-- compute them on read until ClickHouse merges their parts.

ALTER TABLE {db}.requests_1m_merged
    {stored_percentiles:latency_hist};

ALTER TABLE {db}.requests_1h_merged
    {stored_percentiles:latency_hist};
