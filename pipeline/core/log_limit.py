"""Say it once, then at most once a period: rate-limited logging for conditions that last.

Two shapes, both pure apart from the logger they write to, with the clock injected:
- `RateLimitedLog`: Vitals' own code logs a lasting condition under a key; the first call logs,
  later calls log at most once per `every_s` (with how many were held back); `clear(key)` when
  the condition ends, so the next occurrence is logged at once.
- `RateLimitFilter`: a `logging.Filter` for third-party loggers (aiokafka, faust) that log every
  failed reconnect; per logger family and level one record passes per `every_s`, the next one
  that passes says how many were dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["RateLimitFilter", "RateLimitedLog", "Throttle"]


class Throttle:
    """Pure: `allow(key)` → None when held back, else how many were held back since the last
    allowed one. Thread-safe."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[object, tuple[float, int]] = {}

    def allow(self, key: object) -> int | None:
        now = self._clock()
        with self._lock:
            prev = self._last.get(key)
            if prev is None or now - prev[0] >= self.every_s:
                self._last[key] = (now, 0)
                if len(self._last) > 10_000:  # templates are few; never grow without bound
                    self._last.clear()
                return 0 if prev is None else prev[1]
            self._last[key] = (prev[0], prev[1] + 1)
            return None

    def clear(self, key: object) -> None:
        with self._lock:
            self._last.pop(key, None)


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, every_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self._throttle = Throttle(every_s, clock)

    def log(self, level: int, key: object, msg: str, *args: object) -> bool:
        held = self._throttle.allow(key)
        if held is None:
            return False
        suffix = f" ({held} similar messages held back)" if held else ""
        self.logger.log(level, msg + suffix, *args)
        return True

    def warning(self, key: object, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def error(self, key: object, msg: str, *args: object) -> bool:
        return self.log(logging.ERROR, key, msg, *args)

    def clear(self, key: object) -> None:
        self._throttle.clear(key)


class RateLimitFilter(logging.Filter):
    """For a handler: records of the logger `families` (a family is a top-level logger name and
    its children, e.g. "aiokafka") pass at most once per `every_s` per family and level; the next
    one that passes says how many were dropped. Records of other loggers always pass.

    Kafka clients log every failed reconnect and fetch (about 20 lines a second per client
    with the broker away, thousands with producers); the cause is said once and then at most
    once a period here, and the readiness monitor says how long the outage lasts."""

    def __init__(self, families: tuple[str, ...] = ("aiokafka", "faust", "mode", "asyncio"),
                 every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.families = families
        self._throttle = Throttle(every_s, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        decided = record.__dict__.get("_vitals_rate_limited")
        if decided is not None:  # one decision per record, whichever handler asks again
            return not decided
        family = record.name.split(".", 1)[0]
        if family not in self.families:
            return True
        held = self._throttle.allow((family, record.levelno))
        record.__dict__["_vitals_rate_limited"] = held is None
        if held:
            record.msg = f"{record.msg} ({held} more {family} messages in the last period dropped)"
        return held is not None

    @classmethod
    def install(cls, handlers: list[logging.Handler]) -> None:
        """One filter per handler, whatever the number of calls (`main` may run repeatedly in
        one process, e.g. under pytest)."""
        shared = cls()
        for handler in handlers:
            if not any(isinstance(f, cls) for f in handler.filters):
                handler.addFilter(shared)
