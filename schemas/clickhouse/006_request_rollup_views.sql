-- Request rollups computed by ClickHouse. Every insert into `requests_raw` (one per sink flush)
-- also feeds the three materialized views below, which write one row per (Kafka message,
-- tenant, endpoint, autogroup, bucket) into requests_1s / requests_1m / requests_1h: the
-- message's partial aggregate, keyed by its source position (src_partition, src_offset) exactly
-- as before. A redelivered message re-inserts identical raw rows, so the views write identical
-- rollup rows with identical keys, which the ReplacingMergeTree tables collapse (read with FINAL).
--
-- `{rollup_from_raw}` is filled in by the migrator (pipeline/storage/ddl.py): every rollup column
-- as an aggregate of the raw rows, from `pipeline.storage.rollup.FROM_RAW`. `latency_hist` maps
-- a sketch bucket index to a count, by the rule of `pipeline.storage.sketch.bucket_of`
-- (`sketch.sql_bucket_of`). Failure classes: `error_kind` holds the normalised class ('' for a
-- success; 4xx without a kind is 'client', 5xx 'server'), as written by the worker.

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.requests_1s_mv TO {db}.requests_1s AS
SELECT
    tenant, endpoint_id, autogroup_id,
    toDateTime(toStartOfSecond(ts), 'UTC') AS bucket,
    src_partition, src_offset,
    {rollup_from_raw}
FROM {db}.requests_raw
GROUP BY tenant, endpoint_id, autogroup_id, bucket, src_partition, src_offset;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.requests_1m_mv TO {db}.requests_1m AS
SELECT
    tenant, endpoint_id, autogroup_id,
    toDateTime(toStartOfMinute(ts), 'UTC') AS bucket,
    src_partition, src_offset,
    {rollup_from_raw}
FROM {db}.requests_raw
GROUP BY tenant, endpoint_id, autogroup_id, bucket, src_partition, src_offset;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.requests_1h_mv TO {db}.requests_1h AS
SELECT
    tenant, endpoint_id, autogroup_id,
    toDateTime(toStartOfHour(ts), 'UTC') AS bucket,
    src_partition, src_offset,
    {rollup_from_raw}
FROM {db}.requests_raw
GROUP BY tenant, endpoint_id, autogroup_id, bucket, src_partition, src_offset;
