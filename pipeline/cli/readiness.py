"""Keeps a process's `Health` current: storage probe, broker probe, agents' progress.

`ReadinessMonitor` runs beside the worker and the API (one per `Runtime`). Every `interval_s` it
- probes storage (`SELECT 1`) → check "storage" ok / down;
- probes the broker: a Kafka ApiVersions request to each bootstrap address until one answers
  (`probe_broker`; a real protocol answer, so a stopped or hung broker counts as away, not just a
  closed port) → check "broker" ok / down;
- mirrors every check as the gauge `vitals_ready{check}` (1 ready, 0 not) for `/metrics`;
- reads each agent's lag from the in-process consumer (`lag_of`) and marks an agent "stalled"
  when it is consuming, has lag and its committed offsets did not move for `stall_after_s`
  (`StallWatch`, pure). It clears only stalls it set itself: a stall reported by the sink (storage
  refuses every message) stays until the sink reports progress.
A state change is logged once (WARNING on the way down, INFO on recovery) with how long the
outage lasted, and a lasting outage is logged again at most once a minute (`RateLimitedLog`).
So `/readyz` answers from memory within `interval_s` + `probe_timeout_s` of a change, without I/O.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from pipeline.core.health import Health, State
from pipeline.core.log_limit import RateLimitedLog
from pipeline.core.telemetry import Telemetry
from pipeline.ingest.faust_types import ConsumerProgress, WorkerApp

__all__ = [
    "STALL_REASON_PREFIX",
    "ReadinessMonitor",
    "StallWatch",
    "lag_of",
    "probe_broker",
    "readiness_document",
]

log = logging.getLogger("vitals.health")

#: Reasons of stalls that the monitor set (and therefore may clear) start with this.
STALL_REASON_PREFIX = "no progress"

_API_VERSIONS = 18


async def probe_broker(bootstrap: str, timeout: float) -> str | None:
    """None when some address in `bootstrap` ("host:port,host:port") answers a Kafka ApiVersions
    request within `timeout` seconds in total; else why none did."""
    last = "no address"
    deadline = time.monotonic() + timeout
    for address in [a.strip() for a in bootstrap.split(",") if a.strip()]:
        host, _, port = address.rpartition(":")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            async with asyncio.timeout(remaining):
                await _api_versions(host.strip("[]"), int(port))
            return None
        except TimeoutError:
            last = f"{address}: no answer within {timeout:g} s"
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            last = f"{address}: {exc.strerror if isinstance(exc, OSError) else exc}"
    return last


async def _api_versions(host: str, port: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        client = b"vitals-readiness"
        header = struct.pack(">hhih", _API_VERSIONS, 0, 0x5649, len(client)) + client
        writer.write(struct.pack(">i", len(header)) + header)
        await writer.drain()
        (size,) = struct.unpack(">i", await reader.readexactly(4))
        body = await reader.readexactly(min(size, 4))
        if size < 4 or struct.unpack(">i", body)[0] != 0x5649:
            raise ValueError("not a Kafka ApiVersions answer")
    finally:
        writer.close()


def lag_of(app: WorkerApp) -> dict[str, tuple[int, int]]:
    """Topic → (lag, committed): messages not yet committed by this worker on its assigned
    partitions (highwater − committed) and the sum of its committed offsets, from the
    in-process faust consumer; {} while the consumer knows nothing."""
    # not `app.consumer`: that would create one
    consumer: ConsumerProgress | None = getattr(app, "_consumer", None)
    if consumer is None:
        return {}
    committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
    out: dict[str, tuple[int, int]] = {}
    try:
        assigned = consumer.assignment()
    except Exception:  # no consumer thread yet / stopped: nothing to say
        return {}
    for tp in assigned:
        try:
            high = consumer.highwater(tp)
        except Exception:  # highwater unknown before the first fetch
            high = None
        if high is None:
            continue
        done = committed.get(tp) or 0
        lag, total = out.get(tp.topic, (0, 0))
        out[tp.topic] = (lag + max(0, int(high) - done), total + done)
    return out


@dataclass
class StallWatch:
    """Pure: which topics had lag and no committed progress for `after_s` seconds.

    `observe(now, progress)` takes (lag, committed offsets) per topic and returns the topics
    stalled now with the seconds since their last progress (committed moved, or no lag)."""

    after_s: float
    _since: dict[str, tuple[float, int]] = field(default_factory=dict)

    def observe(self, now: float, progress: Mapping[str, tuple[int, int]]) -> dict[str, float]:
        stalled: dict[str, float] = {}
        for topic, (lag, committed) in progress.items():
            prev = self._since.get(topic)
            if lag <= 0 or prev is None or committed != prev[1]:
                self._since[topic] = (now, committed)
            elif now - prev[0] >= self.after_s:
                stalled[topic] = now - prev[0]
        for topic in set(self._since) - set(progress):
            del self._since[topic]
        return stalled


def readiness_document(checks: list[Any], lag: Mapping[str, int]) -> tuple[bool, dict[str, Any]]:
    """(ready, JSON body) of `/readyz` from a `Health.snapshot()` and the agents' lag."""
    body: dict[str, Any] = {}
    ready = bool(checks)
    for c in checks:
        entry: dict[str, Any] = {"state": c.state, "since": round(c.since, 3)}
        if c.reason:
            entry["reason"] = c.reason
        if c.name.startswith("agent:"):
            entry["lag"] = lag.get(c.name.removeprefix("agent:"))
        body[c.name] = entry
        ready = ready and c.ready
    return ready, {"status": "ready" if ready else "not ready", "checks": body}


