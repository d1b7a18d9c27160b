"""Scrape-time gauges of `GET /metrics`: consumer lag per partition and live workers per endpoint.

Both are measured when Prometheus scrapes, not pushed by the worker, so they are right for any
process layout (API and worker in one process or apart):
- `vitals_consumer_lag{topic,partition}` = log end offset − the consumer group's committed
  offset (log start offset when the group has not committed yet), read from the brokers with an
  admin client and a metadata-only consumer;
- `vitals_live_workers{tenant,endpoint_id}` = workers whose latest heartbeat is younger than the
  liveness timeout at the API clock's now (the `nworkers` definition).
Results are kept `REFRESH_S` seconds so frequent scrapes do not hammer Kafka or ClickHouse;
a broker that does not answer within `TIMEOUT_S` leaves the previous lag values in place.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.core.errors import StorageError
from pipeline.ingest.topics import KINDS
from query_api.context import ApiContext
from query_api.ops.store import live_workers

__all__ = ["REFRESH_S", "consumer_lag", "refresh"]

log = logging.getLogger("vitals.api")

REFRESH_S = 5.0
TIMEOUT_S = 5.0


async def consumer_lag(bootstrap: str, group: str, topics: list[str]
                       ) -> dict[tuple[str, int], int]:
    """(topic, partition) → messages the group has not committed yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="vitals-lag")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id="vitals-lag",
                                enable_auto_commit=False)
    try:
        await admin.start()
        await consumer.start()
        described = await admin.describe_topics(topics)
        tps = [TopicPartition(t["topic"], p["partition"]) for t in described
               if not t.get("error_code") for p in t["partitions"]]
        if not tps:
            return {}
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        out = {}
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
            out[(tp.topic, tp.partition)] = max(0, ends[tp] - done)
        return out
    finally:
        await consumer.stop()
        await admin.close()


async def _live_workers(ctx: ApiContext) -> list[tuple[dict[str, str], float]]:
    now_ms = int(ctx.clock() * 1000)
    rows = await live_workers(ctx.store, now_ms - ctx.settings.liveness_timeout_s * 1000, now_ms)
    return [({"tenant": t, "endpoint_id": str(ep)}, float(n)) for t, ep, n in rows]


async def refresh(ctx: ApiContext) -> None:
    """Update the two gauges in `ctx.telemetry` unless refreshed within REFRESH_S."""
    now = ctx.clock()
    last = ctx.gauges_refreshed_at
    if last is not None and 0 <= now - last < REFRESH_S:
        return
    ctx.gauges_refreshed_at = now
    try:
        ctx.telemetry.replace("vitals_live_workers", await _live_workers(ctx))
    except StorageError as exc:  # the pipeline's own metrics must render when storage cannot
        log.warning("live workers unavailable: %s", exc)
    s = ctx.settings
    if not s.kafka_bootstrap:
        return
    try:
        async with asyncio.timeout(TIMEOUT_S):
            lag = await consumer_lag(s.kafka_bootstrap, s.consumer_group,
                                     [s.topics.topic(k) for k in KINDS])
    except Exception as exc:  # a scrape must not fail because a broker is slow
        log.warning("consumer lag unavailable: %s", exc)
        return
    ctx.telemetry.replace("vitals_consumer_lag",
                          [({"topic": t, "partition": str(p)}, float(n))
                           for (t, p), n in sorted(lag.items())])
