"""Deterministic fault injection for the delivery-guarantee tests: `VITALS_FAULT=<point>:<n>`.

With the fault set, the worker process SIGKILLs itself (a real `kill -9`: no cleanup, no offset
commit, no consumer-group leave) the `n`-th time it reaches `point`:

- `before_insert`: a batch is decoded (its dead letters sent) but nothing of it is inserted;
- `after_insert`: ClickHouse accepted every row of the batch, the offsets are not acked yet;
- `after_commit`: the batch is acked and its offsets committed to Kafka (the agent forces the
  commit first, so the point is exact);
- `rebalance`: inside the consumer's partitions-revoked callback, i.e. during a rebalance.

Counting is per process and across agents (batches of every topic count). The hook costs one
`is None` check per batch when unset; production never sets it. Tests (tests/integration/faults/)
start `vitals up` with the variable, let it die, restart it without, and check the ledger.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = ["FAULT_POINTS", "FaultInjector", "FaultPoint", "FaultSpec", "parse_fault"]

log = logging.getLogger("vitals.faults")

FaultPoint = Literal["before_insert", "after_insert", "after_commit", "rebalance"]
FAULT_POINTS: tuple[FaultPoint, ...] = get_args(FaultPoint)


@dataclass(frozen=True)
class FaultSpec:
    point: FaultPoint
    nth: int

    def __str__(self) -> str:
        return f"{self.point}:{self.nth}"


def parse_fault(text: str) -> FaultSpec:
    """`"after_insert:3"` → FaultSpec("after_insert", 3); `":n"` may be omitted (n = 1).

    Raises ValueError naming the allowed points.
    """
    point, _, nth_text = text.strip().partition(":")
    if point not in FAULT_POINTS:
        raise ValueError(f"fault point {point!r}: allowed points are {', '.join(FAULT_POINTS)}")
    try:
        nth = int(nth_text) if nth_text else 1
    except ValueError:
        raise ValueError(f"fault count {nth_text!r} is not an integer") from None
    if nth < 1:
        raise ValueError(f"fault count {nth} must be >= 1")
    return FaultSpec(point, nth)


def _sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class FaultInjector:
    """Counts arrivals at each point and kills the process at the configured one."""

    def __init__(self, spec: FaultSpec, *, kill: Callable[[], None] = _sigkill) -> None:
        self.spec = spec
        self.kill = kill
        self.counts: dict[str, int] = {}

    def armed(self, point: FaultPoint) -> bool:
        """Whether the next arrival at `point` is the fatal one."""
        return point == self.spec.point and self.counts.get(point, 0) + 1 == self.spec.nth

    def hit(self, point: FaultPoint) -> None:
        n = self.counts[point] = self.counts.get(point, 0) + 1
        if point == self.spec.point and n == self.spec.nth:
            log.warning("injected fault %s reached: killing process %d", self.spec, os.getpid())
            sys.stderr.flush()
            self.kill()
