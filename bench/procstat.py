"""CPU accounting from /proc (Linux): where the CPU time of a benchmark phase went.

A `Snapshot` records the machine's busy/idle time, every thread of this process (grouped by thread
name), and any extra processes (the broker JVM, producer subprocesses). `Snapshot.delta` turns two
snapshots into CPU seconds, so a phase can report "main thread 0.98 cores, clickhouse thread 0.4
cores, broker 0.2 cores, other processes on the machine 0.1 cores".
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CpuDelta", "Snapshot", "machine_info"]

_TICK = os.sysconf("SC_CLK_TCK")


def _stat_cpu(path: Path) -> tuple[str, float] | None:
    """(comm, utime+stime seconds) of a /proc/<pid>[/task/<tid>]/stat file, None if gone."""
    try:
        raw = path.read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return comm, (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)


def _machine() -> tuple[float, float]:
    """(busy, idle) seconds summed over all CPUs since boot."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    return (sum(parts[:8]) - idle) / _TICK, idle / _TICK


def _tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and its live descendants (children that exited are not counted)."""
    total = 0.0
    todo = [pid]
    seen = set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        got = _stat_cpu(Path(f"/proc/{p}/stat"))
        if got:
            total += got[1]
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            kids = []
        todo += [int(k) for k in kids]
    return total


@dataclass
class CpuDelta:
    wall: float
    machine_busy: float
    threads: dict[str, float]
    pids: dict[str, float]

    @property
    def own(self) -> float:
        return sum(self.threads.values())

    @property
    def others(self) -> float:
        """CPU seconds used on the machine by anything not accounted for here."""
        return max(0.0, self.machine_busy - self.own - sum(self.pids.values()))

    def cores(self, seconds: float) -> float:
        return seconds / self.wall if self.wall > 0 else 0.0

    def summary(self, top: int = 6) -> str:
        parts = [f"{name} {self.cores(s):.2f}" for name, s in
                 sorted(self.threads.items(), key=lambda kv: -kv[1])[:top] if s > 0.005]
        parts += [f"{name} {self.cores(s):.2f}" for name, s in self.pids.items()]
        parts.append(f"other processes {self.cores(self.others):.2f}")
        return "cores used: " + ", ".join(parts)


@dataclass
class Snapshot:
    wall: float = field(default_factory=time.monotonic)
    machine: tuple[float, float] = field(default_factory=_machine)
    threads: dict[int, tuple[str, float]] = field(default_factory=dict)
    pids: dict[str, float] = field(default_factory=dict)

    @classmethod
    def take(cls, pids: dict[str, int] | None = None,
             names: dict[int, str] | None = None) -> Snapshot:
        """Python threads all share the OS name of the process (3.11 does not set thread names):
        `names` labels known native thread ids (`threading.get_native_id()`)."""
        snap = cls()
        names = names or {}
        for task in Path("/proc/self/task").iterdir():
            got = _stat_cpu(task / "stat")
            if got:
                tid = int(task.name)
                snap.threads[tid] = (names.get(tid, got[0]), got[1])
        for name, pid in (pids or {}).items():
            snap.pids[name] = _tree_cpu(pid)
        return snap

    def delta(self, later: Snapshot) -> CpuDelta:
        threads: dict[str, float] = defaultdict(float)
        for tid, (comm, cpu) in later.threads.items():
            before = self.threads.get(tid)
            threads[_group(comm)] += cpu - (before[1] if before else 0.0)
        pids = {name: later.pids[name] - self.pids.get(name, 0.0) for name in later.pids}
        return CpuDelta(later.wall - self.wall, later.machine[0] - self.machine[0],
                        dict(threads), pids)


def _group(comm: str) -> str:
    """Thread names with a numeric suffix (pool threads) grouped together."""
    base = comm.rstrip("0123456789_-")
    return f"{base or comm} threads" if base != comm else comm


def machine_info() -> str:
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) * 1024
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"nproc={os.cpu_count()}, mem={mem / 2**30:.1f} GiB, cpu={model or 'unknown'}"
