"""The traffic commands: `vitals publish` (events from stdin or arguments) and `vitals demo`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from typing import IO, TYPE_CHECKING, Any

from pipeline.cli.errors import CliError
from pipeline.cli.local_state import _bootstrap, _ensure_topics
from pipeline.core.errors import InvalidEvent
from pipeline.core.settings import Settings

if TYPE_CHECKING:
    from pipeline.cli.serve import Closer


def parse_event_line(line: str) -> dict[str, Any] | str:
    """One JSON-lines event as a dict, or the reason it is not one."""
    import orjson

    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return f"not valid JSON: {exc}"
    if not isinstance(event, dict):
        return "expected one JSON object per line"
    return event


def format_progress(p: Any) -> str:
    """One status line of a `DemoProgress`."""
    label = "avg" if p.done else "now"
    return (
        f"demo: {p.events:,} events sent ({p.requests:,} requests, {p.heartbeats:,} "
        f"heartbeats, {p.task_events:,} training events) in {p.elapsed_s:,.0f} s, "
        f"{label} {p.rate:,.0f} events/s"
    )


class _ProgressLine:
    """Prints demo progress: rewritten in place on a TTY, a line every `every_s` otherwise."""

    def __init__(self, out: IO[str], every_s: float = 10.0) -> None:
        self.out = out
        self.tty = out.isatty()
        self.every_s = every_s
        self._last = 0.0

    def __call__(self, p: Any) -> None:
        text = format_progress(p)
        if self.tty:
            self.out.write("\r" + text + "\x1b[K" + ("\n" if p.done else ""))
        elif p.done or p.elapsed_s - self._last >= self.every_s:
            self._last = p.elapsed_s
            self.out.write(text + "\n")
        self.out.flush()


async def _start_demo(
    settings: Settings,
    rate: float,
    duration: float | None,
    seed: int | None,
    endpoints: int,
    closers: list[Closer],
) -> asyncio.Task[Any]:
    from pipeline.local.demo import run_demo
    from pipeline.sdk.producer import Producer

    assert settings.kafka_bootstrap is not None
    producer = Producer(
        settings.kafka_bootstrap, settings.topics, max_future_s=settings.max_future_s
    )
    await producer.start()
    closers.append(producer.close)
    print(
        f"demo: {rate:g} requests/s on {endpoints} endpoints (ids 1-{endpoints}) plus "
        f"worker heartbeats every 5 s, and training task demo-train, to "
        f"{settings.kafka_bootstrap}",
        flush=True,
    )
    return asyncio.create_task(
        run_demo(
            producer,
            rate,
            duration,
            time.time,
            _ProgressLine(sys.stdout),
            endpoints=endpoints,
            seed=seed,
        ),
        name="demo",
    )


def _cmd_publish(settings: Settings, args: argparse.Namespace) -> int:
    """Publish JSON lines; each event first passes the worker's rules (`pipeline.ingest.admission`:
    schema, future time, the retention of the topic's data family, size), so an event the
    worker would dead-letter is reported as rejected with its reason instead of sent."""
    import time

    from pipeline.ingest.admission import Admission
    from pipeline.sdk.producer import SyncProducer

    bootstrap = _bootstrap(settings)
    _ensure_topics(settings, bootstrap, [args.topic])
    try:
        source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}", 2) from None
    sent = rejected = 0
    producer = SyncProducer(bootstrap, settings.topics, max_future_s=settings.max_future_s,
                            max_message_bytes=settings.max_message_bytes)
    try:
        for lineno, line in enumerate(source, 1):
            if not line.strip():
                continue
            event = parse_event_line(line)
            if isinstance(event, dict):
                try:
                    Admission.of(settings, args.topic, time.time()).check(event)
                    producer.send(args.topic, event)
                    sent += 1
                    continue
                except InvalidEvent as exc:
                    event = exc.reason
            rejected += 1
            print(f"line {lineno}: {event}", file=sys.stderr)
    finally:
        undelivered = producer.close()
        if source is not sys.stdin:
            source.close()
    if undelivered:
        print(f"sent {sent - undelivered}, rejected {rejected}, not delivered {undelivered} "
              "(the broker did not acknowledge them in time; publish those lines again)")
        return 1
    print(f"sent {sent}, rejected {rejected}")
    return 1 if rejected else 0


def _cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    bootstrap = _bootstrap(settings)
    _ensure_topics(settings, bootstrap, ["requests", "heartbeats", "task-events"])
    return asyncio.run(_demo(settings.with_(kafka_bootstrap=bootstrap), args))


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
    closers: list[Closer] = []
    try:
        task = await _start_demo(
            settings, args.rate, args.duration, args.seed, args.endpoints, closers
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        for close in closers:
            await close()
    return 0
