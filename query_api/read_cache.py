"""Shared reads: identical concurrent reads answered once, and an answer reused while fresh.

An answer is keyed by everything it depends on: the read's kind, the tenant and scope, and every
parameter. It serves a later call with the same key only when both hold:

- its computation started at most `fresh_s` ago (monotonic time): no answer is older than that,
  whoever wrote to ClickHouse meanwhile;
- for a read at an instant (current-mode stats): the call's instant lies in
  [computed instant, computed instant + `fresh_s`] on the injected clock, so an answer is never
  served for an instant before the one it was computed for, nor more than `fresh_s` after it
  (a test that moves its clock gets a fresh computation).

A call that finds an identical computation in flight that it may be served from (same rules)
awaits that one instead of starting another, so N identical concurrent calls cost one.

Refresh ahead: a call served an answer older than half the bound starts its replacement in the
background (for the call's own instant), so a read that keeps being asked for is recomputed about
twice per bound and its callers do not wait on ClickHouse; a read nobody asks for expires. The
bound still holds for every answer served (its age counts from the start of its computation).

Errors are never kept: each waiter of a failed computation gets the error, and the next call
computes again (so an unknown endpoint that appears is found at once). A computation continues
if its first caller goes away (a client that disconnects), for the others waiting on it.

`reuse=False` (a read that has a cache of its own, e.g. the endpoint-metrics documents) only
joins identical computations in flight; a finished answer is not served again from here.
`fresh_s` = 0 turns sharing off: every call computes its own answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from pipeline.core.telemetry import Telemetry

__all__ = ["ReadCache"]

T = TypeVar("T")


@dataclass
class _Entry:
    instant: float | None
    started: float  # monotonic
    task: asyncio.Future[Any]
    refreshing: bool = False


class ReadCache:
    def __init__(self, fresh_s: float, *, telemetry: Telemetry | None = None,
                 monotonic: Callable[[], float] = time.monotonic, size: int = 4096) -> None:
        self.fresh_s = fresh_s
        self._telemetry = telemetry
        self._monotonic = monotonic
        self._size = size
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()

    def _count(self, cache: str, outcome: str) -> None:
        if self._telemetry is not None:
            self._telemetry.inc("vitals_api_read_cache_total", cache=cache, outcome=outcome)

    def _usable(self, e: _Entry, instant: float | None, now: float, reuse: bool) -> bool:
        if now - e.started > self.fresh_s or (not reuse and e.task.done()):
            return False
        if instant is not None and (e.instant is None
                                    or not 0 <= instant - e.instant <= self.fresh_s):
            return False
        return not e.task.done() or not (e.task.cancelled() or e.task.exception() is not None)

    async def get(self, cache: str, key: Hashable, compute: Callable[[], Awaitable[T]], *,
                  instant: float | None = None, reuse: bool = True) -> T:
        """The answer of `compute()` for `key` (at `instant`, for reads at an instant): shared
        with identical calls as the module docstring says. `cache` names the kind of read in
        `/metrics` (`vitals_api_read_cache_total{cache}`)."""
        full = (cache, key)
        now = self._monotonic()
        e = self._entries.get(full)
        if e is not None and self._usable(e, instant, now, reuse):
            self._count(cache, "joined" if not e.task.done() else "hit")
            self._entries.move_to_end(full)
            if e.task.done():
                if not e.refreshing and now - e.started > self.fresh_s / 2:
                    self._refresh(cache, full, e, compute, instant, now)
                done: T = e.task.result()  # a kept answer: no await, no shield
                return done
            result: T = await asyncio.shield(e.task)
            return result
        if self.fresh_s <= 0:
            return await compute()
        task = asyncio.ensure_future(compute())
        self._entries[full] = _Entry(instant, now, task)
        self._entries.move_to_end(full)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        self._count(cache, "computed")
        task.add_done_callback(_consume)
        return await asyncio.shield(task)


    def _refresh(self, cache: str, full: Hashable, old: _Entry,
                 compute: Callable[[], Awaitable[Any]], instant: float | None,
                 now: float) -> None:
        """Compute `full` again in the background; the answer replaces `old` when it lands
        (a failure leaves `old` to expire)."""
        old.refreshing = True
        self._count(cache, "refreshed")
        task = asyncio.ensure_future(compute())

        def landed(t: asyncio.Future[Any]) -> None:
            old.refreshing = False
            if t.cancelled() or t.exception() is not None:
                return
            if self._entries.get(full) in (old, None):
                self._entries[full] = _Entry(instant, now, t)

        task.add_done_callback(landed)


def _consume(task: asyncio.Future[Any]) -> None:
    """Mark an error as retrieved: a computation whose waiters all went away must not log
    'exception was never retrieved'."""
    if not task.cancelled():
        task.exception()
