"""Process and port plumbing of the local broker: free ports, pid checks, log tails, readiness
waits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from pipeline.local.kafka_config import HOST, KafkaRuntimeError

__all__ = ["free_port"]


_T = TypeVar("_T")


def free_port(host: str = HOST) -> int:
    """A TCP port on `host` that was free a moment ago (bind to port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_free(port: int, host: str = HOST) -> bool:
    # SO_REUSEADDR like Kafka's acceptor: a port held only by TIME_WAIT sockets counts as free.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _port_answers(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 60) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 64 * 1024))
            data = fh.read()
    except OSError:
        return "(no log yet)"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _run_blocking(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from sync code, also when called inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def _pid_alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our exited child: reaped now
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie still answers kill(0)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


async def _cluster_ready(bootstrap: str, timeout: float) -> None:
    """Raise unless a metadata request through aiokafka lists at least one (unfenced) broker."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="vitals-kafka-local",
        request_timeout_ms=max(1000, int(timeout * 1000)),
    )
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    if not cluster.get("brokers"):
        raise KafkaRuntimeError("metadata lists no live broker yet")


async def _wait_ready(port: int, deadline: float, alive: Callable[[], bool]) -> str | None:
    """Poll until the broker answers metadata (None) or return why it never did."""
    last = "the port never accepted a connection"
    while True:
        if not alive():
            return "the broker process exited"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return f"timed out; last probe: {last}"
        if _port_answers(port):
            try:
                await _cluster_ready(f"{HOST}:{port}", min(5.0, remaining))
                return None
            except (KafkaError, KafkaRuntimeError, OSError, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(0.2)


def _is_vitals(pid: int) -> bool:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # no procfs (macOS): trust a live pid
        return True
    return b"vitals" in args or b"pipeline" in args


def _alive(pid: int) -> Callable[[], bool]:
    return lambda: _pid_alive(pid)
