-- How many rows were ever written into each (tenant, endpoint, bucket) of the 1m and 1h request
-- rollups. Materialized views on the rollup tables (which the 006 views fill) add each insert's
-- row count; merges never lower it. The metrics API compares it with a compacted row's
-- `src_rows` to decide, per bucket, whether the compacted row is current (see
-- `query_api.endpoint_metrics.store._split`): reading ~1,440 counters instead of counting every
-- per-message rollup row of a day.
--
-- Exactness only ever costs speed here: a count that is too high (a redelivered message's
-- duplicate, or a backfill racing a worker) marks the bucket stale, and stale buckets are read
-- from the rollup rows themselves, with FINAL.

CREATE TABLE IF NOT EXISTS {db}.requests_1m_rows
(
    tenant       LowCardinality(String),
    endpoint_id  UInt64,
    bucket       DateTime('UTC'),
    rows         UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant, endpoint_id, bucket)
{ttl:requests_1m_rows};

CREATE TABLE IF NOT EXISTS {db}.requests_1h_rows AS {db}.requests_1m_rows;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.requests_1m_rows_mv TO {db}.requests_1m_rows AS
SELECT tenant, endpoint_id, bucket, count() AS rows
FROM {db}.requests_1m
GROUP BY tenant, endpoint_id, bucket;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.requests_1h_rows_mv TO {db}.requests_1h_rows AS
SELECT tenant, endpoint_id, bucket, count() AS rows
FROM {db}.requests_1h
GROUP BY tenant, endpoint_id, bucket;

-- Backfill once, for rollup rows written before these views existed.
INSERT INTO {db}.requests_1m_rows
SELECT tenant, endpoint_id, bucket, count() FROM {db}.requests_1m
WHERE (SELECT count() FROM {db}.requests_1m_rows) = 0
GROUP BY tenant, endpoint_id, bucket;

INSERT INTO {db}.requests_1h_rows
SELECT tenant, endpoint_id, bucket, count() FROM {db}.requests_1h
WHERE (SELECT count() FROM {db}.requests_1h_rows) = 0
GROUP BY tenant, endpoint_id, bucket;
