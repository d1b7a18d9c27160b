-- Requests and worker heartbeats: raw events, per-message rollups, entity registry.
--
-- Exactly-once design: every row written by the stream agents carries its Kafka source position
-- (src_partition, src_offset[, src_index]) in the table's ORDER BY key, and the tables are
-- ReplacingMergeTree. A message redelivered after a crash produces byte-identical rows with the
-- same key, so `FINAL` (or any GROUP BY over the key) sees it once. Vitals' own queries use FINAL.
--
-- Placeholders: {db} database; {ttl:<table>} the table's TTL clause, rendered by migrate() from
-- its data family's retention (`VITALS_RETENTION_<FAMILY>_DAYS`; which table belongs to which
-- family: pipeline/storage/retention.py `TTL_TABLES`), empty for a family kept until deleted. migrate()
-- also re-applies the TTL of existing tables when a setting changed. The same holds in 002-007.

CREATE TABLE IF NOT EXISTS {db}.requests_raw
(
    tenant         LowCardinality(String),
    endpoint_id    UInt64,
    autogroup_id   UInt64,
    worker_id      UInt64,
    ts             DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    event_id       String CODEC(ZSTD(1)),
    status         UInt16,
    success        Bool,
    error_kind     LowCardinality(String),
    latency_ms     Float64 CODEC(Gorilla, ZSTD(1)),
    queue_ms       Float64 CODEC(Gorilla, ZSTD(1)),
    work_units     Float64 CODEC(Gorilla, ZSTD(1)),
    tokens_in      UInt32 CODEC(T64, ZSTD(1)),
    tokens_out     UInt32 CODEC(T64, ZSTD(1)),
    cold_start     Bool,
    cold_start_ms  Float64 CODEC(Gorilla, ZSTD(1)),
    gpu_seconds    Float64 CODEC(Gorilla, ZSTD(1)),
    bytes_out      UInt64 CODEC(T64, ZSTD(1)),
    src_partition  UInt16,
    src_offset     UInt64,
    src_index      UInt32
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (tenant, endpoint_id, ts, src_partition, src_offset, src_index)
{ttl:requests_raw};

-- One row per (Kafka message, tenant, endpoint, autogroup, bucket): the message's partial
-- aggregate. Sum over FINAL rows for any window; 1s, 1m and 1h tables share the layout.
CREATE TABLE IF NOT EXISTS {db}.requests_1s
(
    tenant             LowCardinality(String),
    endpoint_id        UInt64,
    autogroup_id       UInt64,
    bucket             DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    src_partition      UInt16,
    src_offset         UInt64,
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
    bytes_out          UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant, endpoint_id, bucket, autogroup_id, src_partition, src_offset)
{ttl:requests_1s};

CREATE TABLE IF NOT EXISTS {db}.requests_1m AS {db}.requests_1s
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant, endpoint_id, bucket, autogroup_id, src_partition, src_offset)
{ttl:requests_1m};

CREATE TABLE IF NOT EXISTS {db}.requests_1h AS {db}.requests_1s
ENGINE = ReplacingMergeTree
PARTITION BY toYear(bucket)
ORDER BY (tenant, endpoint_id, bucket, autogroup_id, src_partition, src_offset)
{ttl:requests_1h};

CREATE TABLE IF NOT EXISTS {db}.heartbeats_raw
(
    tenant                 LowCardinality(String),
    endpoint_id            UInt64,
    autogroup_id           UInt64,
    worker_id              UInt64,
    ts                     DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    loadtime               Float64,
    cur_load               Float64,
    max_perf               Float64,
    cur_perf               Float64,
    cur_capacity           Float64,
    max_capacity           Float64,
    num_requests_working   UInt32,
    num_requests_recieved  UInt64,
    error_msg              String CODEC(ZSTD(1)),
    gpu_util               Float32,
    gpu_mem_util           Float32,
    cpu_util               Float32,
    src_partition          UInt16,
    src_offset             UInt64,
    src_index              UInt32
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (tenant, endpoint_id, ts, worker_id, src_partition, src_offset, src_index)
{ttl:heartbeats_raw};

-- Entity registry, filled by the agents: which tenant owns which endpoint/autogroup, and names.
CREATE TABLE IF NOT EXISTS {db}.endpoints
(
    tenant         LowCardinality(String),
    endpoint_id    UInt64,
    endpoint_name  String,
    last_seen      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(last_seen)
ORDER BY (tenant, endpoint_id, endpoint_name);

CREATE TABLE IF NOT EXISTS {db}.autogroups
(
    tenant         LowCardinality(String),
    autogroup_id   UInt64,
    endpoint_id    UInt64,
    last_seen      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(last_seen)
ORDER BY (tenant, autogroup_id, endpoint_id);

-- Rejected events, mirrored from the <topic>.dlq topics for analysts.
CREATE TABLE IF NOT EXISTS {db}.dead_letters
(
    topic          LowCardinality(String),
    src_partition  UInt16,
    src_offset     UInt64,
    src_index      Int32,
    reason         String,
    payload        String CODEC(ZSTD(3)),
    received_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (topic, src_partition, src_offset, src_index)
{ttl:dead_letters};

-- API keys: only SHA-256 hashes of the secrets are stored. The newest version of a key wins.
CREATE TABLE IF NOT EXISTS {db}.api_keys
(
    key_id      String,
    tenant      LowCardinality(String),
    role        LowCardinality(String),
    key_hash    String,
    name        String,
    created_at  DateTime64(3, 'UTC'),
    revoked     Bool,
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY key_id;
