"""The local Kafka broker's configuration, pure: version, ports, `server.properties`, cluster ids,
the Java version check's parser, and the types the runner reports with."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import VitalsError
from pipeline.ingest.topics import MAX_MESSAGE_BYTES

__all__ = ["HOST", "JAVA_MIN", "KAFKA_VERSION", "BrokerInfo", "ClusterNode", "KafkaRuntimeError",
           "Ports", "choose_ports", "java_major", "new_cluster_id", "render_server_properties"]


KAFKA_VERSION = "4.1.1"


#: Oldest Java the broker runs on (Kafka 4 brokers need 17).
JAVA_MIN = 17


HOST = "127.0.0.1"


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
    preferred: int | None = None,
) -> Ports:
    """Pick the broker's ports.

    The broker port is `requested` if given (not checked here), else `preferred` if it is free
    (the fixed address `vitals up` prints, VITALS_KAFKA_PORT), else the previous port if it is
    still free (so a restarted broker keeps its bootstrap address), else a fresh one from
    `allocate`. The controller port follows the previous port's reuse rule and never equals the
    broker port (nor `preferred`, which a later start may want back).
    """
    if requested is not None:
        broker = requested
    elif preferred is not None and is_free(preferred):
        broker = preferred
    elif previous is not None and is_free(previous.broker):
        broker = previous.broker
    else:
        broker = allocate()
    taken = {broker, preferred}
    if previous is not None and previous.controller not in taken \
            and is_free(previous.controller):
        return Ports(broker, previous.controller)
    for _ in range(100):
        controller = allocate()
        if controller not in taken:
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
