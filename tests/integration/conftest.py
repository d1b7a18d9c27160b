"""Integration fixtures: one real Kafka broker and one embedded ClickHouse per test session;
each test gets its own uuid-named topics, consumer group and database.

Infrastructure never skips: a broker or engine that cannot start fails the tests.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.cli.runtime import Runtime
from pipeline.core.settings import Settings, TopicNames
from pipeline.sdk.producer import Producer
from pipeline.storage import keys
from tests.integration.kafka_fixture import kafka_bootstrap  # noqa: F401


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.kafka)
            item.add_marker(pytest.mark.clickhouse)


@pytest.fixture(scope="session")
def chdb_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture
def settings(kafka_bootstrap: str, chdb_dsn: str, tmp_path: Path) -> Settings:  # noqa: F811
    tag = uuid.uuid4().hex[:10]
    return Settings(
        kafka_bootstrap=kafka_bootstrap, clickhouse_dsn=chdb_dsn, data_dir=tmp_path,
        clickhouse_database=f"t_{tag}", topics=TopicNames(prefix=f"t{tag}-"),
        consumer_group=f"g{tag}", api_port=0, batch_max_seconds=0.1,
    )


class Stack:
    """A running Runtime plus helpers to reach it."""

    def __init__(self, rt: Runtime, settings: Settings) -> None:
        self.rt = rt
        self.settings = settings
        self.http = httpx.AsyncClient(base_url=rt.api_url or "", timeout=30)

    async def key(self, tenant: str = "default", role: str = "admin") -> str:
        assert self.rt.store is not None
        new = await self.rt.store.call(lambda s: keys.create_key(s, tenant, role))
        return new.key

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        assert self.rt.store is not None
        return await self.rt.store.rows(sql.replace("{db}", self.settings.clickhouse_database))

    async def wait_requests(self, n: int, timeout: float = 60) -> None:
        """Wait until `n` request events are stored and counted by every rollup view: the views
        write after the raw rows of the same insert, so raw rows alone can be seen first."""
        await self.wait_for(lambda: self.rows(
            "SELECT (SELECT count() FROM {db}.requests_raw FINAL), "
            "(SELECT sum(requests) FROM {db}.requests_1s FINAL), "
            "(SELECT sum(requests) FROM {db}.requests_1m FINAL), "
            "(SELECT sum(requests) FROM {db}.requests_1h FINAL)"), [(n, n, n, n)], timeout)

    async def ingest(self, requests: list[dict[str, Any]], heartbeats: list[dict[str, Any]],
                     clock: Callable[[], float]) -> None:
        """Publish request and heartbeat events (validated at `clock`) and wait until every
        one is stored and rolled up."""
        async with Producer(self.settings.kafka_bootstrap, self.settings.topics,
                            clock=clock) as p:
            await p.send_many("requests", requests)
            await p.send_many("heartbeats", heartbeats)
        await self.wait_requests(len(requests))
        await self.wait_for(lambda: self.rows("SELECT count() FROM {db}.heartbeats_raw FINAL"),
                            [(len(heartbeats),)])

    async def wait_for(self, probe: Callable[[], Any], expected: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = await probe()
            if last == expected:
                return last
            await asyncio.sleep(0.1)
        dl = await self.rows("SELECT topic, reason, count() FROM {db}.dead_letters GROUP BY ALL")
        raise AssertionError(f"timed out waiting for {expected!r}; last value {last!r}; "
                             f"dead letters {dl[:5]!r}; "
                             f"telemetry {self.rt.telemetry.render()[:800]}")


@pytest.fixture
async def stack_factory(settings: Settings) -> AsyncIterator[Callable[..., Any]]:
    started: list[Stack] = []

    async def make(clock: Callable[[], float] = time.time, **overrides: Any) -> Stack:
        s = settings.with_(**overrides) if overrides else settings
        rt = Runtime(s, clock=clock)
        await rt.start()
        stack = Stack(rt, s)
        started.append(stack)
        return stack

    yield make
    for stack in reversed(started):
        await stack.http.aclose()
        await stack.rt.stop()
