"""What each part of a running process says about its own progress, for `/readyz` and `/metrics`.

One `Health` per process. Parts report a state per check name ("storage", "broker",
"agent:<topic>"); `/readyz` reads the snapshot, and the `vitals_topic_stalled{topic}` gauge
mirrors the agents' stalled state. Pure and thread-safe: no I/O, time is injected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Check", "Health", "State"]

State = Literal["ok", "joining", "consuming", "stalled", "down", "unknown"]

#: States in which a check keeps the process from being ready.
_NOT_READY: frozenset[str] = frozenset({"joining", "stalled", "down", "unknown"})


@dataclass(frozen=True)
class Check:
    """One check's latest report: its state, why (for anything but ok), and since when."""

    name: str
    state: State
    reason: str | None
    since: float

    @property
    def ready(self) -> bool:
        return self.state not in _NOT_READY


class Health:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._checks: dict[str, Check] = {}

    def report(self, name: str, state: State, reason: str | None = None) -> bool:
        """Record `name`'s state; returns True when the state changed (the caller logs then)."""
        with self._lock:
            old = self._checks.get(name)
            if old is not None and old.state == state and old.reason == reason:
                return False
            since = old.since if old is not None and old.state == state else self._clock()
            self._checks[name] = Check(name, state, reason, since)
            return old is None or old.state != state

    def forget(self, name: str) -> None:
        with self._lock:
            self._checks.pop(name, None)

    def get(self, name: str) -> Check | None:
        with self._lock:
            return self._checks.get(name)

    def snapshot(self) -> list[Check]:
        with self._lock:
            return sorted(self._checks.values(), key=lambda c: c.name)

    def stalled_topics(self) -> dict[str, str]:
        """Topic → reason, for every agent check that is stalled."""
        return {c.name.removeprefix("agent:"): c.reason or "" for c in self.snapshot()
                if c.name.startswith("agent:") and c.state == "stalled"}
