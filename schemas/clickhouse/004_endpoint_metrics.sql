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
