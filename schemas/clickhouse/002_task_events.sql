-- Task events (topic `task-events`, ClearML style): metric events, log lines, task ownership.
--
-- Idempotency follows ClearML's definition of an event's identity:
-- * task_metric_events holds scalars, vectors, debug images and plots. A row's identity is
--   (tenant, task, event_type, metric, variant, iter, event_id) where event_id is the md5 of
--   (type, iter, metric, variant, key-or-url). It is a ReplacingMergeTree(version) with
--   version = (src_offset << 20) | src_index: a resend of the same identity replaces the older
--   row, a Kafka redelivery of the same message yields the very same row. Queries use FINAL.
-- * task_log_events holds log lines. They are never merged with each other: event_id is built
--   from the Kafka source position (partition, offset, index), so only a redelivery of the same
--   message collapses (FINAL), two identical lines sent twice stay two lines.
-- * task_owners records which tenant reported which kind of events ('metrics' or 'logs') of
--   which task: read authorisation, and which table a task's reads need to touch.
--
-- Placeholders: {db} database, {ttl:<table>} TTL clause (see 001). Retention comes from
-- VITALS_RETENTION_TASK_EVENTS_DAYS: by default none, the events stay until the task's events are
-- deleted (events.delete_for_task), as on a ClearML server.

CREATE TABLE IF NOT EXISTS {db}.task_metric_events
(
    tenant         LowCardinality(String),
    task           String,
    event_type     LowCardinality(String),
    metric         String,
    variant        String,
    iter           Int64,
    event_id       String,
    timestamp      DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    value          Float64 CODEC(Gorilla, ZSTD(1)),
    values         Array(Float64) CODEC(ZSTD(1)),
    key            String CODEC(ZSTD(1)),
    url            String CODEC(ZSTD(1)),
    plot_str       String CODEC(ZSTD(3)),
    worker         LowCardinality(String),
    version        UInt64,
    src_partition  UInt16,
    src_offset     UInt64,
    src_index      UInt32,
    INDEX ts_minmax timestamp TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, task, event_type, metric, variant, iter, event_id)
{ttl:task_metric_events};

CREATE TABLE IF NOT EXISTS {db}.task_log_events
(
    tenant         LowCardinality(String),
    task           String,
    timestamp      DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    event_id       String,
    level          LowCardinality(String),
    worker         LowCardinality(String),
    msg            String CODEC(ZSTD(3)),
    src_partition  UInt16,
    src_offset     UInt64,
    src_index      UInt32
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (tenant, task, timestamp, event_id)
{ttl:task_log_events};

CREATE TABLE IF NOT EXISTS {db}.task_owners
(
    task           String,
    tenant         LowCardinality(String),
    kind           LowCardinality(String),
    last_seen      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(last_seen)
ORDER BY (task, tenant, kind);
