-- Optional request fields (schemas/request.json): `bytes_in`, the bytes received with the
-- request, and `cache`, its cache outcome ('hit', 'miss', '' when no cache was involved or it
-- is not reported). Raw rows only: endpoint metrics read them from `requests_raw` over the
-- window (`usage.data`). Placed after bytes_out: the Native block the worker builds lists the
-- columns in table order (pipeline/ingest/rows/requests.py REQUESTS_RAW_TYPES).

ALTER TABLE {db}.requests_raw
    ADD COLUMN IF NOT EXISTS bytes_in UInt64 DEFAULT 0 AFTER bytes_out,
    ADD COLUMN IF NOT EXISTS cache LowCardinality(String) DEFAULT '' AFTER bytes_in;
