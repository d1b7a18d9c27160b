"""The dead-letter burst alarm of one topic. Pure (clock injected), no I/O.

A broken producer shows up as a sudden share of rejected events. `DlqAlarm` keeps per-second
counts of events seen (stored + dead-lettered) and events dead-lettered over a trailing window
of `window_s` seconds; the alarm is raised while `dead / seen > ratio` and at least `min_events`
were seen in the window (so three bad events out of five do not page anyone), and cleared when the
share falls back to or below the ratio. Memory: at most `window_s` slots.

The sink turns state changes into the `vitals_dlq_alert` gauge (1 raised, 0 clear), the
`vitals_dlq_ratio` gauge and one WARNING log line per raise.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

__all__ = ["DlqAlarm"]


class DlqAlarm:
    def __init__(self, *, ratio: float, window_s: int, min_events: int,
                 clock: Callable[[], float]) -> None:
        if not 0 < ratio <= 1:
            raise ValueError(f"ratio {ratio} must be in (0, 1]")
        self.threshold = ratio
        self.window_s = window_s
        self.min_events = min_events
        self.clock = clock
        self._slots: deque[list[int]] = deque()  # [second, seen, dead], oldest first
        self._seen = 0
        self._dead = 0
        self.raised = False

    @property
    def seen(self) -> int:
        return self._seen

    @property
    def dead(self) -> int:
        return self._dead

    @property
    def ratio(self) -> float:
        """Share of dead-lettered events in the window (0 when nothing was seen)."""
        return self._dead / self._seen if self._seen else 0.0

    def record(self, seen: int, dead: int) -> bool | None:
        """Count a batch of `seen` events of which `dead` were dead-lettered.

        Returns True when this batch raises the alarm, False when it clears it, None otherwise.
        """
        now = int(self.clock())
        self._expire(now)
        if seen:
            if self._slots and self._slots[-1][0] == now:
                slot = self._slots[-1]
                slot[1] += seen
                slot[2] += dead
            else:
                self._slots.append([now, seen, dead])
            self._seen += seen
            self._dead += dead
        firing = self._seen >= self.min_events and self.ratio > self.threshold
        if firing == self.raised:
            return None
        self.raised = firing
        return firing

    def _expire(self, now: int) -> None:
        oldest = now - self.window_s
        while self._slots and self._slots[0][0] <= oldest:
            _, seen, dead = self._slots.popleft()
            self._seen -= seen
            self._dead -= dead
