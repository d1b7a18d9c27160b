-- Endpoint metrics: per-endpoint price configuration and monthly budget.
--
-- Written by `PUT /v2/endpoints/{endpointId}/pricing` (admin key of the owning tenant). The newest
-- `version` of a (tenant, endpoint_id) row wins; read with FINAL. Prices are per GPU-second
-- billed by requests (`gpu_seconds`), per request, and per GB (1e9 bytes) transferred
-- (`bytes_out`). `monthly_budget` < 0 means "no budget configured".

CREATE TABLE IF NOT EXISTS {db}.endpoint_pricing
(
    tenant            LowCardinality(String),
    endpoint_id       UInt64,
    gpu_second_price  Float64,
    request_price     Float64,
    gb_price          Float64,
    monthly_budget    Float64,
    currency          LowCardinality(String),
    updated_at        DateTime64(3, 'UTC'),
    version           UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, endpoint_id);

-- Compacted rollups: one row per (tenant, endpoint, bucket) merging every requests_1m / 1h row
-- of that bucket (all messages, all autogroups), written by the worker's compactor
-- (pipeline/ingest/compaction.py). `src_rows` is the number of deduplicated (FINAL) source rows merged.
-- Source rows are only ever added, so a compacted row is exact exactly while the bucket still
-- has `src_rows` source rows; readers use it only then and fall back to the source rows
-- otherwise (late or new messages since compaction). Newest `version` wins.
CREATE TABLE IF NOT EXISTS {db}.requests_1m_merged
(
    tenant             LowCardinality(String),
    endpoint_id        UInt64,
    bucket             DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    src_rows           UInt64,
    requests           UInt64,
    successes          UInt64,
    failures           UInt64,
    err_client         UInt64,
    err_server         UInt64,
    err_timeout        UInt64,
    err_resource       UInt64,
    err_other          UInt64,
    work_units         Float64,
    tokens_in          UInt64,
    tokens_out         UInt64,
    latency_sum        Float64,
    latency_min        Float64,
    latency_max        Float64,
    latency_hist       Map(Int16, UInt64),
    queue_ms_sum       Float64,
    cold_starts        UInt64,
    cold_start_ms_sum  Float64,
    gpu_seconds        Float64,
    bytes_out          UInt64,
    version            UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant, endpoint_id, bucket)
{ttl:requests_1m_merged};

CREATE TABLE IF NOT EXISTS {db}.requests_1h_merged AS {db}.requests_1m_merged
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYear(bucket)
ORDER BY (tenant, endpoint_id, bucket)
{ttl:requests_1h_merged};
