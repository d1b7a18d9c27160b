"""Run Vitals' parts inside one asyncio process: storage, the faust worker, the query API.

`Runtime` is what `vitals up`, `vitals worker`, `vitals api` and the integration tests share.
In embedded mode (chdb) the worker and the API must live in one process: the engine locks its
data directory to a single process.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pipeline.core.health import Health
from pipeline.core.settings import Settings
from pipeline.core.telemetry import Telemetry
from pipeline.ingest.topic_admin import ensure_topics
from pipeline.storage.clickhouse import AsyncStore, migrate

if TYPE_CHECKING:
    from pipeline.cli.readiness import ReadinessMonitor
    from pipeline.ingest.faust_types import WorkerApp

__all__ = ["Runtime"]

log = logging.getLogger("vitals.runtime")


def _import_api_modules() -> None:
    for name in ("uvicorn", "query_api.app", "query_api.http_protocol"):
        importlib.import_module(name)


class Runtime:
    """Storage, API, worker and DogStatsD listener of one process, plus its `Health`.

    `health` is the process's one readiness registry: the `ReadinessMonitor` keeps "storage" and
    "broker" current, the worker's rebalance signals and sink report "agent:<topic>", and
    `/readyz` answers from it. `before_serving` runs after the migrations and before the API
    listens (`vitals up` writes `admin.key` there, so the key exists before `/healthz` answers).
    """

    def __init__(self, settings: Settings, *, worker: bool = True, api: bool = True,
                 statsd: bool = True, clock: Callable[[], float] = time.time,
                 progress: Callable[[str], None] | None = None,
                 before_serving: Callable[[Runtime], Awaitable[None]] | None = None,
                 exit_on_storage_fault: bool = False) -> None:
        self.settings = settings
        #: With `exit_on_storage_fault` (`vitals worker`), a storage error of no known class in
        #: a sink fails this future, so that the process exits non-zero and its supervisor
        #: restarts it; otherwise the topic is held and surfaced (readiness, metrics, log).
        self.exit_on_storage_fault = exit_on_storage_fault
        self.storage_fault: asyncio.Future[None] | None = None
        self.with_worker = worker
        self.with_api = api
        self.clock = clock
        self.progress = progress or (lambda _m: None)
        self.before_serving = before_serving
        self.telemetry = Telemetry()
        self.health = Health(clock)
        self.monitor: ReadinessMonitor | None = None
        self._monitor_task: asyncio.Task[None] | None = None
        self.store: AsyncStore | None = None
        self.worker_app: WorkerApp | None = None
        #: The worker's start (consumer-group join) when `start(join_in_background=True)`.
        self.worker_task: asyncio.Task[None] | None = None
        self.api_app: Any = None
        self._server: Any = None
        self._server_task: asyncio.Task[None] | None = None
        self.api_url: str | None = None
        self._probe_port: Any = None
        #: The probe port's URL (`VITALS_PROBE_PORT`), once it answers.
        self.probe_url: str | None = None
        self.producer: Any = None
        self.with_statsd = statsd and settings.statsd_port is not None
        self.statsd: Any = None
        self._statsd_producer: Any = None
        self._compactor: asyncio.Task[None] | None = None

    async def start(self, *, join_in_background: bool = False) -> None:
        """Storage (engine start, migrations), then the API, the worker and the DogStatsD
        listener. The worker's topics are created while the storage starts (that waits on the
        broker). Importing faust meanwhile on a thread was measured and did not pay: it
        competes with the migrations for the GIL.

        With `join_in_background` the worker's start (its consumer-group join, up to the session
        timeout after a crash) runs in `worker_task` and `start` returns once the API serves;
        `/readyz` says "joining" meanwhile."""
        s = self.settings
        loop = asyncio.get_running_loop()
        if self.exit_on_storage_fault and self.storage_fault is None:
            self.storage_fault = loop.create_future()
        early: list[asyncio.Future[Any]] = []
        if self.with_worker:
            assert s.kafka_bootstrap, "the worker needs settings.kafka_bootstrap"
            early = [asyncio.ensure_future(ensure_topics(
                s.kafka_bootstrap, self._worker_topics(), partitions=s.topic_partitions))]
        if self.with_api:  # imported on a thread meanwhile: the API listens sooner
            early.append(loop.run_in_executor(None, _import_api_modules))
        try:
            if self.with_worker or self.with_api:
                self.store = await loop.run_in_executor(None, AsyncStore.open, s.dsn,
                                                        s.clickhouse_database)
                await self.store.call(lambda st: migrate(st, retention=s.retention))
                self.progress(f"ClickHouse ready ({'embedded' if s.embedded else s.dsn}), "
                              f"database {s.clickhouse_database}")
            if self.before_serving is not None:
                await self.before_serving(self)
            if self.with_worker:  # not ready before the worker has joined its group
                from pipeline.ingest.topics import KINDS

                for kind in KINDS:
                    self.health.report(f"agent:{s.topics.topic(kind)}", "joining",
                                       "the worker is starting")
            self._start_monitor()
            if self.with_api:
                await self._start_api()
            await asyncio.gather(*early)
        except BaseException:
            for f in early:
                f.cancel()
            await asyncio.gather(*early, return_exceptions=True)
            raise
        if self.with_worker:
            if join_in_background:
                self.worker_task = asyncio.create_task(self._start_worker(), name="worker")
            else:
                await self._start_worker()
        if self.with_statsd:
            await self._start_statsd()

    def _start_monitor(self) -> None:
        from pipeline.cli.readiness import ReadinessMonitor

        store = self.store
        self.monitor = ReadinessMonitor(
            self.health,
            storage=None if store is None else store.probe,
            bootstrap=self.settings.kafka_bootstrap,
            worker=lambda: self.worker_app,
            clock=self.clock, telemetry=self.telemetry)
        self._monitor_task = asyncio.create_task(self.monitor.run(), name="readiness")

    async def _start_statsd(self) -> None:
        from pipeline.sdk.producer import Producer
        from pipeline.statsd.listener import StatsdListener

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
        from pipeline.ingest.topics import KINDS

        t = self.settings.topics
        return [n for k in KINDS for n in (t.topic(k), t.dlq(k))]

    async def _start_worker(self) -> None:
        # faust's import takes seconds of CPU: on a thread, so the API keeps answering
        await asyncio.to_thread(importlib.import_module, "pipeline.ingest.worker")
        from pipeline.ingest.worker import WORKER_KINDS, create_worker_app

        s = self.settings
        assert self.store is not None and s.kafka_bootstrap
        self.worker_app = create_worker_app(s, self.store, self.telemetry, clock=self.clock,
                                            health=self.health, on_fault=self._storage_fault)
        self.worker_app.finalize()
        await self.worker_app.start()
        if s.compact_interval_s > 0:
            from pipeline.ingest import compaction
            self._compactor = asyncio.create_task(
                compaction.run(self.store, s.compact_interval_s, self.clock))
        self.progress(f"worker consuming {', '.join(s.topics.topic(k) for k in WORKER_KINDS)} "
                      f"from {s.kafka_bootstrap}")

    def _storage_fault(self, exc: BaseException) -> None:
        if self.storage_fault is not None and not self.storage_fault.done():
            self.storage_fault.set_exception(exc)

    async def _start_api(self) -> None:
        import uvicorn

        from query_api.app import create_app
        from query_api.auth import Authenticator
        from query_api.context import ApiContext

        assert self.store is not None
        s = self.settings
        if s.kafka_bootstrap:
            from pipeline.sdk.producer import Producer

            self.producer = Producer(s.kafka_bootstrap, s.topics, max_future_s=s.max_future_s,
                                     max_message_bytes=s.max_message_bytes,
                                     clock=self.clock, validate=False)  # routes: Admission
            await self.producer.start()
        ctx = ApiContext(settings=s, store=self.store, auth=Authenticator(self.store),
                         telemetry=self.telemetry, clock=self.clock,
                         health=self.health,
                         lag=lambda: self.monitor.lag if self.monitor is not None else {},
                         producer=self.producer)
        self.api_app = create_app(ctx)
        from query_api.http_protocol import MAX_HEAD_BYTES, serving
        from query_api.probes import Probes

        probes = Probes(ctx)
        # Oversized request lines/heads get 414/431 JSON answers instead of a reset.
        config = uvicorn.Config(self.api_app, host=s.api_host, port=s.api_port,
                                log_level="warning", lifespan="off", access_log=False,
                                http=serving(probes),
                                h11_max_incomplete_event_size=MAX_HEAD_BYTES)
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
        if s.probe_port is not None:
            from query_api.probe_port import ProbePort

            self._probe_port = ProbePort(probes, s.api_host, s.probe_port)
            self.probe_url = await self._probe_port.start()
            self.progress(f"probes answered on {self.probe_url}/healthz and /readyz")

    async def stop(self, timeout_s: float = 6.0) -> None:
        """Stop every part, each step bounded so that the whole takes at most about
        `timeout_s` (a broker or storage that is away must not hold the process: a step that
        overruns is abandoned; unacked messages are redelivered after the restart)."""
        deadline = time.monotonic() + timeout_s

        async def step(what: str, aw: Awaitable[Any], share: float = 1.0) -> None:
            budget = max(0.2, (deadline - time.monotonic()) * share)
            try:
                async with asyncio.timeout(budget):
                    await aw
            except TimeoutError:
                log.warning("stopping %s took longer than %.1f s; abandoned", what, budget)
            except Exception as exc:  # stopping continues with the next part
                log.warning("stopping %s failed: %r", what, exc)

        for task in (self._monitor_task, self._compactor, self.worker_task):
            if task is not None and not task.done():
                task.cancel()
                await step("a background task", asyncio.gather(task, return_exceptions=True),
                           0.2)
        self._monitor_task = self._compactor = self.worker_task = None
        if self.statsd is not None:
            await step("the DogStatsD listener", self.statsd.stop(), 0.2)
            self.statsd = None
        if self._statsd_producer is not None:
            await step("the DogStatsD producer", self._statsd_producer.close(), 0.2)
            self._statsd_producer = None
        if self._probe_port is not None:
            await step("the probe port", self._probe_port.stop(), 0.2)
            self._probe_port = self.probe_url = None
        if self._server is not None:
            self._server.should_exit = True
            if self._server_task is not None:
                await step("the query API", asyncio.wait([self._server_task]), 0.3)
            self._server = None
        if self.producer is not None:
            await step("the ingest producer", self.producer.close(), 0.3)
            self.producer = None
        if self.worker_app is not None:
            # With the broker away, or the group still joining, faust's stop waits for a
            # commit or a join that cannot finish soon: no use waiting long (the unacked
            # batch is redelivered after the restart).
            stuck = any(c.state == "down" if c.name == "broker" else c.state == "joining"
                        for c in self.health.snapshot())
            await step("the stream worker", self.worker_app.stop(), 0.2 if stuck else 0.9)
            self.worker_app = None
        if self.store is not None:
            self.store.close()
            self.store = None
