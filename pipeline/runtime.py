"""Run Vitals' parts inside one asyncio process: storage, the faust worker, the query API.

`Runtime` is what `vitals up`, `vitals worker`, `vitals api` and the integration tests share.
In embedded mode (chdb) the worker and the API must live in one process: the engine locks its
data directory to a single process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

from pipeline.kafka_local import ensure_topics
from pipeline.settings import Settings
from pipeline.storage import AsyncStore, migrate
from pipeline.telemetry import Telemetry

__all__ = ["Runtime", "freeze_startup_heap"]

log = logging.getLogger("vitals.runtime")


#: Net container allocations that trigger a young-generation collection (CPython's default is
#: 700). A 24 h / 1m metrics document holds ~10,000 dicts while it is built, which at 700 set
#: off ~18 collections per call, each walking the half-built document (4 ms of CPU per call);
#: at 20,000 the document is freed by reference counting before a collection is due.
GC_GEN0_THRESHOLD = 20_000


def freeze_startup_heap() -> None:
    """Move every object alive after start-up (modules, the app, clients) out of the garbage
    collector's reach, and collect the young generation less often (`GC_GEN0_THRESHOLD`).
    Without the freeze, each full collection walks the whole heap: 35-50 ms pauses in the
    middle of API calls that build large documents."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


class Runtime:
    def __init__(self, settings: Settings, *, worker: bool = True, api: bool = True,
                 statsd: bool = True, clock: Callable[[], float] = time.time,
                 progress: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.with_worker = worker
        self.with_api = api
        self.clock = clock
        self.progress = progress or (lambda _m: None)
        self.telemetry = Telemetry()
        self.store: AsyncStore | None = None
        self.worker_app: Any = None
        self.api_app: Any = None
        self._server: Any = None
        self._server_task: asyncio.Task[None] | None = None
        self.api_url: str | None = None
        self._worker_ready = False
        self.producer: Any = None
        self.with_statsd = statsd and settings.statsd_port is not None
        self.statsd: Any = None
        self._statsd_producer: Any = None
        self._compactor: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Storage (engine start, migrations), then the worker, the API and the DogStatsD
        listener. The worker's topics are created while the storage starts (that waits on the
        broker). Importing faust meanwhile on a thread was measured and did not pay: it
        competes with the migrations for the GIL."""
        s = self.settings
        loop = asyncio.get_running_loop()
        early: list[asyncio.Future[Any]] = []
        if self.with_worker:
            assert s.kafka_bootstrap, "the worker needs settings.kafka_bootstrap"
            early = [asyncio.ensure_future(ensure_topics(
                s.kafka_bootstrap, self._worker_topics(), partitions=s.topic_partitions))]
        try:
            if self.with_worker or self.with_api:
                self.store = await loop.run_in_executor(None, AsyncStore.open, s.dsn,
                                                        s.clickhouse_database)
                await self.store.call(lambda st: migrate(st, raw_ttl_days=s.retention_days))
                self.progress(f"ClickHouse ready ({'embedded' if s.embedded else s.dsn}), "
                              f"database {s.clickhouse_database}")
            await asyncio.gather(*early)
        except BaseException:
            for f in early:
                f.cancel()
            await asyncio.gather(*early, return_exceptions=True)
            raise
        if self.with_worker:
            await self._start_worker()
        if self.with_api:
            await self._start_api()
        if self.with_statsd:
            await self._start_statsd()
        freeze_startup_heap()

    async def _start_statsd(self) -> None:
        from pipeline.producer import Producer
        from pipeline.statsd_listener import StatsdListener

        s = self.settings
        if not s.kafka_bootstrap:
            raise ValueError("the DogStatsD listener needs settings.kafka_bootstrap")
        self._statsd_producer = Producer(s.kafka_bootstrap, s.topics, validate=False,
                                         max_future_s=s.max_future_s, clock=self.clock)
        await self._statsd_producer.start()
        self.statsd = StatsdListener(s, self._statsd_producer, self.telemetry, clock=self.clock)
        await self.statsd.start()
        self.progress(f"DogStatsD listener on udp://{s.statsd_host}:{self.statsd.port} "
                      f"(tenant {s.statsd_tenant!r})")

    def _worker_topics(self) -> list[str]:
        from pipeline.topics import KINDS

        t = self.settings.topics
        return [n for k in KINDS for n in (t.topic(k), t.dlq(k))]

    async def _start_worker(self) -> None:
        from pipeline.worker import WORKER_KINDS, create_worker_app

        s = self.settings
        assert self.store is not None and s.kafka_bootstrap
        self.worker_app = create_worker_app(s, self.store, self.telemetry, clock=self.clock)
        self.worker_app.finalize()
        await self.worker_app.start()
        self._worker_ready = True
        if s.compact_interval_s > 0:
            from pipeline import compaction

            self._compactor = asyncio.create_task(
                compaction.run(self.store, s.compact_interval_s, self.clock))
        self.progress(f"worker consuming {', '.join(s.topics.topic(k) for k in WORKER_KINDS)} "
                      f"from {s.kafka_bootstrap}")

    async def _start_api(self) -> None:
        import uvicorn

        from query_api.app import create_app
        from query_api.auth import Authenticator
        from query_api.context import ApiContext

        assert self.store is not None
        s = self.settings
        if s.kafka_bootstrap:
            from pipeline.producer import Producer

            self.producer = Producer(s.kafka_bootstrap, s.topics, max_future_s=s.max_future_s,
                                     clock=self.clock)
            await self.producer.start()
        ctx = ApiContext(settings=s, store=self.store, auth=Authenticator(self.store),
                         telemetry=self.telemetry, clock=self.clock,
                         ready=lambda: self._worker_ready or not self.with_worker,
                         producer=self.producer)
        self.api_app = create_app(ctx)
        config = uvicorn.Config(self.api_app, host=s.api_host, port=s.api_port,
                                log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        # The runtime owns SIGINT/SIGTERM; uvicorn must not swap the handlers.
        self._server.capture_signals = contextlib.nullcontext
        self._server_task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._server_task.done():
                self._server_task.result()
                raise RuntimeError(f"query API failed to listen on {s.api_host}:{s.api_port}")
            await asyncio.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.api_url = f"http://{s.api_host}:{port}"
        self.progress(f"query API listening on {self.api_url} (OpenAPI: {self.api_url}/docs)")

    async def stop(self) -> None:
        if self.statsd is not None:
            await self.statsd.stop()
            self.statsd = None
        if self._statsd_producer is not None:
            await self._statsd_producer.close()
            self._statsd_producer = None
        if self._compactor is not None:
            self._compactor.cancel()
            await asyncio.gather(self._compactor, return_exceptions=True)
        if self._server is not None:
            self._server.should_exit = True
            if self._server_task is not None:
                await asyncio.wait([self._server_task], timeout=10)
        if self.producer is not None:
            await self.producer.close()
            self.producer = None
        if self.worker_app is not None:
            await self.worker_app.stop()
            self.worker_app = None
        if self.store is not None:
            self.store.close()
            self.store = None
