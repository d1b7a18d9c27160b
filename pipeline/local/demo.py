"""Deterministic synthetic traffic for `vitals demo` and `vitals up --demo`.

`DemoTraffic` is pure: it reads time only through the injected `clock` and randomness only
through the injected `random.Random`, so one seed and one sequence of clock readings always give
the same events. It models a small fleet: endpoints (`demo-llm`, `demo-embed`, ...) with ids
1..N, each with autogroups of workers. Workers send a heartbeat (vast-ai pyworker fields, with
`max_perf` and the load they served since their previous beat) every `heartbeat_s` seconds;
requests follow a per-endpoint log-normal latency with a realistic failure mix: client errors,
5xx, timeouts and occasional cold starts. Every event carries `ts = clock()` and validates
against `schemas/request.json` or `schemas/heartbeat.json`. Beside the fleet, a training task
(`TRAIN_TASK`, "demo-train") reports an iteration every `train_every_s` seconds: loss (train and
val) and accuracy (val) scalars and a log line, on topic `task-events`.

`run_demo` is the thin async shell that paces the generator to a target request rate through
anything with the `EventSink` shape (the `Producer`). While Kafka is away the producer's bounded
buffer fills and `send` raises a `ProducerError` (`BufferFull`, `BrokerUnavailable`): the demo
drops that tick's events (like any backlog over a second), says so in one log line a minute with
the count dropped, and carries on; it never ends `vitals up --demo` over an outage.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.core.log_limit import RateLimitedLog
from pipeline.sdk.producer_errors import ProducerError

log = logging.getLogger("vitals.demo")

#: The training task the demo reports (ClearML task events of tenant "default").
TRAIN_TASK = "demo-train"

__all__ = [
    "TRAIN_TASK",
    "DemoEndpoint",
    "DemoProgress",
    "DemoTraffic",
    "DemoWorker",
    "EventSink",
    "run_demo",
]


@dataclass(frozen=True)
class _Profile:
    """How one kind of endpoint behaves: latency (log-normal), work per request, capacity."""

    name: str
    weight: float  # share of the request rate
    latency_ms: float  # median
    sigma: float  # log-normal shape
    tokens: bool  # LLM-style: work units are output tokens
    work_units: float  # mean work per request when not token-based
    max_perf: float  # work units/s one worker handles
    bytes_out: int  # mean response size
    gpu_mem_util: float  # percent, steady


_PROFILES = (
    _Profile("demo-llm", 0.40, 900.0, 0.55, True, 1.0, 900.0, 2_000, 78.0),
    _Profile("demo-embed", 0.25, 35.0, 0.35, False, 1.0, 120.0, 6_000, 22.0),
    _Profile("demo-sdxl", 0.10, 3_200.0, 0.25, False, 30.0, 25.0, 1_400_000, 64.0),
    _Profile("demo-whisper", 0.15, 1_500.0, 0.60, False, 10.0, 120.0, 3_000, 41.0),
    _Profile("demo-rerank", 0.10, 60.0, 0.40, False, 1.0, 150.0, 1_000, 18.0),
)

# Failure mix (cumulative thresholds on one uniform draw); the rest succeed.
_P_TIMEOUT = 0.006
_P_5XX = _P_TIMEOUT + 0.015
_P_4XX = _P_5XX + 0.020
_P_COLD_START = 0.004
_TIMEOUT_MS = 60_000.0


@dataclass
class DemoWorker:
    worker_id: int
    autogroup_id: int
    max_perf: float
    loadtime: float
    next_beat: float | None = None  # None: beat at the next opportunity
    received: int = 0  # lifetime requests (pyworker num_requests_recieved)
    window_work: float = 0.0  # work units since the previous heartbeat
    window_requests: int = 0
    window_latency_ms: float = 0.0
    window_start: float | None = None


@dataclass
class DemoEndpoint:
    endpoint_id: int
    name: str
    profile: _Profile
    workers: list[DemoWorker] = field(default_factory=list)

    @property
    def autogroup_ids(self) -> list[int]:
        return sorted({w.autogroup_id for w in self.workers})


class DemoTraffic:
    """A deterministic fleet emitting request and heartbeat events (see the module docstring).

    Ids: endpoint `i` (1-based) has autogroups `i*100 + j` and workers `i*1000 + k`, so endpoint
    1 is always `demo-llm`. Heartbeats: every worker beats at its first `heartbeats_due()` call,
    then every `heartbeat_s` seconds after a per-worker phase (so beats spread out).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        rng: random.Random,
        endpoints: int = 3,
        tenant: str = "default",
        heartbeat_s: float = 5.0,
        train_every_s: float = 2.0,
    ) -> None:
        if endpoints < 1:
            raise ValueError(f"endpoints must be >= 1, got {endpoints}")
        self.clock = clock
        self.rng = rng
        self.tenant = tenant
        self.heartbeat_s = heartbeat_s
        self.train_every_s = train_every_s
        self.train_iter = 0
        self._next_train: float | None = None
        self.endpoints: list[DemoEndpoint] = []
        for i in range(1, endpoints + 1):
            profile = _PROFILES[(i - 1) % len(_PROFILES)]
            name = profile.name if i <= len(_PROFILES) else f"{profile.name}-{i}"
            ep = DemoEndpoint(i, name, profile)
            for j in range(1, rng.randint(1, 2) + 1):
                for _ in range(rng.randint(2, 4)):
                    ep.workers.append(
                        DemoWorker(
                            worker_id=i * 1000 + len(ep.workers) + 1,
                            autogroup_id=i * 100 + j,
                            max_perf=round(profile.max_perf * rng.uniform(0.8, 1.2), 1),
                            loadtime=round(rng.uniform(20.0, 180.0), 1),
                        )
                    )
            self.endpoints.append(ep)
        self._weights = [ep.profile.weight for ep in self.endpoints]

    @property
    def workers(self) -> list[DemoWorker]:
        return [w for ep in self.endpoints for w in ep.workers]

    # ---- events

    def request(self) -> dict[str, Any]:
        """One request event, on a weighted-random endpoint and a random worker of it."""
        rng = self.rng
        ep = rng.choices(self.endpoints, self._weights)[0]
        w = rng.choice(ep.workers)
        p = ep.profile
        latency = p.latency_ms * math.exp(rng.gauss(0.0, p.sigma))
        tokens_in = tokens_out = 0
        if p.tokens:
            tokens_in = rng.randint(20, 1_500)
            tokens_out = rng.randint(10, 600)
            work = float(tokens_out)
            latency = latency * tokens_out / 250.0
        else:
            work = round(p.work_units * rng.uniform(0.5, 1.5), 2)
        event: dict[str, Any] = {
            "v": 1, "type": "request", "ts": self.clock(), "id": f"{rng.getrandbits(64):016x}",
            "tenant": self.tenant, "endpoint_id": ep.endpoint_id, "endpoint": ep.name,
            "autogroup_id": w.autogroup_id, "worker_id": w.worker_id,
            "queue_ms": round(rng.expovariate(1 / 15.0), 2), "work_units": work,
        }  # fmt: skip
        draw = rng.random()
        if draw < _P_TIMEOUT:
            event.update(status=504, error_kind="timeout", latency_ms=_TIMEOUT_MS)
        elif draw < _P_5XX:
            status = rng.choice((500, 502, 503))
            kind = "resource_exhausted" if status == 503 else "server"
            event.update(status=status, error_kind=kind, latency_ms=round(latency * 0.3, 2))
        elif draw < _P_4XX:
            event.update(status=rng.choice((400, 413, 429)), latency_ms=round(rng.uniform(1, 5), 2))
        else:
            event.update(
                status=200,
                latency_ms=round(latency, 2),
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                bytes_out=int(p.bytes_out * rng.uniform(0.5, 1.5)),
                gpu_seconds=round(latency / 1000.0, 4),
            )
            if rng.random() < _P_COLD_START:
                cold = round(rng.uniform(8_000.0, 40_000.0), 1)
                event.update(
                    cold_start=True, cold_start_ms=cold, latency_ms=round(latency + cold, 2)
                )
        w.received += 1
        w.window_requests += 1
        w.window_work += work
        w.window_latency_ms += event["latency_ms"]
        return event

    def heartbeats_due(self) -> list[dict[str, Any]]:
        """Heartbeats of every worker whose beat is due at `clock()`, each restarting its window."""
        now = self.clock()
        out = []
        for ep in self.endpoints:
            for w in ep.workers:
                if w.next_beat is None:
                    w.next_beat = now + self.rng.uniform(0.0, self.heartbeat_s)
                elif now >= w.next_beat:
                    w.next_beat += self.heartbeat_s * max(
                        1, math.ceil((now - w.next_beat + 1e-9) / self.heartbeat_s)
                    )
                else:
                    continue
                out.append(self._heartbeat(ep, w, now))
        return out

    def events(self, requests: int) -> list[tuple[str, dict[str, Any]]]:
        """Due heartbeats and training events, then `requests` request events, as (topic
        kind, event) pairs."""
        out: list[tuple[str, dict[str, Any]]] = [("heartbeats", h) for h in self.heartbeats_due()]
        out += [("task-events", e) for e in self.training_due()]
        out += [("requests", self.request()) for _ in range(requests)]
        return out

    def training_due(self) -> list[dict[str, Any]]:
        """The next iteration of the training task when one is due at `clock()` (the first at
        the first call): loss train/val, accuracy val and a log line, all stamped now."""
        now = self.clock()
        if self._next_train is not None and now < self._next_train:
            return []
        self._next_train = now + self.train_every_s
        i, self.train_iter = self.train_iter, self.train_iter + 1
        loss = round(2.0 / (1.0 + 0.05 * i) * self.rng.uniform(0.95, 1.05), 4)
        val = round(loss * self.rng.uniform(1.02, 1.15), 4)
        accuracy = round(min(0.99, 0.5 + 0.49 * (1.0 - 1.0 / (1.0 + 0.03 * i))), 4)
        ms = int(now * 1000)
        base = {"tenant": self.tenant, "task": TRAIN_TASK, "iter": i, "timestamp": ms}
        return [
            {**base, "type": "training_stats_scalar", "metric": "loss", "variant": "train",
             "value": loss},
            {**base, "type": "training_stats_scalar", "metric": "loss", "variant": "val",
             "value": val},
            {**base, "type": "training_stats_scalar", "metric": "accuracy", "variant": "val",
             "value": accuracy},
            {"tenant": self.tenant, "task": TRAIN_TASK, "timestamp": ms, "type": "log",
             "level": "info", "worker": "demo-gpu-0",
             "msg": f"iter {i}: loss={loss} val_loss={val} accuracy={accuracy}"},
        ]

    def _heartbeat(self, ep: DemoEndpoint, w: DemoWorker, now: float) -> dict[str, Any]:
        rng = self.rng
        span = self.heartbeat_s if w.window_start is None else max(now - w.window_start, 1e-3)
        cur_load = w.window_work / span
        rate = w.window_requests / span
        mean_latency_s = (
            w.window_latency_ms / w.window_requests / 1000.0 if w.window_requests else 0.0
        )
        util = min(100.0, 100.0 * cur_load / w.max_perf) if w.max_perf else 0.0
        beat = {
            "v": 1, "type": "heartbeat", "ts": now, "tenant": self.tenant,
            "endpoint_id": ep.endpoint_id, "endpoint": ep.name, "autogroup_id": w.autogroup_id,
            "id": w.worker_id, "loadtime": w.loadtime, "cur_load": round(cur_load, 3),
            # new_load 0: the demo's request events carry the work units, and curload
            # counts a heartbeat's new_load too (query_api/vast/store.py)
            "new_load": 0.0, "rej_load": 0.0, "max_perf": w.max_perf,
            "cur_perf": round(min(cur_load, w.max_perf), 3),
            "cur_capacity": round(max(0.0, w.max_perf - cur_load), 3),
            "max_capacity": w.max_perf,
            "num_requests_working": math.ceil(rate * mean_latency_s),
            "num_requests_recieved": w.received, "error_msg": "",
            "gpu_util": round(min(100.0, util * rng.uniform(0.9, 1.1)), 1),
            "gpu_mem_util": round(min(100.0, ep.profile.gpu_mem_util + rng.uniform(-3, 3)), 1),
            "cpu_util": round(min(100.0, 5.0 + util * 0.2 + rng.uniform(0, 5)), 1),
        }  # fmt: skip
        w.window_start = now
        w.window_work = 0.0
        w.window_requests = 0
        w.window_latency_ms = 0.0
        return beat


