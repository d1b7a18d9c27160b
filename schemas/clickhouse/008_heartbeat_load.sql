-- The load a pyworker reports (vast.ai worker status): `new_load` is the work that arrived at
-- the worker since its last accepted report (work units), `rej_load` the work it rejected in
-- that time. Heartbeats carried both before (schemas/heartbeat.json); they are stored from here
-- on, so the stats API's `curload` counts the work a vast.ai worker reports
-- (query_api/vast/stats.py). Rows written before this migration read 0.

ALTER TABLE {db}.heartbeats_raw
    ADD COLUMN IF NOT EXISTS new_load Float64 DEFAULT 0 AFTER cur_load,
    ADD COLUMN IF NOT EXISTS rej_load Float64 DEFAULT 0 AFTER new_load;
