"""Rows for the `jobs` topic kind: task and node lifecycle events. Pure.

Every row carries its source position (partition, offset, index in the envelope) in the
ReplacingMergeTree key (schemas/clickhouse/003_metrics_jobs.sql): exact under redelivery.
"""

from __future__ import annotations

from typing import Any

from pipeline.ingest.rows.requests import SinkBatch

__all__ = ["NODE_COLUMNS", "TASK_COLUMNS", "build"]

TASK_COLUMNS = ("tenant", "user", "task_id", "state", "cluster", "ts", "src_partition",
                "src_offset", "src_index")
NODE_COLUMNS = ("tenant", "user", "cluster", "node_id", "state", "ts", "src_partition",
                "src_offset", "src_index")


def build(batch: SinkBatch, partition: int, offset: int,
          events: list[tuple[int, dict[str, Any]]]) -> None:
    tasks = batch.rows_for("job_tasks", TASK_COLUMNS)
    nodes = batch.rows_for("job_nodes", NODE_COLUMNS)
    for index, e in events:
        if e["type"] == "task":
            tasks.append((e["tenant"], e["user"], e["task_id"], e["state"], e["cluster"],
                          e["ts"], partition, offset, index))
        else:
            nodes.append((e["tenant"], e["user"], e["cluster"], e["node_id"], e["state"],
                          e["ts"], partition, offset, index))
        batch.events += 1
