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

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from pipeline.core.errors import VitalsError
from pipeline.ingest.topics import MAX_MESSAGE_BYTES

__all__ = [
    "HOST",
    "KAFKA_VERSION",
    "MAX_MESSAGE_BYTES",
    "BrokerInfo",
    "ClusterNode",
    "KafkaRuntimeError",
    "LocalKafka",
    "LocalKafkaCluster",
    "Ports",
    "check_java",
    "choose_ports",
    "ensure_topics",
    "free_port",
    "java_major",
    "new_cluster_id",
    "render_server_properties",
    "resolve_jars",
]

KAFKA_VERSION = "4.1.1"
#: Oldest Java the broker runs on (Kafka 4 brokers need 17).
JAVA_MIN = 17
HOST = "127.0.0.1"
_RUNTIME_DIR = Path(__file__).parent / "kafka_runtime"
_POM = _RUNTIME_DIR / "pom.xml"
_LOG4J_CONFIG = _RUNTIME_DIR / "log4j2.yaml"
_MARKER = ".complete"
_JVM_OPTS = (
    "-Xms256m",
    "-Xmx768m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
_T = TypeVar("_T")


class KafkaRuntimeError(VitalsError):
    """The local broker (or its jars, or a topic operation) failed.

    The message says what failed and, when a broker log exists, where it is followed by its tail;
    `log_path` carries the same path for programs.
    """

    def __init__(self, message: str, log_path: Path | None = None) -> None:
        super().__init__(message)
        self.log_path = log_path


@dataclass(frozen=True)
class BrokerInfo:
    """A running local broker. `log_dir` is Kafka's ``log.dirs`` (topic data); the
    human-readable log is `log_file`."""

    bootstrap: str
    pid: int
    port: int
    log_dir: Path
    log_file: Path


@dataclass(frozen=True)
class ClusterNode:
    """One node of a `LocalKafkaCluster`: its id and ports, and what all nodes share."""

    node_id: int
    ports: Ports
    voters: str
    replication: int
    cluster_id: str


@dataclass(frozen=True)
class Ports:
    """Loopback ports of one broker: client listener (`broker`) and KRaft `controller`."""

    broker: int
    controller: int


# --------------------------------------------------------------------------- pure helpers


def render_server_properties(*, port: int, controller_port: int, data_dir: Path,
                             node_id: int = 1, voters: str | None = None,
                             replication: int = 1) -> str:
    """Return the ``server.properties`` text of a KRaft broker+controller node.

    Contract: by default node id 1 is the only (static) voter and every internal topic has
    replication factor 1; a node of a cluster (`LocalKafkaCluster`) passes its `node_id`, all
    `voters` (``"1@host:port,2@host:port,..."``) and the `replication` factor of the internal
    topics (and the default one), with ``min.insync.replicas`` 2 from 3 nodes on. Both
    listeners bind ``127.0.0.1``; topics are never auto-created; memory-hungry
    defaults (log cleaner buffer, internal topic partition counts, thread pools) are scaled
    down for a 2-core dev machine. Static ``controller.quorum.voters`` (not the dynamic
    ``--standalone`` quorum) is used so that the controller port may change between starts.
    """
    if port == controller_port:
        raise ValueError(f"broker and controller ports must differ, both are {port}")
    data = str(data_dir).replace("\\", "\\\\")
    rf, isr = str(replication), str(max(1, min(2, replication - 1)))
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters or f"{node_id}@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": data,
        "num.partitions": "1",
        "default.replication.factor": rf,
        "min.insync.replicas": isr,
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": rf,
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": isr,
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": isr,
        "group.initial.rebalance.delay.ms": "0",
        "log.segment.bytes": str(64 * 1024 * 1024),
        "message.max.bytes": str(MAX_MESSAGE_BYTES),
        "replica.fetch.max.bytes": str(MAX_MESSAGE_BYTES),
        "log.retention.hours": "168",
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "background.threads": "4",
    }
    lines = ["# Written by pipeline/local/kafka.py on every start; edits are overwritten."]
    lines += [f"{key}={value}" for key, value in props.items()]
    return "\n".join(lines) + "\n"


