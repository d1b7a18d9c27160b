"""A 3-broker KRaft cluster on loopback (every node broker + controller), for failover tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipeline.local.kafka import LocalKafka
from pipeline.local.kafka_config import HOST, BrokerInfo, ClusterNode, Ports, new_cluster_id
from pipeline.local.processes import _pid_alive, free_port

__all__ = ["LocalKafkaCluster"]


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
