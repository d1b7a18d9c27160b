"""What the `vitals` commands keep and check on this machine: the data dir's files
(`admin.key`, `api.url`), the local broker and its topics, the store, free ports."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.cli.errors import CliError
from pipeline.core.errors import StoreLocked
from pipeline.core.settings import Settings
from pipeline.local.kafka import LocalKafka
from pipeline.storage.keys import ApiKey

ADMIN_TENANT = "default"


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


def _state_files(settings: Settings) -> tuple[Path, Path]:
    d = settings.data_dir.absolute()
    return d / "api.url", d / "admin.key"


def _local_kafka(settings: Settings) -> LocalKafka:
    return LocalKafka(settings.data_dir / "kafka", cache_dir=Path.home() / ".cache" / "vitals",
                      preferred_port=settings.kafka_port or None)


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
    from pipeline.ingest.topic_admin import ensure_topics

    names = [n for k in kinds for n in (settings.topics.topic(k), settings.topics.dlq(k))]
    asyncio.run(ensure_topics(bootstrap, names, partitions=settings.topic_partitions))


def _open_store(settings: Settings) -> Any:
    """A `ClickHouseStore`; raises StoreLocked if a running process holds the embedded one."""
    from pipeline.storage.clickhouse import ClickHouseStore
    from pipeline.storage.embedded import chdb_dir, embedded_locked

    if settings.embedded:
        path = chdb_dir(settings.dsn)
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
