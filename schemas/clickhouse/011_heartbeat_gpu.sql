-- Optional GPU figures of a heartbeat (schemas/heartbeat.json): temperature in °C and the
-- worker's GPU memory in bytes. NULL when a heartbeat does not carry them, so averages count
-- only the workers that report them (endpoint metrics `resources.gpu`).

ALTER TABLE {db}.heartbeats_raw
    ADD COLUMN IF NOT EXISTS gpu_temp_c Nullable(Float32) AFTER cpu_util,
    ADD COLUMN IF NOT EXISTS gpu_mem_total_bytes Nullable(UInt64) AFTER gpu_temp_c;
