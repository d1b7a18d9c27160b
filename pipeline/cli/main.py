"""The `vitals` command: run the pipeline, manage the local broker, keys, SQL, test traffic.

`main` reads the environment once (`Settings.from_env`) and hands the settings to one
subcommand. Expected failures (bad settings, Kafka, storage, bad input) end as one line on
stderr and exit code 2 (1 for a failed SQL query, a missing `vitals up`, or rejected events);
a clean stop after Ctrl-C/SIGTERM exits 0.

Files in the data dir written here: `admin.key` (mode 0600, the superadmin bootstrap key of
tenant "default", created by the first `vitals up` and reused while it verifies) and `api.url`
(the URL of the running `vitals up`, removed when it stops). Commands that need the embedded
store while `vitals up` holds it (`keys`, `sql`) go through that process's HTTP admin routes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import IO, Any

from pipeline.cli.gc_tuning import freeze_startup_heap
from pipeline.cli.shutdown import Shutdown
from pipeline.cli.shutdown import run as shutdown_run
from pipeline.core.errors import InvalidEvent, StorageError, StoreLocked, VitalsError
from pipeline.core.log_limit import RateLimitFilter
from pipeline.core.settings import Settings, SettingsError
from pipeline.ingest.decode import EVENT_TYPES
from pipeline.local.kafka import KafkaRuntimeError, LocalKafka
from pipeline.storage.keys import ROLES, ApiKey, KeyError_

__all__ = [
    "CliError",
    "build_parser",
    "ensure_admin_key",
    "format_progress",
    "main",
    "parse_event_line",
    "read_text_file",
    "write_file_atomic",
]

Handler = Callable[[Settings, argparse.Namespace], int]
Closer = Callable[[], Awaitable[object]]

ADMIN_TENANT = "default"


class CliError(VitalsError):
    """A failure to report as one line on stderr with exit code `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- pure-ish helpers


def read_text_file(path: Path) -> str | None:
    """The stripped content of `path`, or None if it is missing or blank."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


def write_file_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace `path` with `text` (newline added) at once; the file never exists with wider
    permissions than `mode`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, (text + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def ensure_admin_key(
    path: Path, find: Callable[[str], ApiKey | None], create: Callable[[], str]
) -> tuple[str, str]:
    """Return `(key, what)`: the superadmin key kept in `path`, reused (`what="reused"`) while
    `find` still verifies it as a live superadmin key; else a key from `create`, written to
    `path` with mode 0600 (`"created"` if there was no file, `"replaced"` if its key failed)."""
    existing = read_text_file(path)
    if existing is not None:
        info = find(existing)
        if info is not None and info.role == "superadmin" and not info.revoked:
            os.chmod(path, 0o600)
            return existing, "reused"
    key = create()
    write_file_atomic(path, key, 0o600)
    return key, "created" if existing is None else "replaced"


def parse_event_line(line: str) -> dict[str, Any] | str:
    """One JSON-lines event as a dict, or the reason it is not one."""
    import orjson

    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return f"not valid JSON: {exc}"
    if not isinstance(event, dict):
        return "expected one JSON object per line"
    return event


def format_progress(p: Any) -> str:
    """One status line of a `DemoProgress`."""
    label = "avg" if p.done else "now"
    return (
        f"demo: {p.events:,} events sent ({p.requests:,} requests, {p.heartbeats:,} "
        f"heartbeats) in {p.elapsed_s:,.0f} s, {label} {p.rate:,.0f} events/s"
    )


def curl_line(api_url: str, key_file: Path) -> str:
    auth = f"Authorization: Bearer $(cat {shlex.quote(str(key_file))})"
    return (
        f'curl -s -X POST {api_url}/get_endpoint_stats/ -H "{auth}" '
        f"-H 'Content-Type: application/json' -d '{{\"id\": 1}}'"
    )


class _ProgressLine:
    """Prints demo progress: rewritten in place on a TTY, a line every `every_s` otherwise."""

    def __init__(self, out: IO[str], every_s: float = 10.0) -> None:
        self.out = out
        self.tty = out.isatty()
        self.every_s = every_s
        self._last = 0.0

    def __call__(self, p: Any) -> None:
        text = format_progress(p)
        if self.tty:
            self.out.write("\r" + text + "\x1b[K" + ("\n" if p.done else ""))
        elif p.done or p.elapsed_s - self._last >= self.every_s:
            self._last = p.elapsed_s
            self.out.write(text + "\n")
        self.out.flush()


# --------------------------------------------------------------------------- arguments


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be > 0")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vitals",
        description="Vitals: Kafka -> faust-streaming -> ClickHouse -> query API. Configured by "
        "environment variables (KAFKA_BOOTSTRAP, CLICKHOUSE_DSN, VITALS_DATA_DIR, ...).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run broker (if needed), worker and API in one process")
    up.add_argument("--demo", action="store_true", help="also send synthetic traffic")
    up.add_argument(
        "--rate", type=_positive(float), default=20.0, help="demo requests per second (default 20)"
    )
    up.set_defaults(handler=_cmd_up)
    sub.add_parser(
        "worker", help="run only the stream worker (ClickHouse server DSN)"
    ).set_defaults(handler=lambda s, a: _cmd_part(s, worker=True))
    sub.add_parser("api", help="run only the query API (ClickHouse server DSN)").set_defaults(
        handler=lambda s, a: _cmd_part(s, worker=False)
    )
    sub.add_parser(
        "statsd", help="run only the DogStatsD UDP listener (to Kafka; VITALS_STATSD_PORT)"
    ).set_defaults(handler=_cmd_statsd)
    sub.add_parser("migrate", help="apply the ClickHouse migrations").set_defaults(
        handler=_cmd_migrate
    )

    kafka = sub.add_parser("kafka", help="manage the local Kafka broker in the data dir")
    kafka.add_argument("action", choices=("start", "stop", "status"))
    kafka.set_defaults(handler=_cmd_kafka)

    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = ksub.add_parser("create", help="create a key (shown once)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", default="", help="a note to recognise the key by")
    ksub.add_parser("list", help="list keys").add_argument("--tenant")
    ksub.add_parser("revoke", help="revoke a key").add_argument("key_id")
    keys.set_defaults(handler=_cmd_keys)

    sql = sub.add_parser("sql", help="run read-only SQL")
    sql.add_argument("query")
    sql.add_argument(
        "--format",
        help="a ClickHouse output format such as TSV, TSVWithNames, "
        "JSONEachRow, Pretty (default: PrettyCompact on a terminal, else TSV)",
    )
    sql.set_defaults(handler=_cmd_sql)

    pub = sub.add_parser("publish", help="publish JSON-lines events (exit 1 if any is rejected)")
    pub.add_argument("file", nargs="?", default="-", help="file of JSON lines, - for stdin")
    pub.add_argument("--topic", required=True, choices=tuple(EVENT_TYPES))
    pub.set_defaults(handler=_cmd_publish)

    demo = sub.add_parser("demo", help="send synthetic traffic")
    demo.add_argument(
        "--rate",
        type=_positive(float),
        default=20.0,
        help="requests per second, heartbeats come on top (default 20)",
    )
    demo.add_argument("--duration", type=_positive(float), help="seconds (default: until Ctrl-C)")
    demo.add_argument("--endpoints", type=_positive(int), default=3, help="default 3")
    demo.add_argument("--seed", type=int, help="seed for reproducible traffic")
    demo.set_defaults(handler=_cmd_demo)
    return p


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    RateLimitFilter.install(logging.getLogger().handlers)  # Kafka clients: once a minute
    logging.getLogger("aiokafka.consumer.group_coordinator").addFilter(_quiet_coordinator_start)
    from aiokafka.errors import KafkaError

    from pipeline.sdk.producer_errors import ProducerError

    try:
        settings = Settings.from_env()
        handler: Handler = args.handler
        return handler(settings, args)
    except CliError as exc:
        _err(str(exc))
        return exc.code
    except StoreLocked as exc:
        _err(f"{_first_line(exc)} (is `vitals up` running on this data dir?)")
        return 2
    except KafkaRuntimeError as exc:
        _err(str(exc) if exc.log_path is None else _first_line(exc))
        return 2
    except KafkaError as exc:
        _err(f"Kafka: {exc!r}")
        return 2
    except ProducerError as exc:  # the SDK's errors say what to do
        _err(_first_line(exc))
        return 2
    except (SettingsError, StorageError, KeyError_) as exc:
        _err(_first_line(exc))
        return 2
    except KeyboardInterrupt:
        return 130


def _quiet_coordinator_start(record: logging.LogRecord) -> bool:
    """Drop aiokafka's ERROR for a group coordinator that is still being elected: on a broker
    that just started it is expected, retried by aiokafka, and alarms users for nothing."""
    return "GroupCoordinatorNotAvailableError" not in record.getMessage()


def _err(message: str) -> None:
    print(f"vitals: {message}", file=sys.stderr)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# --------------------------------------------------------------------------- shared plumbing


def _state_files(settings: Settings) -> tuple[Path, Path]:
    d = settings.data_dir.absolute()
    return d / "api.url", d / "admin.key"


def _local_kafka(settings: Settings) -> LocalKafka:
    return LocalKafka(settings.data_dir / "kafka", cache_dir=Path.home() / ".cache" / "vitals")


def _bootstrap(settings: Settings) -> str:
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    info = _local_kafka(settings).status()
    if info is None:
        raise CliError(
            "no Kafka: set KAFKA_BOOTSTRAP, or start the local broker with "
            "`vitals kafka start` (or run `vitals up`)",
            2,
        )
    return info.bootstrap


def _ensure_topics(settings: Settings, bootstrap: str, kinds: list[str]) -> None:
    from pipeline.local.kafka import ensure_topics

    names = [n for k in kinds for n in (settings.topics.topic(k), settings.topics.dlq(k))]
    asyncio.run(ensure_topics(bootstrap, names, partitions=settings.topic_partitions))


def _open_store(settings: Settings) -> Any:
    """A `ClickHouseStore`; raises StoreLocked if a running process holds the embedded one."""
    from pipeline.storage.clickhouse import ClickHouseStore, embedded_locked

    if settings.embedded:
        path = Path(settings.dsn.removeprefix("chdb://").split("?", 1)[0])
        if embedded_locked(path):
            raise StoreLocked(f"the embedded ClickHouse in {path} is in use by another process")
    return ClickHouseStore(settings.dsn, settings.clickhouse_database)


def _check_bind(kind: int, host: str, port: int, what: str, hint: str) -> None:
    """Fail with one clear line if `host:port` cannot be bound (taken, not permitted)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise CliError(f"cannot listen on {what} ({exc.strerror}): {hint}", 2) from None


def _check_port_free(settings: Settings) -> None:
    if settings.api_port == 0:
        return
    _check_bind(socket.SOCK_STREAM, settings.api_host, settings.api_port,
                f"{settings.api_host}:{settings.api_port}",
                "set VITALS_API_PORT (0 picks a free port)")


def _check_udp_port_free(settings: Settings) -> None:
    if not settings.statsd_port:
        return
    _check_bind(socket.SOCK_DGRAM, settings.statsd_host, settings.statsd_port,
                f"udp {settings.statsd_host}:{settings.statsd_port} for DogStatsD",
                "set VITALS_STATSD_PORT (0 picks a free port, off disables the listener)")


class _Remote:
    """The admin routes of the `vitals up` running on this data dir, as its superadmin."""

    def __init__(self, settings: Settings) -> None:
        url_file, key_file = _state_files(settings)
        url, key = read_text_file(url_file), read_text_file(key_file)
        if url is None or key is None:
            missing = url_file if url is None else key_file
            raise CliError(
                f"`vitals up` is not running on {settings.data_dir} ({missing} is "
                f"missing); the embedded store is only reachable through it"
            )
        self.url, self.key, self.url_file = url, key, url_file

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import httpx

        try:
            r = httpx.request(
                method,
                self.url + path,
                json=body,
                timeout=120,
                headers={"Authorization": f"Bearer {self.key}"},
            )
        except httpx.HTTPError as exc:
            raise CliError(
                f"no answer from `vitals up` at {self.url} ({exc}); is it running? "
                f"({self.url_file} may be stale)"
            ) from None
        if r.status_code >= 400:
            try:
                doc = r.json()
                message = f"{doc['message']} ({doc['error']}, HTTP {r.status_code})"
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {r.status_code}: {r.text[:500]}"
            raise CliError(message)
        return r


# --------------------------------------------------------------------------- running services


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


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


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
            f"\n  Kafka:     {runtime.settings.kafka_bootstrap}"
            f"\n  admin key: {key_file}  (superadmin of tenant {ADMIN_TENANT!r}; "
            f"{admin['what']})\n  try:       {curl_line(runtime.api_url, key_file)}\n",
            flush=True,
        )
        if args.demo:
            background.append(await _start_demo(settings, args.rate, None, None, 3, closers))

    return await _serve(runtime, ready, shutdown)


async def _start_demo(
    settings: Settings,
    rate: float,
    duration: float | None,
    seed: int | None,
    endpoints: int,
    closers: list[Closer],
) -> asyncio.Task[Any]:
    from pipeline.local.demo import run_demo
    from pipeline.sdk.producer import Producer

    assert settings.kafka_bootstrap is not None
    producer = Producer(
        settings.kafka_bootstrap, settings.topics, max_future_s=settings.max_future_s
    )
    await producer.start()
    closers.append(producer.close)
    print(
        f"demo: {rate:g} requests/s on {endpoints} endpoints (ids 1-{endpoints}) plus "
        f"worker heartbeats every 5 s, to {settings.kafka_bootstrap}",
        flush=True,
    )
    return asyncio.create_task(
        run_demo(
            producer,
            rate,
            duration,
            time.time,
            _ProgressLine(sys.stdout),
            endpoints=endpoints,
            seed=seed,
        ),
        name="demo",
    )


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


# --------------------------------------------------------------------------- one-shot commands


def _cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.storage.clickhouse import migrate

    store = _open_store(settings)
    applied = migrate(store, retention=settings.retention, progress=print)
    where = "embedded" if settings.embedded else settings.dsn
    print(f"{len(applied)} migrations applied to database {settings.clickhouse_database} ({where})")
    return 0


def _cmd_kafka(settings: Settings, args: argparse.Namespace) -> int:
    kafka = _local_kafka(settings)
    if args.action == "stop":
        stopped = kafka.stop()
        print(
            f"{'stopped the' if stopped else 'no'} local Kafka broker in {kafka.home}"
            f"{'' if stopped else ' was running'}"
        )
        return 0
    if args.action == "start":
        if kafka.status() is None:
            print(
                f"starting a local Kafka broker in {kafka.home} (the first start resolves "
                f"its jars with Maven and can take a minute)",
                flush=True,
            )
        info = kafka.start()
        kafka.release()  # runs until `vitals kafka stop`, whoever started it
    else:
        found = kafka.status()
        if found is None:
            print(f"no local Kafka broker running in {kafka.home}")
            return 1
        info = found
        orphaned_by = kafka.orphaned_by()
        if orphaned_by is not None:
            print(f"Kafka running: bootstrap {info.bootstrap} (pid {info.pid}; log "
                  f"{info.log_file}); left over from a `vitals up` (pid {orphaned_by}) that "
                  f"ended without stopping it: the next `vitals up` adopts it, "
                  f"`vitals kafka stop` stops it")
            return 0
    print(f"Kafka running: bootstrap {info.bootstrap} (pid {info.pid}; log {info.log_file})")
    return 0


def _print_new_key(key: str, key_id: str, role: str, tenant: str) -> None:
    print(f"created {role} key {key_id} for tenant {tenant!r}:", file=sys.stderr)
    print(key)
    print("This is the only time the key is shown: Vitals stores only its hash.", file=sys.stderr)


def _print_keys(rows: list[dict[str, Any]]) -> None:
    cols = ("key_id", "tenant", "role", "revoked", "created_at", "name")
    table = [
        cols,
        *[tuple(str(r[c]).lower() if c == "revoked" else str(r[c]) for c in cols) for r in rows],
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for row in table:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _key_row(k: ApiKey) -> dict[str, Any]:
    return {
        "key_id": k.key_id,
        "tenant": k.tenant,
        "role": k.role,
        "name": k.name,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(k.created_at)),
        "revoked": k.revoked,
    }


def _cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.storage import keys
    try:
        store = _open_store(settings)
    except StoreLocked:
        return _keys_remote(settings, args)
    if not store.rows(f"EXISTS TABLE {settings.clickhouse_database}.api_keys")[0][0]:
        raise CliError(
            f"no Vitals tables in database {settings.clickhouse_database}: run "
            f"`vitals migrate` (or `vitals up`) first",
            2,
        )
    if args.keys_command == "create":
        new = keys.create_key(store, args.tenant, args.role, args.name)
        _print_new_key(new.key, new.info.key_id, new.info.role, new.info.tenant)
    elif args.keys_command == "list":
        _print_keys([_key_row(k) for k in keys.list_keys(store, args.tenant)])
    else:
        info = keys.revoke_key(store, args.key_id)
        print(f"revoked {info.role} key {info.key_id} of tenant {info.tenant!r}")
    return 0


def _keys_remote(settings: Settings, args: argparse.Namespace) -> int:
    remote = _Remote(settings)
    print(
        f"(the embedded store is held by `vitals up`; using its admin API at {remote.url})",
        file=sys.stderr,
    )
    if args.keys_command == "create":
        doc = remote.call(
            "POST", "/admin/keys", {"tenant": args.tenant, "role": args.role, "name": args.name}
        ).json()
        _print_new_key(doc["key"], doc["key_id"], doc["role"], doc["tenant"])
    elif args.keys_command == "list":
        rows = remote.call("GET", "/admin/keys").json()["keys"]
        _print_keys([r for r in rows if args.tenant is None or r["tenant"] == args.tenant])
    else:
        doc = remote.call("DELETE", f"/admin/keys/{args.key_id}").json()
        print(f"revoked {doc['role']} key {doc['key_id']} of tenant {doc['tenant']!r}")
    return 0


def _cmd_sql(settings: Settings, args: argparse.Namespace) -> int:
    fmt = args.format or ("PrettyCompact" if sys.stdout.isatty() else "TSV")
    if settings.embedded:
        data: bytes = (
            _Remote(settings).call("POST", "/sql", {"query": args.query, "format": fmt}).content
        )
    else:
        from pipeline.core.errors import StorageUnavailable

        store = _open_store(settings)
        try:
            data = store.readonly_raw(args.query, fmt)
        except StorageUnavailable:
            raise
        except StorageError as exc:
            raise CliError(f"SQL error: {_first_line(exc)}") from None
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return 0


def _cmd_publish(settings: Settings, args: argparse.Namespace) -> int:
    """Publish JSON lines; each event first passes the worker's rules (`pipeline.ingest.admission`:
    schema, future time, the retention of the topic's data family, size), so an event the
    worker would dead-letter is reported as rejected with its reason instead of sent."""
    import time

    from pipeline.ingest.admission import Admission
    from pipeline.sdk.producer import SyncProducer

    bootstrap = _bootstrap(settings)
    _ensure_topics(settings, bootstrap, [args.topic])
    try:
        source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}", 2) from None
    sent = rejected = 0
    producer = SyncProducer(bootstrap, settings.topics, max_future_s=settings.max_future_s,
                            max_message_bytes=settings.max_message_bytes)
    try:
        for lineno, line in enumerate(source, 1):
            if not line.strip():
                continue
            event = parse_event_line(line)
            if isinstance(event, dict):
                try:
                    Admission.of(settings, args.topic, time.time()).check(event)
                    producer.send(args.topic, event)
                    sent += 1
                    continue
                except InvalidEvent as exc:
                    event = exc.reason
            rejected += 1
            print(f"line {lineno}: {event}", file=sys.stderr)
    finally:
        undelivered = producer.close()
        if source is not sys.stdin:
            source.close()
    if undelivered:
        print(f"sent {sent - undelivered}, rejected {rejected}, not delivered {undelivered} "
              "(the broker did not acknowledge them in time; publish those lines again)")
        return 1
    print(f"sent {sent}, rejected {rejected}")
    return 1 if rejected else 0


def _cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    bootstrap = _bootstrap(settings)
    _ensure_topics(settings, bootstrap, ["requests", "heartbeats"])
    return asyncio.run(_demo(settings.with_(kafka_bootstrap=bootstrap), args))


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
    closers: list[Closer] = []
    try:
        task = await _start_demo(
            settings, args.rate, args.duration, args.seed, args.endpoints, closers
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        for close in closers:
            await close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
