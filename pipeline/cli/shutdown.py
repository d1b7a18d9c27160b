"""Signals of the long-running commands: SIGINT, SIGTERM and SIGHUP always stop the process.

One `Shutdown` per process. The first signal asks for a graceful stop (`stop` is set inside
the event loop; outside it, `KeyboardInterrupt` is raised so blocking start-up code unwinds) and
arms a deadline; a second signal, or the deadline (`grace_s`, default 9 s: the stop bound is
10 s), forces the exit: the `on_force` callbacks run (they stop what this process started, e.g.
the local Kafka broker) and the process ends with `os._exit`, whatever a library still waits
for (a commit to an absent broker, a thread that does not join).

Handlers come in two kinds because asyncio replaces Python-level handlers while a loop runs:
`install_sync` before and after the loop, `install_async(loop)` inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any, TypeVar

__all__ = ["SIGNALS", "Shutdown", "run"]

_T = TypeVar("_T")

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Shutdown:
    def __init__(self, grace_s: float = 9.0, *, say: Callable[[str], None] | None = None,
                 exit_now: Callable[[int], None] = os._exit) -> None:
        self.grace_s = grace_s
        self.say = say or (lambda m: print(m, file=sys.stderr, flush=True))
        self._exit_now = exit_now
        self.on_force: list[Callable[[], object]] = []
        self.signum: int | None = None
        self.first_at: float | None = None
        self._stop: asyncio.Event | None = None
        self._excepthook = threading.excepthook
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: threading.Timer | None = None
        self._forcing = threading.Lock()
        self._interrupt = True

    @property
    def requested(self) -> bool:
        return self.signum is not None

    # ---- installing

    def install_sync(self, *, interrupt: bool = True) -> None:
        """Handlers for blocking code (main thread, no running loop): the first signal raises
        KeyboardInterrupt (with `interrupt`; without, it only arms the deadline: the code that
        runs is already stopping), a second one forces the exit."""
        self._interrupt = interrupt
        for sig in SIGNALS:
            signal.signal(sig, self._sync_handler)

    def install_async(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        """Handlers for the running loop: the first signal sets `stop` (also if a signal
        arrived before the loop ran), a second one forces the exit."""
        self._loop, self._stop = loop, stop
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self.signalled, int(sig))
        if self.requested:
            stop.set()

    def remaining(self, default: float = 30.0) -> float:
        """Seconds left before the deadline forces the exit (`default` before any signal)."""
        if self.first_at is None:
            return default
        return self.grace_s - (time.monotonic() - self.first_at)

    # ---- reacting

    def signalled(self, signum: int) -> None:
        if self.signum is not None:
            self.force(f"second signal ({signal.Signals(signum).name})")
            return
        self.signum, self.first_at = signum, time.monotonic()
        threading.excepthook = self._thread_exception
        self.say(f"{signal.Signals(signum).name}: stopping (at most {self.grace_s + 1:g} s; "
                 f"a second signal stops at once)...")
        self._timer = threading.Timer(self.grace_s, self.force,
                                      (f"still stopping after {self.grace_s:g} s",))
        self._timer.daemon = True
        self._timer.start()
        if self._stop is not None and self._loop is not None:
            self._stop.set()

    def _thread_exception(self, args: threading.ExceptHookArgs) -> None:
        """While stopping, a library thread that ends by its cancellation (faust's consumer
        thread abandoned in a commit to an absent broker) is expected, not a traceback."""
        if args.exc_type is not None and issubclass(args.exc_type, asyncio.CancelledError):
            return
        self._excepthook(args)

    def _sync_handler(self, signum: int, _frame: FrameType | None) -> None:
        first = self.signum is None
        self.signalled(signum)
        if first and self._interrupt:
            raise KeyboardInterrupt

    def force(self, why: str) -> None:
        """Run `on_force` (each bounded by the callback itself) and end the process now."""
        if not self._forcing.acquire(blocking=False):
            return
        self.say(f"{why}: forcing the exit")
        for cb in self.on_force:
            with contextlib.suppress(Exception):
                cb()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        self._exit_now(1)

    def leave(self, code: int, wait_s: float = 1.0) -> int:
        """Return `code` if the process can end now; if threads that Python would wait for at
        exit are still busy after `wait_s` (a Kafka client's thread abandoned in a commit to an
        absent broker), end the process with `code` at once instead: everything Vitals owns
        has been stopped by then."""
        deadline = time.monotonic() + wait_s
        main = threading.main_thread()
        for thread in threading.enumerate():
            if thread is not main and not thread.daemon:
                thread.join(max(0.0, deadline - time.monotonic()))
        if any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate()):
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            self._exit_now(code)
        return code

    def done(self) -> None:
        """The graceful stop finished: disarm the deadline."""
        if self._timer is not None:
            self._timer.cancel()


def run(main: Coroutine[Any, Any, _T], *, cleanup_s: float = 1.5) -> _T:
    """`asyncio.run` whose clean-up is bounded: tasks left when `main` returns are cancelled and
    given `cleanup_s`, not waited for without end (a Kafka client's retry loop that swallows
    its cancellation must not hold the exit), and the executor's threads are not joined."""
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            left = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.wait(left, timeout=cleanup_s))
            loop.run_until_complete(asyncio.wait([loop.create_task(loop.shutdown_asyncgens())],
                                                 timeout=cleanup_s))
        finally:
            asyncio.set_event_loop(None)
            loop.close()  # shuts the default executor down without waiting for its threads
