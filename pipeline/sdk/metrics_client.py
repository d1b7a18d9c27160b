"""Fire-and-forget custom metrics from user code, over UDP in the DogStatsD line format.

    from pipeline.sdk.metrics_client import MetricsClient

    metrics = MetricsClient("127.0.0.1", 8125)
    metrics.increment(metric="my_counter", value=1, tags={"model": "v1"})
    metrics.gauge(metric="my_gauge", value=42, tags={"model": "v1"})
    metrics.histogram(metric="my_histogram", value=100, tags={"model": "v1"})

Contract: no method ever raises and none blocks the caller. The socket is non-blocking; a
datagram that cannot leave at once (no listener, full socket buffer, unreachable network) is
dropped and counted in `dropped`. A host name is resolved on a background thread; until it
resolves (or if it never does) metrics are dropped and counted. Bad metric names or values are
dropped and counted too: metrics must never break the code they observe.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import random
import socket
import threading
from collections.abc import Mapping

__all__ = ["MetricsClient", "format_line"]

_BAD_NAME = str.maketrans({c: "_" for c in ":|@#,\n\r "})
_BAD_TAG = str.maketrans({c: "_" for c in "|#,\n\r"})


def format_line(metric: str, value: float, kind: str, tags: Mapping[str, object] | None = None,
                sample_rate: float = 1.0) -> bytes:
    """One DogStatsD line; characters that would break the format are replaced by `_`."""
    if not math.isfinite(value):
        raise ValueError("value must be finite")
    text = f"{metric.translate(_BAD_NAME)}:{value:g}|{kind}"
    if sample_rate != 1.0:
        text += f"|@{sample_rate:g}"
    if tags:
        text += "|#" + ",".join(
            f"{str(k).translate(_BAD_TAG).replace(':', '_')}:{str(v).translate(_BAD_TAG)}"
            for k, v in tags.items())
    return text.encode()


class MetricsClient:
    def __init__(self, host: str = "127.0.0.1", port: int = 8125, *,
                 default_tags: Mapping[str, object] | None = None) -> None:
        self.host = host
        self.port = port
        self.default_tags = dict(default_tags or {})
        self.sent = 0
        self.dropped = 0
        self._addr: tuple[str, int] | None = None
        self._sock: socket.socket | None = None
        try:
            ip = ipaddress.ip_address(host)
            self._open(str(ip), ip.version)
        except ValueError:
            threading.Thread(target=self._resolve, daemon=True,
                             name="vitals-metrics-resolve").start()
        except OSError:
            pass

    def _open(self, ip: str, version: int) -> None:
        family = socket.AF_INET6 if version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        self._sock, self._addr = sock, (ip, self.port)

    def _resolve(self) -> None:
        with contextlib.suppress(OSError, UnicodeError, ValueError):
            info = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
            if info:
                family, _, _, _, addr = info[0]
                self._open(str(addr[0]), 6 if family == socket.AF_INET6 else 4)

    def increment(self, metric: str, value: float = 1, tags: Mapping[str, object] | None = None,
                  sample_rate: float = 1.0) -> None:
        self._send(metric, value, "c", tags, sample_rate)

    def decrement(self, metric: str, value: float = 1, tags: Mapping[str, object] | None = None,
                  sample_rate: float = 1.0) -> None:
        self._send(metric, -value, "c", tags, sample_rate)

    def gauge(self, metric: str, value: float, tags: Mapping[str, object] | None = None) -> None:
        self._send(metric, value, "g", tags, 1.0)

    def histogram(self, metric: str, value: float, tags: Mapping[str, object] | None = None,
                  sample_rate: float = 1.0) -> None:
        self._send(metric, value, "h", tags, sample_rate)

    def timing(self, metric: str, value_ms: float, tags: Mapping[str, object] | None = None,
               sample_rate: float = 1.0) -> None:
        self._send(metric, value_ms, "ms", tags, sample_rate)

    def distribution(self, metric: str, value: float,
                     tags: Mapping[str, object] | None = None) -> None:
        self._send(metric, value, "d", tags, 1.0)

    def _send(self, metric: str, value: float, kind: str, tags: Mapping[str, object] | None,
              sample_rate: float) -> None:
        try:
            if sample_rate < 1.0 and random.random() >= sample_rate:
                return  # sampled out: the line's @rate lets the server scale the others up
            merged = {**self.default_tags, **tags} if tags else self.default_tags
            line = format_line(metric, float(value), kind, merged, sample_rate)
            sock, addr = self._sock, self._addr
            if sock is None or addr is None:
                self.dropped += 1
                return
            sock.sendto(line, addr)
            self.sent += 1
        except Exception:  # never raise into user code: bad input, EAGAIN, ECONNREFUSED, ...
            self.dropped += 1

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._sock is not None:
                self._sock.close()
        self._sock = None
