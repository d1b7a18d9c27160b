"""The probe board: `/healthz` and `/readyz` as the API process last published them, in a small
memory-mapped file that the probe port's own process serves (query_api/probe_server.py).

The API process's event loop publishes the two answers a few times a second; the probe process
reads them without a lock, the interpreter lock or the loop of the API process, so a probe is
answered in a millisecond whatever the queries do. The time of each publication travels with
it: a board that stops being published (a stalled loop, a process stopping) turns the probes'
answers into 503 after `stale_s` (query_api/probe_server.py).

Layout, little-endian, in a file of `SIZE` bytes:

    magic 8s | seq u64 | published_at f64 (time.time()) | length u32 | payload

`payload` is the JSON `{path: [status, {header: value}, body]}`. One writer. It makes `seq` odd,
writes, then makes it even (a seqlock): a reader copies the fields and the payload between two
reads of `seq` and retries while it was odd or changed, so it never sees a torn publication.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from pipeline.core.errors import VitalsError

__all__ = ["SIZE", "BoardFull", "NotABoard", "ProbeBoard", "Published"]

SIZE = 256 * 1024
_MAGIC = b"VPROBE1\0"
_HEAD = struct.Struct("<8sQdI")
_SEQ = struct.Struct("<Q")


class BoardFull(VitalsError):
    """A publication larger than the board."""


class NotABoard(VitalsError):
    """A file without the board's magic."""


@dataclass(frozen=True)
class Published:
    seq: int
    published_at: float
    answers: dict[str, tuple[int, dict[str, str], bytes]]


class ProbeBoard:
    """One mapping of the board file (`create` for the writer, `attach` for a reader)."""

    def __init__(self, path: Path, mapping: mmap.mmap) -> None:
        self.path = path
        self._map = mapping
        self._seq = _SEQ.unpack_from(mapping, 8)[0]

    @classmethod
    def create(cls, path: Path) -> ProbeBoard:
        """A fresh, empty board at `path` (seq 0: nothing published yet)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, SIZE)
            mapping = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        _HEAD.pack_into(mapping, 0, _MAGIC, 0, 0.0, 0)
        return cls(path, mapping)

    @classmethod
    def attach(cls, path: Path) -> ProbeBoard:
        fd = os.open(path, os.O_RDWR)
        try:
            mapping = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        if mapping[:8] != _MAGIC:
            mapping.close()
            raise NotABoard(f"{path} is not a probe board")
        return cls(path, mapping)

    def publish(self, answers: dict[str, tuple[int, dict[str, str], bytes]], at: float) -> None:
        payload = orjson.dumps({p: [s, h, b.decode()] for p, (s, h, b) in answers.items()})
        if len(payload) > SIZE - _HEAD.size:
            raise BoardFull(f"{len(payload)} bytes of probe answers; the board holds "
                            f"{SIZE - _HEAD.size}")
        self._seq += 1  # odd: being written
        _SEQ.pack_into(self._map, 8, self._seq)
        _HEAD.pack_into(self._map, 0, _MAGIC, self._seq, at, len(payload))
        self._map[_HEAD.size:_HEAD.size + len(payload)] = payload
        self._seq += 1  # even: complete
        _SEQ.pack_into(self._map, 8, self._seq)

    def seq(self) -> int:
        """The current sequence number (cheap: a reader re-reads the payload only when it moved)."""
        return int(_SEQ.unpack_from(self._map, 8)[0])

    def read(self, attempts: int = 1000) -> Published | None:
        """The last complete publication, or None before the first one (or while a writer keeps
        the board busy through every attempt, which one writer at a few per second never does)."""
        for _ in range(attempts):
            _, seq, at, length = _HEAD.unpack_from(self._map, 0)
            if seq == 0:
                return None
            if seq & 1:
                continue
            payload = self._map[_HEAD.size:_HEAD.size + min(length, SIZE - _HEAD.size)]
            if _SEQ.unpack_from(self._map, 8)[0] != seq:
                continue
            doc: dict[str, Any] = orjson.loads(payload)
            return Published(seq, at, {p: (int(s), dict(h), b.encode())
                                       for p, (s, h, b) in doc.items()})
        return None

    def close(self) -> None:
        self._map.close()
