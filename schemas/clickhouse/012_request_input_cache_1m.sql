-- The optional request fields `bytes_in` and `cache` (migration 010) per minute, for the
-- endpoint-metrics `usage.data` sums: Σ bytes_in, cache hits and cache misses of a window were
-- read from `requests_raw`, every raw row of the window with FINAL, a cost that grows with the
-- events. Now they are read from this table, which holds one row per (tenant, endpoint,
-- autogroup, minute, Kafka message) that reported any of the fields.
--
-- Keyed by the source position like the request rollups (migration 006): a redelivered
-- message writes identical rows with identical keys, which the ReplacingMergeTree collapses
-- (read with FINAL). A message that reported neither field writes no row (its sums are zero).
-- `{io_from_raw}` is filled in by the migrator (pipeline/storage/ddl.py) from
-- `pipeline.storage.rollup.IO_FROM_RAW`.

CREATE TABLE IF NOT EXISTS {db}.requests_io_1m
(
    tenant         LowCardinality(String),
    endpoint_id    UInt64,
    autogroup_id   UInt64,
    bucket         DateTime('UTC'),
    src_partition  UInt16,
    src_offset     UInt64,
    bytes_in       UInt64,
    cache_hits     UInt64,
    cache_misses   UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant, endpoint_id, bucket, autogroup_id, src_partition, src_offset)
{ttl:requests_io_1m};

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.requests_io_1m_mv TO {db}.requests_io_1m AS
SELECT
    tenant, endpoint_id, autogroup_id,
    toDateTime(toStartOfMinute(ts), 'UTC') AS bucket,
    src_partition, src_offset,
    {io_from_raw}
FROM {db}.requests_raw
GROUP BY tenant, endpoint_id, autogroup_id, bucket, src_partition, src_offset
HAVING bytes_in > 0 OR cache_hits > 0 OR cache_misses > 0;

-- Backfill from the raw rows written before the view existed, in the first minutes after the
-- view was created (migrations run at every start: a later start skips the scan of the raw
-- rows). A message written meanwhile gets identical rows from the view and from here; the keys
-- collapse them, as they do a second backfill by a start within those minutes.
INSERT INTO {db}.requests_io_1m
SELECT
    tenant, endpoint_id, autogroup_id,
    toDateTime(toStartOfMinute(ts), 'UTC') AS bucket,
    src_partition, src_offset,
    {io_from_raw}
FROM {db}.requests_raw FINAL
WHERE (SELECT max(metadata_modification_time) FROM system.tables
       WHERE database = '{db}' AND name = 'requests_io_1m_mv') >= now() - 600
GROUP BY tenant, endpoint_id, autogroup_id, bucket, src_partition, src_offset
HAVING bytes_in > 0 OR cache_hits > 0 OR cache_misses > 0;
