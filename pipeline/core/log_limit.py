"""Say it once, then at most once a period: rate-limited logging for conditions that last.

Two shapes, both pure apart from the logger they write to, with the clock injected:
- `RateLimitedLog`: Vitals' own code logs a lasting condition under a key; the first call logs,
  later calls log at most once per `every_s` (with how many were held back); `clear(key)` when
  the condition ends, so the next occurrence is logged at once.
- `RateLimitFilter`: a `logging.Filter` for third-party loggers (aiokafka, faust) that log every
  failed reconnect; per logger family and level one record passes per `every_s`, the next one
  that passes says how many were dropped.
- `DemoteFilter`: third-party chatter that tells an operator nothing Vitals does not say better
  is logged at DEBUG instead of its own level (`THIRD_PARTY_NOISE`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["THIRD_PARTY_NOISE", "DemoteFilter", "RateLimitFilter", "RateLimitedLog", "Throttle"]


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


#: (logger name, text in the unformatted message) of the third-party records `DemoteFilter`
#: logs at DEBUG:
#: - mode's "Timer <name> is overlapping": a faust housekeeping timer (commit, livelock check)
#:   took longer than its interval, as every timer does while the broker is away or the machine
#:   is busy; it repeats for each timer and says nothing an operator can act on.
#: - faust's slow-processing walls ("Has not committed ... at all since worker start", "Has not
#:   committed ... (last commit ...)", "Stream stopped processing, or is slow ...", each with a
#:   dozen lines of possible explanations): faust's consumer thread logs them per partition after
#:   an outage, while the worker only waits for the broker or for storage. Vitals reports the
#:   same condition itself: `/readyz` and `vitals_ready` mark an agent "stalled" when it has lag
#:   and its committed offsets do not move, with one rate-limited log line (pipeline/readiness.py).
THIRD_PARTY_NOISE: tuple[tuple[str, str], ...] = (
    ("mode.timers", "is overlapping"),
    ("faust.transport.drivers.aiokafka", "Has not committed"),
    ("faust.transport.drivers.aiokafka", "There are multiple possible explanations"),
)


class DemoteFilter(logging.Filter):
    """A logger filter that logs the records of `noise` (logger name, message text) at DEBUG: the
    record is re-levelled and passes only where that logger is enabled for DEBUG. Records of
    other loggers, and other records of these loggers, pass unchanged."""

    def __init__(self, noise: tuple[tuple[str, str], ...] = THIRD_PARTY_NOISE) -> None:
        super().__init__()
        self.noise = noise

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            return True
        text = str(record.msg)
        if not any(record.name == name and needle in text for name, needle in self.noise):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)

    @classmethod
    def install(cls) -> None:
        """One filter on each noisy logger, however often it is called."""
        shared = cls()
        for name in dict.fromkeys(name for name, _ in shared.noise):
            logger = logging.getLogger(name)
            if not any(isinstance(f, cls) for f in logger.filters):
                logger.addFilter(shared)
