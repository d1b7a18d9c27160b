"""Creating Vitals' topics (and their dead-letter topics) on any Kafka cluster, waiting until
every partition has a leader. Used by `vitals up`, the worker and the tests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from pipeline.ingest.topics import MAX_MESSAGE_BYTES
from pipeline.local.kafka_config import KafkaRuntimeError

__all__ = ["ensure_topics"]


async def ensure_topics(
    bootstrap: str, names: Sequence[str], *, partitions: int = 1, timeout: float = 30.0,
    replication: int = 1,
) -> None:
    """Make sure every topic in `names` exists, then wait until metadata shows each one with a
    leader for every partition.

    Missing topics are created with `partitions` partitions and `replication` replicas (the
    brokers' ``min.insync.replicas`` applies: 2 on a `LocalKafkaCluster`). Existing
    topics are left as they are (their partition count is not checked or changed); a topic created
    concurrently by someone else is fine. Raises KafkaRuntimeError on any other broker error or if
    the topics are not ready within `timeout` seconds.
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="vitals-ensure-topics")
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [name for name in wanted if name not in existing]
            if missing:
                response = await admin.create_topics(
                    [NewTopic(name, partitions, replication,
                               topic_configs={"max.message.bytes": str(MAX_MESSAGE_BYTES)})
                     for name in missing]
                )
                for row in response.to_object()["topic_errors"]:
                    error = for_code(row["error_code"])
                    if row["error_code"] != 0 and error is not TopicAlreadyExistsError:
                        raise KafkaRuntimeError(
                            f"creating topic {row['topic']!r} on {bootstrap} failed: "
                            f"{error.__name__} {row.get('error_message') or ''}".rstrip()
                        )
            while not _all_led(await admin.describe_topics(wanted), wanted):
                await asyncio.sleep(0.1)
    except TimeoutError as exc:
        raise KafkaRuntimeError(
            f"topics {wanted} not ready on {bootstrap} within {timeout} s"
        ) from exc
    except KafkaError as exc:
        raise KafkaRuntimeError(f"ensuring topics {wanted} on {bootstrap} failed: {exc!r}") from exc
    finally:
        await admin.close()


def _all_led(topics: list[dict[str, Any]], wanted: list[str]) -> bool:
    ready = {
        t["topic"]
        for t in topics
        if t["error_code"] == 0
        and t["partitions"]
        and all(p["leader"] >= 0 for p in t["partitions"])
    }
    return ready.issuperset(wanted)
