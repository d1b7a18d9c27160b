"""Per-key sliding-window rate limit and a small TTL response cache. Pure, clock injected.

Both live in the API process: with N replicas behind a load balancer, a key may make up to
N × limit calls per window (each replica counts what it serves), and each replica keeps its
own cache. Sticky routing by API key makes the limit exact; a shared limiter (e.g. Redis) is
the way to a cluster-wide one.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from query_api.errors import ApiError

__all__ = ["RateLimiter", "TtlCache"]


def _window_text(seconds: int) -> str:
    for unit, width in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % width == 0:
            return f"{seconds // width}{unit}"
    return f"{seconds}s"


class RateLimiter:
    """At most `limit` calls per key in any `window_s` seconds (sliding log, memory bounded by
    limit per key and `max_keys` keys)."""

    def __init__(self, limit: int, window_s: int, clock: Callable[[], float], *,
                 max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._calls: OrderedDict[str, deque[float]] = OrderedDict()
        self._max_keys = max_keys

    def check(self, key: str, cost: int = 1) -> None:
        """Record a call, or raise the 429 RATE_LIMIT_EXCEEDED error (with Retry-After)."""
        now = self._clock()
        calls = self._calls.get(key)
        if calls is None:
            calls = self._calls[key] = deque()
            if len(self._calls) > self._max_keys:
                self._calls.popitem(last=False)
        self._calls.move_to_end(key)
        while calls and calls[0] <= now - self.window_s:
            calls.popleft()
        if len(calls) + cost > self.limit:
            oldest = calls[0] if calls else now
            retry = max(1, math.ceil(oldest + self.window_s - now))
            raise ApiError(429, "RATE_LIMIT_EXCEEDED", "Too many metrics requests", {
                "limit": self.limit, "window": _window_text(self.window_s),
                "retryAfter": retry,
                "suggestion": "Use batch endpoints or increase polling interval"},
                headers={"Retry-After": str(retry)})
        calls.extend([now] * cost)


class TtlCache:
    """LRU of at most `size` entries, each valid for its own TTL on the injected clock."""

    def __init__(self, clock: Callable[[], float], size: int = 512) -> None:
        self._clock = clock
        self._size = size
        self._items: OrderedDict[Any, tuple[float, Any]] = OrderedDict()

    def get(self, key: Any) -> Any | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        if self._clock() >= hit[0]:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return hit[1]

    def expires_at(self, key: Any) -> float | None:
        """When `key`'s entry expires (clock time), or None when there is none."""
        hit = self._items.get(key)
        return None if hit is None else hit[0]

    def clear(self) -> None:
        self._items.clear()

    def put(self, key: Any, value: Any, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        self._items[key] = (self._clock() + ttl_s, value)
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)
