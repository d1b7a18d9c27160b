-- Custom metrics (topic `metrics`) and job queues / node lifecycle (topic `jobs`).
--
-- Exactly-once: as in 001, every row carries its Kafka source position in the ORDER BY key of
-- a ReplacingMergeTree, and a message's rows depend only on its content and position, so a
-- redelivered message collapses onto the rows it wrote the first time. Queries use FINAL.
--
-- metrics_1s: one row per (message, series, kind, second). A series is a metric name plus its
-- sorted tags; `series_key` is the canonical JSON object of those tags ({"a":"1","b":"2"}).
-- Counters: `sum` is the sample-rate-scaled total, `count` the lines received. Gauges: `last`
-- is the value with the greatest `last_ts` (epoch ms). Histograms (h, ms, d): count, sum,
-- min, max and `hist`, mergeable log buckets (pipeline/storage/sketch.py, 1% relative error) merged
-- with sumMap.

CREATE TABLE IF NOT EXISTS {db}.metrics_1s
(
    tenant         LowCardinality(String),
    name           LowCardinality(String),
    series_key     String,
    tags           Map(String, String),
    kind           LowCardinality(String),
    bucket         DateTime('UTC'),
    count          Float64,
    sum            Float64,
    min            Float64,
    max            Float64,
    last           Float64,
    last_ts        Int64,
    hist           Map(Int16, UInt64),
    src_partition  UInt16,
    src_offset     UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(bucket)
ORDER BY (tenant, name, bucket, series_key, kind, src_partition, src_offset)
{ttl:metrics_1s};

-- Series registry (what GET /v2/metrics/custom/series lists, and what the per-tenant series
-- limit counts). The newest sighting wins.
CREATE TABLE IF NOT EXISTS {db}.metric_series
(
    tenant      LowCardinality(String),
    name        String,
    series_key  String,
    kind        LowCardinality(String),
    tags        Map(String, String),
    last_seen   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(last_seen)
ORDER BY (tenant, name, series_key, kind);

-- Task lifecycle (queued → started → finished | failed), per tenant and user.
CREATE TABLE IF NOT EXISTS {db}.job_tasks
(
    tenant         LowCardinality(String),
    user           String,
    task_id        String,
    state          LowCardinality(String),
    cluster        String,
    ts             DateTime64(3, 'UTC'),
    src_partition  UInt16,
    src_offset     UInt64,
    src_index      UInt32
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, task_id, ts, src_partition, src_offset, src_index)
{ttl:job_tasks};

-- Node lifecycle (up / down) per tenant, user and cluster; node-seconds are computed from it.
CREATE TABLE IF NOT EXISTS {db}.job_nodes
(
    tenant         LowCardinality(String),
    user           String,
    cluster        String,
    node_id        String,
    state          LowCardinality(String),
    ts             DateTime64(3, 'UTC'),
    src_partition  UInt16,
    src_offset     UInt64,
    src_index      UInt32
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, cluster, node_id, ts, src_partition, src_offset, src_index)
{ttl:job_nodes};