@dataclass
class ReadinessMonitor:
    health: Health
    _: KW_ONLY
    storage: Callable[[], Awaitable[Any]] | None
    bootstrap: str | None
    worker: Callable[[], WorkerApp | None] | None = None
    interval_s: float = 1.0
    probe_timeout_s: float = 2.0
    stall_after_s: float = 60.0
    clock: Callable[[], float] = time.time
    telemetry: Telemetry | None = None
    lag: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._stalls = StallWatch(self.stall_after_s)
        self._log = RateLimitedLog(log, every_s=60.0, clock=time.monotonic)

    async def run(self) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(self.interval_s)

    async def check_once(self) -> None:
        probes: list[Awaitable[None]] = []
        if self.storage is not None:
            probes.append(self._probe_storage(self.storage))
        if self.bootstrap is not None:
            probes.append(self._probe_broker(self.bootstrap))
        await asyncio.gather(*probes)
        if self.worker is not None:
            self._watch_agents(self.worker())
        if self.telemetry is not None:  # /metrics: the same checks as /readyz
            self.telemetry.replace("vitals_ready", [
                ({"check": c.name}, 1.0 if c.ready else 0.0) for c in self.health.snapshot()])

    async def _probe_storage(self, storage: Callable[[], Awaitable[Any]]) -> None:
        try:
            async with asyncio.timeout(self.probe_timeout_s):
                await storage()
        except TimeoutError:
            self._set("storage", "down", f"no answer within {self.probe_timeout_s:g} s")
        except Exception as exc:  # any failure means not ready; reason shown
            self._set("storage", "down", f"{type(exc).__name__}: {str(exc)[:200]}")
        else:
            self._set("storage", "ok", None)

    async def _probe_broker(self, bootstrap: str) -> None:
        why = await probe_broker(bootstrap, self.probe_timeout_s)
        self._set("broker", "ok" if why is None else "down",
                  None if why is None else f"Kafka at {bootstrap} does not answer ({why})")

    def _watch_agents(self, app: WorkerApp | None) -> None:
        if app is None:
            return
        progress = lag_of(app)
        self.lag = {topic: lag for topic, (lag, _) in progress.items()}
        stalled = self._stalls.observe(self.clock(), progress)
        for check in self.health.snapshot():
            if not check.name.startswith("agent:"):
                continue
            topic = check.name.removeprefix("agent:")
            mine = check.state == "stalled" and (check.reason or "").startswith(
                STALL_REASON_PREFIX)
            if topic in stalled and check.state == "consuming":
                self._set(check.name, "stalled", f"{STALL_REASON_PREFIX} for "
                          f"{stalled[topic]:.0f} s with {self.lag.get(topic, 0)} messages behind")
            elif mine and topic not in stalled:
                self._set(check.name, "consuming", None)

    def _set(self, name: str, state: State, reason: str | None) -> None:
        before = self.health.get(name)
        changed = self.health.report(name, state, reason)
        now = self.clock()
        if changed and before is not None and not before.ready and state in ("ok", "consuming"):
            self._log.clear(name)
            log.info("%s recovered after %.0f s (%s)", name, now - before.since, before.reason)
        elif state in ("down", "stalled"):
            check = self.health.get(name)
            lasted = now - check.since if check is not None else 0.0
            self._log.warning(name, "%s is %s for %.0f s: %s", name, state, lasted, reason)
