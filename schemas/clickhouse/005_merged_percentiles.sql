-- Per-bucket latency percentiles of the compacted rollups, computed once when a compacted row is
-- written instead of on every read. Each column is the sketch bucket index (pipeline/storage/sketch.py)
-- holding rank max(1, ceil(q·n)) of the row's `latency_hist`, the rule of
-- `pipeline.storage.sketch.quantiles`; 0 when the row has no requests. An index i stands for
-- 2·γ^i / (γ + 1) milliseconds with γ = (1 + 0.01) / (1 − 0.01) (`sketch.bucket_value`), and
-- -32768 for a latency of 0.
-- MATERIALIZED: not returned by SELECT *, select them by name. Rows written before this migration
-- compute them on read until ClickHouse merges their parts.

ALTER TABLE {db}.requests_1m_merged
    ADD COLUMN IF NOT EXISTS p50_bucket Int16 MATERIALIZED
        arraySort(mapKeys(latency_hist))[arrayFirstIndex(c -> c >= greatest(1, ceil(0.5 * arraySum(mapValues(latency_hist)))), arrayCumSum(arraySort((v, k) -> k, mapValues(latency_hist), mapKeys(latency_hist))))],
    ADD COLUMN IF NOT EXISTS p95_bucket Int16 MATERIALIZED
        arraySort(mapKeys(latency_hist))[arrayFirstIndex(c -> c >= greatest(1, ceil(0.95 * arraySum(mapValues(latency_hist)))), arrayCumSum(arraySort((v, k) -> k, mapValues(latency_hist), mapKeys(latency_hist))))],
    ADD COLUMN IF NOT EXISTS p99_bucket Int16 MATERIALIZED
        arraySort(mapKeys(latency_hist))[arrayFirstIndex(c -> c >= greatest(1, ceil(0.99 * arraySum(mapValues(latency_hist)))), arrayCumSum(arraySort((v, k) -> k, mapValues(latency_hist), mapKeys(latency_hist))))];

ALTER TABLE {db}.requests_1h_merged
    ADD COLUMN IF NOT EXISTS p50_bucket Int16 MATERIALIZED
        arraySort(mapKeys(latency_hist))[arrayFirstIndex(c -> c >= greatest(1, ceil(0.5 * arraySum(mapValues(latency_hist)))), arrayCumSum(arraySort((v, k) -> k, mapValues(latency_hist), mapKeys(latency_hist))))],
    ADD COLUMN IF NOT EXISTS p95_bucket Int16 MATERIALIZED
        arraySort(mapKeys(latency_hist))[arrayFirstIndex(c -> c >= greatest(1, ceil(0.95 * arraySum(mapValues(latency_hist)))), arrayCumSum(arraySort((v, k) -> k, mapValues(latency_hist), mapKeys(latency_hist))))],
    ADD COLUMN IF NOT EXISTS p99_bucket Int16 MATERIALIZED
        arraySort(mapKeys(latency_hist))[arrayFirstIndex(c -> c >= greatest(1, ceil(0.99 * arraySum(mapValues(latency_hist)))), arrayCumSum(arraySort((v, k) -> k, mapValues(latency_hist), mapKeys(latency_hist))))];