def choose_ports(
    *,
    requested: int | None,
    previous: Ports | None,
    is_free: Callable[[int], bool],
    allocate: Callable[[], int],
) -> Ports:
    """Pick the broker's ports.

    The broker port is `requested` if given (not checked here), else the previous port if it is
    still free (so a restarted broker keeps its bootstrap address), else a fresh one from
    `allocate`. The controller port follows the same reuse rule and never equals the broker port.
    """
    if requested is not None:
        broker = requested
    elif previous is not None and is_free(previous.broker):
        broker = previous.broker
    else:
        broker = allocate()
    if previous is not None and previous.controller != broker and is_free(previous.controller):
        return Ports(broker, previous.controller)
    for _ in range(100):
        controller = allocate()
        if controller != broker:
            return Ports(broker, controller)
    raise KafkaRuntimeError(f"could not find a controller port different from {broker}")


def new_cluster_id() -> str:
    """A random KRaft cluster id: 16 random bytes, base64url without padding (22 chars), the
    format of Kafka's ``Uuid.randomUuid()``; ids starting with ``-`` are avoided like Kafka does."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):
            return text


def java_major(version_output: str) -> int | None:
    """The major version in `java -version` output (`"17.0.15"` → 17, `"1.8.0_392"` → 8), or
    None when there is none."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


# --------------------------------------------------------------------------- small I/O helpers


def check_java() -> None:
    """Raise KafkaRuntimeError (one line) unless `java` on PATH is Java 17 or newer."""
    java = shutil.which("java")
    if java is None:
        raise KafkaRuntimeError(
            f"`java` not found on PATH: the local Kafka broker needs Java {JAVA_MIN}+ "
            f"(or set KAFKA_BOOTSTRAP to use another broker)")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30,
                             check=False)
        text = out.stderr + out.stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KafkaRuntimeError(f"`{java} -version` failed: {exc}") from None
    major = java_major(text)
    if major is None or major < JAVA_MIN:
        first = (text.strip().splitlines() or ["no version"])[0]
        raise KafkaRuntimeError(
            f"{java} is Java {major if major is not None else '?'} ({first}); the local Kafka "
            f"broker needs Java {JAVA_MIN}+ (or set KAFKA_BOOTSTRAP to use another broker)")


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


# --------------------------------------------------------------------------- jars


def resolve_jars(cache_dir: Path, progress: Callable[[str], None] = print) -> Path:
    """Return a directory holding the broker's runtime jars (``java -cp 'DIR/*'``).

    The first call copies them with Maven (the pom packaged beside this module) into
    ``cache_dir / f"kafka-{KAFKA_VERSION}" / "lib"``: built in a temp dir, then renamed into place;
    a marker file holding the pom's sha256 means complete, so later calls are instant and a changed
    pom triggers one re-resolution. Safe against concurrent callers (the loser of the rename keeps
    the winner's copy). Raises KafkaRuntimeError if java or mvn are missing or mvn fails.
    """
    lib = cache_dir / f"kafka-{KAFKA_VERSION}" / "lib"
    digest = hashlib.sha256(_POM.read_bytes()).hexdigest()

    def complete(path: Path) -> bool:
        with contextlib.suppress(OSError):
            return (path / _MARKER).read_text().strip() == digest
        return False

    if complete(lib):
        return lib
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise KafkaRuntimeError(
                f"`{tool}` not found on PATH: the local Kafka broker needs Java 17+ and Maven"
            )
    lib.parent.mkdir(parents=True, exist_ok=True)
    progress(f"resolving Kafka {KAFKA_VERSION} jars with Maven into {lib} (once per machine)")
    work = Path(tempfile.mkdtemp(prefix=".lib-", dir=lib.parent))
    try:
        shutil.copyfile(_POM, work / "pom.xml")
        cmd = [
            "mvn", "-q", "-B", "-f", str(work / "pom.xml"), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={work / 'lib'}",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                cmd, cwd=work, capture_output=True, text=True, timeout=900, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise KafkaRuntimeError(f"mvn did not finish in 900 s: {' '.join(cmd)}") from exc
        if done.returncode != 0 or not list((work / "lib").glob("kafka_2.13-*.jar")):
            out = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
            raise KafkaRuntimeError(
                f"mvn failed (exit {done.returncode}) resolving Kafka jars from {_POM}:\n{out}"
            )
        (work / "lib" / _MARKER).write_text(digest + "\n")
        if lib.exists() and not complete(lib):  # stale copy from an older pom
            shutil.rmtree(lib, ignore_errors=True)
        try:
            (work / "lib").rename(lib)
        except OSError:
            if not complete(lib):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return lib


# --------------------------------------------------------------------------- readiness


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


# --------------------------------------------------------------------------- the broker


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
    ) -> None:
        self.home = home.absolute()
        self.port = port if node is None else node.ports.broker
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
        the one-time Maven jar download. Ports: the constructor's `port`, else the previous ports if
        still free, else fresh ones; a lost bind race is retried once with fresh ports. On failure
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


