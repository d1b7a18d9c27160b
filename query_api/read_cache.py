"""Shared reads: identical concurrent reads answered once, and an answer reused while fresh.

An answer is keyed by everything it depends on (the read's kind, the tenant and scope, every
parameter) plus the store's write count when its computation started (`AsyncStore.writes`).
It serves a later call only when all of these hold:

- the same key: same tenant, scope and parameters, and no write completed by this process's
  store since the computation started (in `vitals up`, the worker's inserts go through that
  store, so an answer never misses an event the process had stored before the call);
- it was computed at most `fresh_s` ago (monotonic time): the bound for writes this process
  does not see (workers of another process writing to a ClickHouse server);
- for a read at an instant (current-mode stats): the call's instant lies in
  [computed instant, computed instant + `fresh_s`] on the injected clock, so an answer is never
  served for an instant before the one it was computed for, nor more than `fresh_s` after it.

A call that finds an identical computation in flight (same key, and an instant it may serve)
awaits that one instead of starting another. Errors are never kept: each waiter of a failed
computation gets the error, and the next call computes again. A computation continues if its
first caller goes away (a client that disconnects), for the others that wait on it.

`fresh_s` = 0 turns reuse off; identical concurrent reads are still answered once (by the same
rule: no write completed since the computation started).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from pipeline.telemetry import Telemetry

__all__ = ["ReadCache"]

T = TypeVar("T")


@dataclass
class _Entry:
    generation: int
    instant: float | None
    started: float  # monotonic
    task: asyncio.Future[Any]


class ReadCache:
    def __init__(self, fresh_s: float, generation: Callable[[], int], *,
                 telemetry: Telemetry | None = None,
                 monotonic: Callable[[], float] = time.monotonic, size: int = 4096) -> None:
        self.fresh_s = fresh_s
        self._generation = generation
        self._telemetry = telemetry
        self._monotonic = monotonic
        self._size = size
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()

    def _count(self, cache: str, outcome: str) -> None:
        if self._telemetry is not None:
            self._telemetry.inc("vitals_api_read_cache_total", cache=cache, outcome=outcome)

    def _usable(self, e: _Entry, generation: int, instant: float | None, now: float) -> bool:
        if e.generation != generation:
            return False
        if instant is not None and (e.instant is None
                                    or not 0 <= instant - e.instant <= self.fresh_s):
            return False
        if not e.task.done():
            return True  # in flight: started after every write counted in `generation`
        if e.task.cancelled() or e.task.exception() is not None:
            return False
        return now - e.started <= self.fresh_s

    async def get(self, cache: str, key: Hashable, compute: Callable[[], Awaitable[T]], *,
                  instant: float | None = None) -> T:
        """The answer of `compute()` for `key` (at `instant`, for reads at an instant): shared
        with identical calls as the module docstring says. `cache` names the kind of read in
        `/metrics` (`vitals_api_read_cache_total{cache}`)."""
        full = (cache, key)
        generation = self._generation()
        now = self._monotonic()
        e = self._entries.get(full)
        if e is not None and self._usable(e, generation, instant, now):
            self._count(cache, "joined" if not e.task.done() else "hit")
            self._entries.move_to_end(full)
            result: T = await asyncio.shield(e.task)
            return result
        task = asyncio.ensure_future(compute())
        self._entries[full] = _Entry(generation, instant, now, task)
        self._entries.move_to_end(full)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        self._count(cache, "computed")
        task.add_done_callback(_consume)
        return await asyncio.shield(task)


def _consume(task: asyncio.Future[Any]) -> None:
    """Mark an error as retrieved: a computation whose waiters all went away must not log
    'exception was never retrieved'."""
    if not task.cancelled():
        task.exception()
