-- Request rollups computed by ClickHouse. Every insert into `requests_raw` (one per sink flush)
-- also feeds the three materialized views below, which write one row per (Kafka message,
-- tenant, endpoint, autogroup, bucket) into requests_1s / requests_1m / requests_1h: the
-- message's partial aggregate, keyed by its source position (src_partition, src_offset) exactly
-- as before. A redelivered message re-inserts identical raw rows, so the views write identical
-- rollup rows with identical keys, which the ReplacingMergeTree tables collapse (read with FINAL).
--
-- `latency_hist` maps a sketch bucket index to a count. The index is the rule of
-- `pipeline.storage.sketch.bucket_of`: -32768 for latencies ≤ 0.001 ms, else ceil(ln(v) / ln(γ)) with
-- γ = (1 + 0.01) / (1 − 0.01), ln(γ) = 0.020000666706669435; relative error ≤ 1 %.
-- Failure classes: `error_kind` holds the normalised class ('' for a success; 4xx without a
-- kind is 'client', 5xx 'server'), as written by the worker.

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.requests_1s_mv TO {db}.requests_1s AS
SELECT
    tenant, endpoint_id, autogroup_id,
    toDateTime(toStartOfSecond(ts), 'UTC') AS bucket,
    src_partition, src_offset,
    count() AS requests,
    countIf(success) AS successes,
    countIf(NOT success) AS failures,
    countIf(error_kind = 'client') AS err_client,
    countIf(error_kind = 'server') AS err_server,
    countIf(error_kind = 'timeout') AS err_timeout,
    countIf(error_kind = 'resource_exhausted') AS err_resource,
    countIf(error_kind = 'other') AS err_other,
    sum(work_units) AS work_units,
    sum(tokens_in) AS tokens_in,
    sum(tokens_out) AS tokens_out,
    sum(latency_ms) AS latency_sum,
    min(latency_ms) AS latency_min,
    max(latency_ms) AS latency_max,
    sumMap(map(if(latency_ms <= 0.001, toInt16(-32768),
                  toInt16(ceil(log(latency_ms) / 0.020000666706669435))), toUInt64(1))) AS latency_hist,
    sum(queue_ms) AS queue_ms_sum,
    countIf(cold_start) AS cold_starts,
    sumIf(cold_start_ms, cold_start) AS cold_start_ms_sum,
    sum(gpu_seconds) AS gpu_seconds,
    sum(bytes_out) AS bytes_out
FROM {db}.requests_raw
GROUP BY tenant, endpoint_id, autogroup_id, bucket, src_partition, src_offset;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.requests_1m_mv TO {db}.requests_1m AS
SELECT
    tenant, endpoint_id, autogroup_id,
    toDateTime(toStartOfMinute(ts), 'UTC') AS bucket,
    src_partition, src_offset,
    count() AS requests,
    countIf(success) AS successes,
    countIf(NOT success) AS failures,
    countIf(error_kind = 'client') AS err_client,
    countIf(error_kind = 'server') AS err_server,
    countIf(error_kind = 'timeout') AS err_timeout,
    countIf(error_kind = 'resource_exhausted') AS err_resource,
    countIf(error_kind = 'other') AS err_other,
    sum(work_units) AS work_units,
    sum(tokens_in) AS tokens_in,
    sum(tokens_out) AS tokens_out,
    sum(latency_ms) AS latency_sum,
    min(latency_ms) AS latency_min,
    max(latency_ms) AS latency_max,
    sumMap(map(if(latency_ms <= 0.001, toInt16(-32768),
                  toInt16(ceil(log(latency_ms) / 0.020000666706669435))), toUInt64(1))) AS latency_hist,
    sum(queue_ms) AS queue_ms_sum,
    countIf(cold_start) AS cold_starts,
    sumIf(cold_start_ms, cold_start) AS cold_start_ms_sum,
    sum(gpu_seconds) AS gpu_seconds,
    sum(bytes_out) AS bytes_out
FROM {db}.requests_raw
GROUP BY tenant, endpoint_id, autogroup_id, bucket, src_partition, src_offset;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.requests_1h_mv TO {db}.requests_1h AS
SELECT
    tenant, endpoint_id, autogroup_id,
    toDateTime(toStartOfHour(ts), 'UTC') AS bucket,
    src_partition, src_offset,
    count() AS requests,
    countIf(success) AS successes,
    countIf(NOT success) AS failures,
    countIf(error_kind = 'client') AS err_client,
    countIf(error_kind = 'server') AS err_server,
    countIf(error_kind = 'timeout') AS err_timeout,
    countIf(error_kind = 'resource_exhausted') AS err_resource,
    countIf(error_kind = 'other') AS err_other,
    sum(work_units) AS work_units,
    sum(tokens_in) AS tokens_in,
    sum(tokens_out) AS tokens_out,
    sum(latency_ms) AS latency_sum,
    min(latency_ms) AS latency_min,
    max(latency_ms) AS latency_max,
    sumMap(map(if(latency_ms <= 0.001, toInt16(-32768),
                  toInt16(ceil(log(latency_ms) / 0.020000666706669435))), toUInt64(1))) AS latency_hist,
    sum(queue_ms) AS queue_ms_sum,
    countIf(cold_start) AS cold_starts,
    sumIf(cold_start_ms, cold_start) AS cold_start_ms_sum,
    sum(gpu_seconds) AS gpu_seconds,
    sum(bytes_out) AS bytes_out
FROM {db}.requests_raw
GROUP BY tenant, endpoint_id, autogroup_id, bucket, src_partition, src_offset;