# --------------------------------------------------------------------------- pacing loop


class EventSink(Protocol):
    """What `run_demo` sends through; `pipeline.sdk.producer.Producer` has this shape."""

    async def send(self, kind: str, event: dict[str, Any]) -> None: ...

    async def flush(self) -> None: ...


@dataclass(frozen=True)
class DemoProgress:
    requests: int
    heartbeats: int
    elapsed_s: float
    rate: float  # events/s over the last progress interval
    done: bool = False
    task_events: int = 0

    @property
    def events(self) -> int:
        return self.requests + self.heartbeats + self.task_events


async def run_demo(
    producer: EventSink,
    rate: float,
    duration: float | None,
    clock: Callable[[], float],
    progress: Callable[[DemoProgress], None] | None = None,
    *,
    traffic: DemoTraffic | None = None,
    endpoints: int = 3,
    seed: int | None = 0,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    tick_s: float = 0.05,
    progress_every_s: float = 1.0,
) -> DemoProgress:
    """Send `rate` requests/s (plus the fleet's heartbeats) until `duration` seconds have passed
    (forever when None; cancel the task to stop), then flush and return the totals.

    After `duration`, exactly `floor(rate * duration)` requests were sent, unless sending fell
    more than one second behind schedule: such a backlog is dropped rather than burst out.
    `progress` is called about every `progress_every_s` seconds and once at the end (also on
    cancellation) with `done=True`; the final rate is the average over the whole run.
    """
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    if traffic is None:
        traffic = DemoTraffic(clock=clock, rng=random.Random(seed), endpoints=endpoints)
    start = clock()
    scheduled = requests = heartbeats = tasks = dropped = 0
    said = RateLimitedLog(log, every_s=60.0)
    last_t, last_events = start, 0
    burst_cap = max(1, math.ceil(rate))

    def totals(done: bool) -> DemoProgress:
        elapsed = clock() - start
        events = requests + heartbeats + tasks
        return DemoProgress(
            requests, heartbeats, elapsed, events / elapsed if elapsed > 0 else 0.0, done=done,
            task_events=tasks,
        )

    try:
        while True:
            now = clock()
            elapsed = now - start
            finished = duration is not None and elapsed >= duration
            span = min(elapsed, duration) if duration is not None else elapsed
            target = math.floor(rate * span)
            scheduled = max(scheduled, target - burst_cap)  # drop a backlog over 1 s
            for kind, event in traffic.events(target - scheduled):
                try:
                    await producer.send(kind, event)
                except ProducerError as exc:  # backpressure: the broker is away
                    dropped += 1
                    said.warning(type(exc).__name__, "demo: Kafka does not take events (%s); "
                                  "dropping them until it does (%d so far)", exc, dropped)
                    break  # the rest of this tick goes too: the producer already waited
                if kind == "requests":
                    requests += 1
                elif kind == "heartbeats":
                    heartbeats += 1
                else:
                    tasks += 1
            scheduled = target
            if finished:
                break
            if progress is not None and now - last_t >= progress_every_s:
                events = requests + heartbeats + tasks
                progress(
                    DemoProgress(
                        requests, heartbeats, elapsed, (events - last_events) / (now - last_t),
                        task_events=tasks,
                    )
                )
                last_t, last_events = now, events
            await sleep(tick_s)
        try:
            await producer.flush()
        except ProducerError as exc:
            log.warning("demo: the last events were not all delivered: %s", exc)
    except asyncio.CancelledError:
        if progress is not None:
            progress(totals(done=True))
        raise
    final = totals(done=True)
    if progress is not None:
        progress(final)
    return final
