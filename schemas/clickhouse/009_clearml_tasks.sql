-- ClearML tasks and projects, as the ClearML SDK creates and edits them through the query API
-- (`query_api/clearml`: projects.*, tasks.*). One row per version of an entity; the latest
-- version wins (ReplacingMergeTree(version), read with FINAL). Tenant-scoped: the tenant is the
-- one of the key the SDK logged in with.
--
-- The columns analysts filter on are plain columns (name, project, type, status, times, last
-- iteration, tags); `doc` holds the whole entity as clearml-server returns it (JSON), which the
-- API serves back. A deleted entity is a newer row with deleted = 1.
--
-- No TTL: tasks and projects stay until deleted, as on a ClearML server (their events follow
-- VITALS_RETENTION_TASK_EVENTS_DAYS, see 002).
--
-- Placeholders: {db} database.

CREATE TABLE IF NOT EXISTS {db}.clearml_projects
(
    tenant       LowCardinality(String),
    id           String,
    name         String,
    description  String,
    user         String,
    tags         Array(String),
    system_tags  Array(String),
    created      DateTime64(3, 'UTC'),
    last_update  DateTime64(3, 'UTC'),
    doc          String CODEC(ZSTD(3)),
    deleted      Bool,
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, id);

CREATE TABLE IF NOT EXISTS {db}.clearml_tasks
(
    tenant          LowCardinality(String),
    id              String,
    name            String,
    project         String,
    type            LowCardinality(String),
    status          LowCardinality(String),
    status_reason   String,
    status_message  String,
    comment         String,
    user            String,
    parent          String,
    tags            Array(String),
    system_tags     Array(String),
    created         DateTime64(3, 'UTC'),
    started         Nullable(DateTime64(3, 'UTC')),
    completed       Nullable(DateTime64(3, 'UTC')),
    last_update     DateTime64(3, 'UTC'),
    last_iteration  Int64,
    doc             String CODEC(ZSTD(3)),
    deleted         Bool,
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, id);
