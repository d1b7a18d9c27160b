"""ClickHouse behind a small store protocol (embedded chdb or a server, both through clickhouse-
connect): error mapping by type, migrations, Native blocks, the latency sketch, retention, API
keys."""
