"""A real single-node Apache Kafka broker (KRaft, broker+controller in one JVM) for local use.

`vitals up` and the integration tests run the broker from the Maven Central jars that the pom in
``pipeline/local/kafka_runtime/`` names; no Docker, no Kafka download beyond Maven. Layout of a
broker
home (one directory per broker)::

    home/server.properties   rewritten on every start (ports may change, see LocalKafka.start)
    home/data/               KRaft metadata log and topic data (Kafka's ``log.dirs``)
    home/server.log          log4j output and the JVM's stdout/stderr; previous run in .log.1
    home/kafka.pid           pid of the running JVM (absent when stopped)
    home/ports.json          broker and controller ports of the last start
    home/owner.json          pid of the `vitals up` that started (or adopted) the broker and
                             stops it on exit; absent for a broker of `vitals kafka start`
    home/.lock               flock held while starting, stopping or cleaning up

Jars are shared between brokers in a cache directory (see `resolve_jars`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.local.kafka_config import (
    HOST,
    BrokerInfo,
    ClusterNode,
    KafkaRuntimeError,
    Ports,
    choose_ports,
    new_cluster_id,
    render_server_properties,
)
from pipeline.local.kafka_jars import _RUNTIME_DIR, check_java, resolve_jars
from pipeline.local.processes import (
    _alive,
    _is_vitals,
    _pid_alive,
    _port_answers,
    _port_free,
    _run_blocking,
    _tail,
    _wait_ready,
    free_port,
)

__all__ = ["LocalKafka"]

_LOG4J_CONFIG = _RUNTIME_DIR / "log4j2.yaml"
_JVM_OPTS = (
    "-Xms256m",
    "-Xmx768m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


class LocalKafka:
    """One single-node KRaft broker living in `home` (see the module docstring for the layout).

    All methods are blocking and safe to call from several processes on the same home: start,
    stop and stale-pid cleanup are serialised by a file lock. Inside an event loop, call them via
    ``asyncio.to_thread``. A broker outlives the Python process that started it (own session);
    only `stop` ends it.
    """

    def __init__(
        self,
        home: Path,
        *,
        port: int | None = None,
        cache_dir: Path | None = None,
        progress: Callable[[str], None] = print,
        node: ClusterNode | None = None,
        preferred_port: int | None = None,
    ) -> None:
        self.home = home.absolute()
        self.port = port if node is None else node.ports.broker
        #: Taken when free at a (re)start, else another free port (`choose_ports`); `port`
        #: instead insists on its port.
        self.preferred_port = preferred_port if node is None else None
        #: This broker as one node of a cluster (fixed ports, shared voters and cluster id).
        self.node = node
        self.cache_dir = cache_dir if cache_dir is not None else self.home.parent / "cache"
        self.progress = progress
        self.data_dir = self.home / "data"
        self.log_file = self.home / "server.log"
        self._props = self.home / "server.properties"
        self._pid_file = self.home / "kafka.pid"
        self._ports_file = self.home / "ports.json"
        self._owner_file = self.home / "owner.json"
        self._proc: subprocess.Popen[bytes] | None = None  # held so Popen is not GC'd early

    # ---- public

    def start(self, timeout: float = 90.0) -> BrokerInfo:
        """Return a running, metadata-answering broker, starting it if needed.

        Idempotent: if the pid file names a live broker of this home, waits (up to `timeout`) for it
        to answer and returns its info. Otherwise formats storage on first use, spawns the JVM and
        waits until an aiokafka metadata request lists the broker. `timeout` covers the broker, not
        the one-time Maven jar download. Ports: the constructor's `port`, else its `preferred_port`
        if free, else the previous ports if still free, else fresh ones; a lost bind race is
        retried once with fresh ports. On failure
        raises KafkaRuntimeError with the log's tail, and leaves no process running.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        with self._lock():
            pid, ports = self._live_pid(clean=True), self._read_ports()
            if pid is not None:
                return self._attach(pid, ports, timeout)
            check_java()
            lib = resolve_jars(self.cache_dir, self.progress)
            if self.port is not None and not _port_free(self.port):
                raise KafkaRuntimeError(
                    f"port {self.port} on {HOST} is in use; cannot start Kafka in {self.home}",
                    self.log_file,
                )
            if self.node is not None:  # a cluster's voters name fixed ports
                return self._spawn(lib, self.node.ports, timeout)
            for attempt in range(2):
                ports = choose_ports(
                    requested=self.port,
                    previous=ports if attempt == 0 else None,
                    is_free=_port_free,
                    allocate=free_port,
                    preferred=self.preferred_port if attempt == 0 else None,
                )
                try:
                    return self._spawn(lib, ports, timeout)
                except KafkaRuntimeError as exc:
                    bind_race = "Address already in use" in str(exc)
                    if attempt or self.port is not None or not bind_race:
                        raise
            raise AssertionError("unreachable")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker: SIGTERM (controlled shutdown), SIGKILL after `timeout` seconds.

        Removes the pid file. Returns True if a broker was running, False if there was none.
        """
        with self._lock():
            pid = self._live_pid(clean=True)
            if pid is None:
                return False
            self._terminate(pid, timeout)
            self._pid_file.unlink(missing_ok=True)
            self._owner_file.unlink(missing_ok=True)
            return True

    def kill_now(self, grace_s: float = 1.5) -> bool:
        """Last resort of a process that must exit now (second signal, shutdown deadline):
        SIGTERM, SIGKILL after `grace_s`. Takes no lock (the caller's main thread may hold it)."""
        pid = self._live_pid(clean=False)
        if pid is None:
            return False
        with contextlib.suppress(KafkaRuntimeError):
            self._terminate(pid, grace_s)
        self._pid_file.unlink(missing_ok=True)
        self._owner_file.unlink(missing_ok=True)
        return True

    def claim(self, pid: int) -> None:
        """Record `pid` (a `vitals up`) as the process that stops this broker on exit."""
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self._owner_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": pid, "since": time.time()}) + "\n")
        tmp.replace(self._owner_file)

    def release(self) -> None:
        """The broker is no one's to stop (`vitals kafka start`: it runs until `kafka stop`)."""
        self._owner_file.unlink(missing_ok=True)

    def orphaned_by(self) -> int | None:
        """The pid of the `vitals up` that started this broker and ended without stopping it
        (killed, crashed), or None: no owner recorded, or the owner still runs."""
        try:
            pid = int(json.loads(self._owner_file.read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return None if _pid_alive(pid) and _is_vitals(pid) else pid

    def status(self) -> BrokerInfo | None:
        """The running broker if its process is alive and accepts connections, else None.

        A pid file naming a dead process (or another program) is removed when no other caller
        holds the lock; a broker still starting up reports None.
        """
        with self._lock(blocking=False) as locked:
            pid = self._live_pid(clean=locked)
            ports = self._read_ports()
            if pid is None or ports is None or not _port_answers(ports.broker):
                return None
            return self._info(pid, ports)

    # ---- internals

    def _spawn(self, lib: Path, ports: Ports, timeout: float) -> BrokerInfo:
        node = self.node
        self._props.write_text(
            render_server_properties(
                port=ports.broker, controller_port=ports.controller, data_dir=self.data_dir,
                node_id=node.node_id if node else 1, voters=node.voters if node else None,
                replication=node.replication if node else 1,
            )
        )
        self._ports_file.write_text(
            json.dumps({"port": ports.broker, "controller_port": ports.controller}) + "\n"
        )
        if self.log_file.exists():
            self.log_file.replace(self.log_file.with_name("server.log.1"))
        java = [
            "java", f"-Dlog4j2.configurationFile={_LOG4J_CONFIG}", f"-Dkafka.logs.dir={self.home}",
            "-cp", f"{lib}/*",
        ]  # fmt: skip
        if not (self.data_dir / "meta.properties").exists():
            self._format([*java, "-Xmx256m"])
        cmd = [*java, *_JVM_OPTS, "kafka.Kafka", str(self._props)]
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                cmd, cwd=self.home, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        self._proc = proc
        tmp = self._pid_file.with_suffix(".tmp")
        tmp.write_text(f"{proc.pid}\n")
        tmp.replace(self._pid_file)
        deadline = time.monotonic() + timeout
        failure = _run_blocking(lambda: _wait_ready(ports.broker, deadline, _alive(proc.pid)))
        if failure is None:
            return self._info(proc.pid, ports)
        self._terminate(proc.pid, 10.0)
        self._pid_file.unlink(missing_ok=True)
        raise self._error(f"Kafka broker did not start ({failure})")

    def _format(self, java: list[str]) -> None:
        cmd = [
            *java, "kafka.tools.StorageTool", "format", "--ignore-formatted",
            "-t", self.node.cluster_id if self.node else new_cluster_id(), "-c", str(self._props),
        ]  # fmt: skip
        with self.log_file.open("ab") as log:
            log.write(f"$ {' '.join(cmd)}\n".encode())
            log.flush()
            try:
                code = subprocess.run(
                    cmd, cwd=self.home, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    timeout=120, check=False,
                ).returncode  # fmt: skip
            except subprocess.TimeoutExpired:
                code = -1
        if code != 0:
            raise self._error(f"formatting KRaft storage in {self.data_dir} failed (exit {code})")

    def _attach(self, pid: int, ports: Ports | None, timeout: float) -> BrokerInfo:
        if ports is None:
            raise self._error(f"Kafka (pid {pid}) runs in {self.home} without {self._ports_file}")
        if self.port is not None and self.port != ports.broker:
            raise KafkaRuntimeError(
                f"Kafka in {self.home} already runs on port {ports.broker}, not {self.port}; "
                "stop it first",
                self.log_file,
            )
        deadline = time.monotonic() + timeout
        failure = _run_blocking(lambda: _wait_ready(ports.broker, deadline, _alive(pid)))
        if failure is not None:
            raise self._error(f"running Kafka broker (pid {pid}) does not answer ({failure})")
        return self._info(pid, ports)

    def _terminate(self, pid: int, timeout: float) -> None:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            end = time.monotonic() + wait
            while time.monotonic() < end:
                if not _pid_alive(pid):
                    return
                time.sleep(0.1)
        raise self._error(f"Kafka broker pid {pid} survived SIGKILL")

    def _live_pid(self, *, clean: bool) -> int | None:
        """The pid in the pid file if it is a live JVM running this home's broker."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid is not None and _pid_alive(pid) and self._is_ours(pid):
            return pid
        if clean:
            self._pid_file.unlink(missing_ok=True)
        return None

    def _is_ours(self, pid: int) -> bool:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:  # no procfs (macOS): trust a live pid
            return True
        return b"kafka.Kafka" in args and str(self._props).encode() in args

    def _read_ports(self) -> Ports | None:
        try:
            raw = json.loads(self._ports_file.read_text())
            return Ports(int(raw["port"]), int(raw["controller_port"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _info(self, pid: int, ports: Ports) -> BrokerInfo:
        return BrokerInfo(f"{HOST}:{ports.broker}", pid, ports.broker, self.data_dir, self.log_file)

    def _error(self, what: str) -> KafkaRuntimeError:
        return KafkaRuntimeError(
            f"{what}. Broker home: {self.home}; log: {self.log_file}\n"
            f"--- last lines of {self.log_file} ---\n{_tail(self.log_file)}",
            self.log_file,
        )

    @contextlib.contextmanager
    def _lock(self, *, blocking: bool = True) -> Iterator[bool]:
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / ".lock").open("a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


