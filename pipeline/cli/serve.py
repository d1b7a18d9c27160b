"""The long-running commands: `vitals up`, `worker`, `api`, `statsd` — start a `Runtime`, serve
until a signal, stop within the shutdown deadline."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from pipeline.cli.errors import CliError, _err
from pipeline.cli.gc_tuning import freeze_startup_heap
from pipeline.cli.local_state import (
    ADMIN_TENANT,
    _bootstrap,
    _check_port_free,
    _check_udp_port_free,
    _ensure_topics,
    _local_kafka,
    _state_files,
    ensure_admin_key,
    read_text_file,
    write_file_atomic,
)
from pipeline.cli.remote import _answers, curl_line
from pipeline.cli.shutdown import Shutdown
from pipeline.cli.shutdown import run as shutdown_run
from pipeline.cli.traffic import _start_demo
from pipeline.core.settings import Settings
from pipeline.local.kafka import LocalKafka

Closer = Callable[[], Awaitable[object]]


async def _until(coro: Coroutine[Any, Any, Any], stop: asyncio.Event) -> bool:
    """Run `coro`; True when it finished, False (and cancelled) if `stop` was set first."""
    task: asyncio.Task[Any] = asyncio.create_task(coro)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return False


async def _serve(
    runtime: Any,
    on_ready: Callable[[list[asyncio.Task[Any]], list[Closer]], Awaitable[None]] | None = None,
    shutdown: Shutdown | None = None,
) -> int:
    """Start `runtime`, run until SIGINT/SIGTERM/SIGHUP (or a background task fails), stop it.

    The API serves while the worker still joins its consumer group (`Runtime.worker_task`,
    watched like a background task). `on_ready` may add background tasks (cancelled first on
    stop) and closers (awaited in order, each bounded, before the runtime stops). The stop is
    bounded by `shutdown`'s deadline (see pipeline/cli/shutdown.py).
    """
    shutdown = shutdown if shutdown is not None else Shutdown()
    stop = asyncio.Event()
    shutdown.install_async(asyncio.get_running_loop(), stop)
    background: list[asyncio.Task[Any]] = []
    closers: list[Closer] = []
    code = 0
    try:
        if not await _until(runtime.start(join_in_background=True), stop):
            print("interrupted during startup", flush=True)
            return 0
        freeze_startup_heap()  # process-wide: the entry point's call, not the Runtime's
        if runtime.worker_task is not None:
            background.append(asyncio.create_task(_joined(runtime.worker_task), name="worker"))
        if getattr(runtime, "storage_fault", None) is not None:
            background.append(asyncio.create_task(_joined(runtime.storage_fault),
                                                  name="storage"))
        if on_ready is not None:
            await on_ready(background, closers)
        print("running; press Ctrl-C to stop", flush=True)
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([waiter, *background], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        for task in done:
            if task is not waiter and not task.cancelled() and task.exception() is not None:
                _err(f"{task.get_name()} failed: {task.exception()!r}; stopping")
                code = 1
        return code
    finally:
        print("stopping...", flush=True)
        for task in background:
            task.cancel()
        if background:
            await asyncio.wait(background, timeout=1.0)
        for close in closers:
            try:
                async with asyncio.timeout(1.5):
                    await close()
            except Exception as exc:
                _err(f"while stopping: {exc!r}")
        await runtime.stop(timeout_s=max(1.0, min(6.0, shutdown.remaining() - 3.5)))
        print("stopped", flush=True)


async def _joined(worker: asyncio.Future[None]) -> None:
    """Fails when the worker's start (or the storage) failed; otherwise waits forever."""
    await worker
    await asyncio.Event().wait()