def _is_vitals(pid: int) -> bool:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # no procfs (macOS): trust a live pid
        return True
    return b"vitals" in args or b"pipeline" in args


def _alive(pid: int) -> Callable[[], bool]:
    return lambda: _pid_alive(pid)


# --------------------------------------------------------------------------- topics


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


# --------------------------------------------------------------------------- a cluster


class LocalKafkaCluster:
    """`size` KRaft nodes (each broker and controller, all voters) on loopback, one
    `LocalKafka` home per node under `home` (``node-1/``, ``node-2/``, ...), for failover tests.

    Internal topics get replication factor `size`, and ``min.insync.replicas`` is 2 (from 3
    nodes on): with acks=all a write survives the loss of any one broker. Ports and the cluster
    id are chosen once and kept in ``home/cluster.json``, so a killed node restarts into the
    same quorum. Nodes start concurrently (a lone voter cannot elect a controller).
    """

    def __init__(self, home: Path, *, size: int = 3, cache_dir: Path | None = None,
                 progress: Callable[[str], None] = print) -> None:
        self.home = home.absolute()
        self.size = size
        self.home.mkdir(parents=True, exist_ok=True)
        spec = self.home / "cluster.json"
        try:
            raw = json.loads(spec.read_text())
        except (OSError, ValueError):
            ports: list[int] = []
            while len(ports) < 2 * size:
                port = free_port()
                if port not in ports:
                    ports.append(port)
            raw = {"cluster_id": new_cluster_id(), "ports": ports}
            spec.write_text(json.dumps(raw) + "\n")
        pairs = [Ports(raw["ports"][2 * i], raw["ports"][2 * i + 1]) for i in range(size)]
        voters = ",".join(f"{i + 1}@{HOST}:{p.controller}" for i, p in enumerate(pairs))
        self.nodes = {
            i + 1: LocalKafka(self.home / f"node-{i + 1}", cache_dir=cache_dir, progress=progress,
                              node=ClusterNode(i + 1, p, voters, size, raw["cluster_id"]))
            for i, p in enumerate(pairs)}
        self.bootstrap = ",".join(f"{HOST}:{p.broker}" for p in pairs)

    def start(self, timeout: float = 180.0) -> str:
        """Start every node that is not running; returns the bootstrap list."""
        with ThreadPoolExecutor(max_workers=self.size) as pool:
            for f in [pool.submit(n.start, timeout) for n in self.nodes.values()]:
                f.result()
        return self.bootstrap

    def start_node(self, node_id: int, timeout: float = 120.0) -> BrokerInfo:
        return self.nodes[node_id].start(timeout)

    def kill(self, node_id: int) -> None:
        """SIGKILL one node's JVM (a crash: no controlled shutdown)."""
        node = self.nodes[node_id]
        pid = node._live_pid(clean=False)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            end = time.monotonic() + 10
            while _pid_alive(pid) and time.monotonic() < end:
                time.sleep(0.05)
            node._pid_file.unlink(missing_ok=True)

    def node_of(self, broker_id: int) -> LocalKafka:
        return self.nodes[broker_id]

    def stop(self) -> None:
        with ThreadPoolExecutor(max_workers=self.size) as pool:
            list(pool.map(lambda n: n.stop(), self.nodes.values()))
