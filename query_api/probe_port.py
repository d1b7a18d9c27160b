"""`VITALS_PROBE_PORT`: the API process's side of the probe port (query_api/probe_server.py).

`ProbePort.start` creates the probe board, starts the probe process on `host:port` (0: a free
port) and publishes `/healthz` and `/readyz` (`Probes.document`, the API port's own answers) to
the board every `PUBLISH_EVERY_S` from the event loop. The board's file is unlinked as soon as
the probe process has mapped it, so nothing is left behind whichever process dies first.
`stop` ends the publisher and the process (SIGTERM, then SIGKILL after a grace).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Protocol

from query_api.probe_board import ProbeBoard

__all__ = ["PUBLISH_EVERY_S", "STALE_AFTER_S", "ProbeDocuments", "ProbePort"]

log = logging.getLogger(__name__)

#: How often the API process publishes its probe answers: a probe answer on the probe port is at
#: most this old (plus the time a readiness check takes to notice a change).
PUBLISH_EVERY_S = 0.2
#: A board not published for this long answers 503 STALLED: the API process's event loop has
#: not run for that long. Long enough that no start-up step or collection pause reaches it.
STALE_AFTER_S = 10.0
_START_TIMEOUT_S = 15.0


class ProbeDocuments(Protocol):
    """What the board publishes: `query_api.probes.Probes`, the API port's own answers."""

    def document(self, path: bytes, *, monitored_only: bool = True
                 ) -> tuple[int, dict[str, str], bytes] | None: ...


class ProbePort:
    def __init__(self, probes: ProbeDocuments, host: str, port: int, *,
                 stale_s: float = STALE_AFTER_S, every_s: float = PUBLISH_EVERY_S) -> None:
        self._probes = probes
        self._host, self._port = host, port
        self._stale_s, self._every_s = stale_s, every_s
        self._proc: asyncio.subprocess.Process | None = None
        self._board: ProbeBoard | None = None
        self._publisher: asyncio.Task[None] | None = None
        self.url: str | None = None

    async def start(self) -> str:
        """Start the probe process and the publisher; the probe port's URL."""
        path = Path(tempfile.mkdtemp(prefix="vitals-probe-")) / "board"
        self._board = ProbeBoard.create(path)
        self.publish()  # the first answers are there before the port opens
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "query_api.probe_server", str(path), self._host,
            str(self._port), str(os.getpid()), str(self._stale_s),
            stdout=asyncio.subprocess.PIPE)
        try:
            assert self._proc.stdout is not None
            async with asyncio.timeout(_START_TIMEOUT_S):
                said = (await self._proc.stdout.readline()).decode().strip()
            line = said.split()
            if len(line) != 2 or line[0] != "listening":
                raise RuntimeError(f"the probe port (VITALS_PROBE_PORT) did not start: "
                                   f"{said.removeprefix('error ') or 'no answer'}")
        except BaseException:
            await self.stop()
            raise
        finally:
            path.unlink(missing_ok=True)
            path.parent.rmdir()
        self.url = f"http://{self._host}:{line[1]}"
        self._publisher = asyncio.create_task(self._publish_loop(), name="probe-board")
        return self.url

    def publish(self) -> None:
        assert self._board is not None
        answers = {}
        for path in ("/healthz", "/readyz"):
            found = self._probes.document(path.encode(), monitored_only=False)
            assert found is not None
            answers[path] = found
        self._board.publish(answers, time.time())

    async def _publish_loop(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            try:
                self.publish()
            except Exception as exc:  # the probes turn STALLED: the cause is in the log
                log.warning("publishing the probe answers failed: %r", exc)

    async def stop(self, grace_s: float = 1.0) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
            self._publisher = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                async with asyncio.timeout(grace_s):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._board is not None:
            self._board.close()
            self._board = None
