"""Live worker count, scaling events and worker-seconds from heartbeat sessions. Pure.

A worker is live at instant t when its latest heartbeat at or before t is younger than the
liveness timeout L (the `nworkers` definition of the stats API): it is live over the union of
[hb, hb + L) for its heartbeats. Consecutive heartbeats at most L apart form one *session*
[first, last + L). The live count changes only at session starts (scale up) and ends (scale
down); changes at the same millisecond are merged into one event, and net-zero instants produce
none. An event's `duration` is how long (seconds) the count stayed at its `to`: until the next
event, or until the horizon (now) for the last one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from query_api.endpoint_metrics.sections import iso

__all__ = ["MAX_EVENTS", "VAST_DEFAULTS", "Scaling", "Session", "VastRule", "scaling",
           "sessions_from_gaps", "target_instances"]

MAX_EVENTS = 1000


@dataclass(frozen=True)
class VastRule:
    """The vast.ai autoscaler's endpoint parameters that set its active capacity."""

    target_util: float = 0.9
    min_load: float = 0.0
    max_workers: int = 20


#: Their defaults (`vastai create endpoint`): Vitals scales nothing and knows no endpoint's own
#: parameters, so it applies these.
VAST_DEFAULTS = VastRule()


@dataclass(frozen=True)
class Session:
    worker: int
    start_ms: int
    end_ms: int


def sessions_from_gaps(rows: Iterable[tuple[int, int, int, Sequence[int], Sequence[int]]],
                       liveness_ms: int) -> list[Session]:
    """Sessions from each worker's `(worker, first_ms, last_ms, starts, gaps)`: `first_ms` and
    `last_ms` are its first and last heartbeat, and every gap longer than L between two
    consecutive heartbeats is given as the heartbeat after it (`starts[i]`) and its length
    (`gaps[i]`), so the session before it ends at `starts[i] - gaps[i] + L`."""
    out: list[Session] = []
    for worker, first, last, starts, gaps in rows:
        w, begin = int(worker), int(first)
        for start, gap in zip(starts, gaps, strict=True):
            out.append(Session(w, begin, int(start) - int(gap) + liveness_ms))
            begin = int(start)
        out.append(Session(w, begin, int(last) + liveness_ms))
    return out


@dataclass(frozen=True)
class Scaling:
    events: list[dict[str, Any]]
    truncated: bool
    current: int
    peak: int
    worker_seconds: float
    #: live count at each requested instant (ms), in order
    at_points: list[int]


def scaling(sessions: Sequence[Session], start_ms: int, horizon_ms: int,
            points_ms: Sequence[int]) -> Scaling:
    """Events in (start, horizon], live count at start/horizon/points, worker-seconds in
    [start, horizon)."""
    changes: dict[int, list[tuple[int, int]]] = {}
    count = 0
    worker_ms = 0
    for s in sessions:
        if s.start_ms <= start_ms < s.end_ms:
            count += 1
        worker_ms += max(0, min(s.end_ms, horizon_ms) - max(s.start_ms, start_ms))
        for t, d in ((s.start_ms, 1), (s.end_ms, -1)):
            if start_ms < t <= horizon_ms:
                changes.setdefault(t, []).append((d, s.worker))
    events: list[dict[str, Any]] = []
    peak = count
    timeline = [(start_ms, count)]
    for t in sorted(changes):
        deltas = changes[t]
        net = sum(d for d, _ in deltas)
        if net == 0:
            continue
        before, count = count, count + net
        peak = max(peak, count)
        timeline.append((t, count))
        up = sorted(w for d, w in deltas if d > 0)
        down = sorted(w for d, w in deltas if d < 0)
        reason = []
        if up:
            reason.append(f"worker {', '.join(map(str, up[:10]))} started heartbeating")
        if down:
            reason.append(f"worker {', '.join(map(str, down[:10]))} missed the liveness timeout")
        events.append({"timestamp": iso(t / 1000),
                       "action": "scale_up" if net > 0 else "scale_down",
                       "from": before, "to": count, "reason": "; ".join(reason),
                       "_at": t})
    # duration: seconds the count stayed at `to`, until the next change or the horizon
    ends = [e["_at"] for e in events[1:]] + [horizon_ms]
    for e, end in zip(events, ends, strict=False):  # no events: nothing to do
        e["duration"] = (end - e.pop("_at")) / 1000
    at_points = []
    i = 0
    current = timeline[0][1]
    for p in points_ms:
        while i < len(timeline) and timeline[i][0] <= p:
            current = timeline[i][1]
            i += 1
        at_points.append(current if p >= start_ms else 0)
    return Scaling(events[-MAX_EVENTS:], len(events) > MAX_EVENTS, count, peak,
                   worker_ms / 1000, at_points)


def target_instances(load: float, capacity: float, workers: int,
                     rule: VastRule = VAST_DEFAULTS) -> int | None:
    """Workers the vast.ai autoscaler would keep active: capacity for
    max(load / target_util, min_load) work units/s, at the mean `max_perf` of the live
    workers, at most `max_workers`. None when no live worker tells the per-worker capacity."""
    if workers <= 0 or capacity <= 0:
        return None
    per_worker = capacity / workers
    wanted = max(load / rule.target_util, rule.min_load)
    return min(rule.max_workers, math.ceil(wanted / per_worker - 1e-9))