def _cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    shutdown = Shutdown()
    shutdown.install_sync()
    url_file, key_file = _state_files(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    running = read_text_file(url_file)
    if running is not None and _answers(running):
        raise CliError(f"`vitals up` already runs on {settings.data_dir} at {running}", 2)
    _check_port_free(settings)
    _check_udp_port_free(settings)
    kafka: LocalKafka | None = None
    owned = False
    try:  # from here on, a broker this run started (or adopted) is stopped whatever happens
        if settings.kafka_bootstrap is None:
            kafka = _local_kafka(settings)
            found = kafka.status()
            orphaned_by = kafka.orphaned_by() if found is not None else None
            if found is None:
                print(
                    f"starting a local Kafka broker in {kafka.home} (the first start resolves "
                    f"its jars with Maven and can take a minute)",
                    flush=True,
                )
            elif orphaned_by is not None:
                print(
                    f"found a Kafka broker (pid {found.pid}) left over from a `vitals up` (pid "
                    f"{orphaned_by}) that ended without stopping it; adopting it: it stops "
                    f"with this run",
                    flush=True,
                )
            owned = found is None or orphaned_by is not None
            if owned:
                shutdown.on_force.append(kafka.kill_now)
            info = kafka.start()
            if owned:
                kafka.claim(os.getpid())
            note = f"pid {info.pid}" if owned else "started by `vitals kafka start`; left running"
            if found is None and settings.kafka_port and info.port != settings.kafka_port:
                note += f"; port {settings.kafka_port} (VITALS_KAFKA_PORT) was taken"
            print(f"Kafka: {info.bootstrap} ({note}; log {info.log_file})", flush=True)
            settings = settings.with_(kafka_bootstrap=info.bootstrap)
        code = shutdown_run(_up(settings, args, url_file, key_file, shutdown))
    finally:
        shutdown.install_sync(interrupt=False)  # the loop's close reset the handlers
        if kafka is not None and owned:
            print("stopping the local Kafka broker", flush=True)
            kafka.stop(timeout=max(1.0, shutdown.remaining() - 2.0))
            print("Kafka broker stopped", flush=True)
        shutdown.done()
    return shutdown.leave(code)


async def _up(settings: Settings, args: argparse.Namespace, url_file: Path, key_file: Path,
              shutdown: Shutdown) -> int:
    from pipeline.cli.runtime import Runtime
    from pipeline.storage import keys

    admin = {"what": ""}

    async def write_admin_key(rt: Runtime) -> None:  # before the API answers /healthz
        assert rt.store is not None
        _, admin["what"] = await rt.store.call(
            lambda s: ensure_admin_key(
                key_file,
                lambda k: keys.find_key(s, k),
                lambda: keys.create_key(s, ADMIN_TENANT, "superadmin", "bootstrap (vitals up)").key,
            )
        )

    runtime = Runtime(settings, worker=True, api=True, progress=lambda m: print(m, flush=True),
                      before_serving=write_admin_key)

    async def ready(background: list[asyncio.Task[Any]], closers: list[Closer]) -> None:
        assert runtime.api_url is not None
        write_file_atomic(url_file, runtime.api_url, 0o644)

        async def forget_url() -> None:
            url_file.unlink(missing_ok=True)

        closers.append(forget_url)
        print(
            f"\nVitals is up.\n  API:       {runtime.api_url}  (OpenAPI: {runtime.api_url}/docs)"
            f"\n  dashboard: {runtime.api_url}/ui  (sign in with the admin key)"
            + (f"\n  probes:    {runtime.probe_url}/healthz, /readyz" if runtime.probe_url else "")
            + f"\n  Kafka:     {runtime.settings.kafka_bootstrap}"
            f"\n  admin key: {key_file}  (superadmin of tenant {ADMIN_TENANT!r}; "
            f"{admin['what']})\n  try:       {curl_line(runtime.api_url, key_file)}\n",
            flush=True,
        )
        if args.demo:
            background.append(await _start_demo(settings, args.rate, None, None, 3, closers))

    return await _serve(runtime, ready, shutdown)


def _cmd_part(settings: Settings, *, worker: bool) -> int:
    from pipeline.cli.runtime import Runtime

    name = "worker" if worker else "api"
    if settings.embedded:
        raise CliError(
            f"`vitals {name}` runs against a ClickHouse server (CLICKHOUSE_DSN="
            f"http(s)://...). The embedded engine ({settings.dsn}) is locked to one "
            f"process, so the worker and the API must share it: use `vitals up`",
            2,
        )
    if worker:
        settings = settings.with_(kafka_bootstrap=_bootstrap(settings))
    else:
        _check_port_free(settings)
    runtime = Runtime(
        settings, worker=worker, api=not worker, statsd=False,
        progress=lambda m: print(m, flush=True), exit_on_storage_fault=worker,
    )
    return _run_served(runtime)


def _cmd_statsd(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.cli.runtime import Runtime

    if settings.statsd_port is None:
        raise CliError("VITALS_STATSD_PORT=off: nothing to run", 2)
    _check_udp_port_free(settings)
    settings = settings.with_(kafka_bootstrap=_bootstrap(settings))
    _ensure_topics(settings, settings.kafka_bootstrap or "", ["metrics"])
    runtime = Runtime(
        settings, worker=False, api=False, statsd=True, progress=lambda m: print(m, flush=True)
    )
    return _run_served(runtime)


def _run_served(runtime: Any) -> int:
    shutdown = Shutdown()
    shutdown.install_sync()
    try:
        code = shutdown_run(_serve(runtime, shutdown=shutdown))
    finally:
        shutdown.install_sync(interrupt=False)
        shutdown.done()
    return shutdown.leave(code)
