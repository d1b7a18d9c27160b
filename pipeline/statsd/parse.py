"""DogStatsD line format: parse datagrams into samples, aggregate them per series-second. Pure.

A datagram holds one or more lines separated by `\\n`. A line reads::

    <name>:<value>[:<value>...]|<type>[|@<sample rate>][|#<tag>,<tag>...][|T<unix ts>][|c:<id>]

- `type` is `c` (counter), `g` (gauge), `h` (histogram), `ms` (timer) or `d` (distribution);
  `ms` and `d` are stored as histograms of their own kind. Sets (`s`), events (`_e{`) and
  service checks (`_sc|`) are not supported and count as malformed with that reason.
- a tag is `key:value` or a bare `key` (value ""); tags are sorted, so `#b:2,a:1` and
  `#a:1,b:2` are one series. Duplicate keys: the last one wins.
- the sample rate (0 < r ≤ 1) scales counters (`value / r`) and histogram weights
  (`round(1 / r)` samples); gauges ignore it.
- `T<ts>` (DogStatsD 1.3) overrides the receive time.

`parse_line` raises `MalformedLine(reason)`; callers count it and carry on. `Aggregator` folds
samples into one accumulator per (name, kind, sorted tags, second): count, sum, min, max, the
last value and a mergeable log-bucket histogram (`pipeline.storage.sketch`) for histogram kinds. It
holds at most `max_entries` accumulators: samples of a new series-second beyond that are
dropped and counted, so memory stays bounded under floods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import schemas
from pipeline.core.errors import VitalsError
from pipeline.storage import sketch
from pipeline.storage.sketch import bucket_of

__all__ = [
    "KINDS",
    "MAX_NAME",
    "MAX_TAGS",
    "NAME_CHARS",
    "Aggregator",
    "MalformedLine",
    "Sample",
    "Tags",
    "parse_line",
    "split_lines",
]

#: Largest magnitude of one sample: the metric schema's bound on `value` (which keeps every
#: histogram bucket inside the sketch's Int16 keys, `sketch.MAX_VALUE`).
MAX_VALUE: float = schemas.load("metric")["properties"]["value"]["maximum"]

#: DogStatsD type → stored kind (`c` counter, `g` gauge, `h`/`ms`/`d` histograms).
KINDS = ("c", "g", "h", "ms", "d")
HISTOGRAM_KINDS = frozenset(("h", "ms", "d"))
MAX_NAME = 200
MAX_TAGS = 32
MAX_TAG_LEN = 200
#: Characters a metric name may hold (schemas/metric.json).
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/")

Tags = tuple[tuple[str, str], ...]


class MalformedLine(VitalsError, ValueError):
    """A line that is not DogStatsD; `str()` is the reason."""


@dataclass(frozen=True)
class Sample:
    name: str
    kind: str
    values: tuple[float, ...]
    rate: float
    tags: Tags
    ts: float | None = None


def split_lines(datagram: bytes) -> list[bytes]:
    """Non-empty lines of a datagram (`\\n` separated; a trailing `\\r` is dropped)."""
    return [ln.rstrip(b"\r") for ln in datagram.split(b"\n") if ln.strip()]


def _tags(raw: str, cache: dict[str, Tags] | None) -> Tags:
    if cache is not None:
        hit = cache.get(raw)
        if hit is not None:
            return hit
    pairs: dict[str, str] = {}
    for item in raw.split(","):
        if not item:
            continue
        k, _, v = item.partition(":")
        if not k:
            raise MalformedLine(f"tag {item!r} has an empty key")
        if len(k) > MAX_TAG_LEN or len(v) > MAX_TAG_LEN:
            raise MalformedLine(f"tag {item[:40]!r}... longer than {MAX_TAG_LEN} characters")
        pairs[k] = v
    if len(pairs) > MAX_TAGS:
        raise MalformedLine(f"{len(pairs)} tags; at most {MAX_TAGS}")
    tags = tuple(sorted(pairs.items()))
    if cache is not None:
        if len(cache) > 50_000:
            cache.clear()
        cache[raw] = tags
    return tags


def parse_line(line: bytes, tag_cache: dict[str, Tags] | None = None) -> Sample:
    try:
        text = line.decode()
    except UnicodeDecodeError:
        raise MalformedLine("not UTF-8") from None
    if text.startswith(("_e{", "_sc|")):
        raise MalformedLine("events and service checks are not supported")
    parts = text.split("|")
    if len(parts) < 2:
        raise MalformedLine("missing '|<type>'")
    name, sep, values_raw = parts[0].partition(":")
    if not sep or not values_raw:
        raise MalformedLine("missing ':<value>'")
    if not name or len(name) > MAX_NAME or not NAME_CHARS.issuperset(name):
        raise MalformedLine(f"metric name {name[:40]!r}: use 1-{MAX_NAME} of [A-Za-z0-9_.-/]")
    kind = parts[1]
    if kind not in KINDS:
        raise MalformedLine(f"type {kind[:10]!r}: allowed c, g, h, ms, d")
    try:
        values = tuple(float(v) for v in values_raw.split(":"))
    except ValueError:
        raise MalformedLine(f"value {values_raw[:40]!r} is not a number") from None
    if not all(math.isfinite(v) for v in values):
        raise MalformedLine("value is not finite")
    if not all(-MAX_VALUE <= v <= MAX_VALUE for v in values):
        raise MalformedLine(f"value outside [-{MAX_VALUE:g}, {MAX_VALUE:g}]")
    if len(values) > 1 and kind not in HISTOGRAM_KINDS:
        raise MalformedLine("several values in one line are allowed for h, ms, d only")
    rate = 1.0
    tags: Tags = ()
    ts: float | None = None
    for p in parts[2:]:
        if not p:
            continue
        head = p[0]
        if head == "@":
            try:
                rate = float(p[1:])
            except ValueError:
                raise MalformedLine(f"sample rate {p[:20]!r} is not a number") from None
            if not 0 < rate <= 1:
                raise MalformedLine(f"sample rate {rate} outside (0, 1]")
        elif head == "#":
            tags = _tags(p[1:], tag_cache)
        elif head == "T":
            try:
                ts = float(p[1:])
            except ValueError:
                raise MalformedLine(f"timestamp {p[:20]!r} is not a number") from None
        elif p.startswith(("c:", "e:", "card:")):
            continue  # container id, external data, cardinality hints: ignored
        else:
            raise MalformedLine(f"unknown field {p[:20]!r}")
    return Sample(name, kind, values, rate, tags, ts)


# Accumulator slots: count, sum, min, max, last, last_ms, hist (histogram kinds only)
_COUNT, _SUM, _MIN, _MAX, _LAST, _LAST_MS, _HIST = range(7)
_MAX_HEADS = 100_000

Ident = tuple[str, str, Tags]


class Aggregator:
    """Per (name, kind, tags, second) accumulators, bounded by `max_entries`.

    Hot path (`feed`): a line's "head" — its name and everything after the value — is parsed
    once and cached, so a repeated series costs two `find`s, a `float` and a dict update.
    Lines the cache cannot serve (packed values, `T` timestamps, errors) take `parse_line`.
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self.entries: dict[tuple[int, int], list[Any]] = {}
        self.dropped = 0
        self._ids: dict[Ident, int] = {}
        self._idents: list[Ident] = []
        self._heads: dict[tuple[bytes, bytes], tuple[int, str, float]] = {}
        self._tag_cache: dict[str, Tags] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def _id(self, ident: Ident) -> int:
        sid = self._ids.get(ident)
        if sid is None:
            sid = self._ids[ident] = len(self._idents)
            self._idents.append(ident)
        return sid

    def feed(self, line: bytes, now: float) -> None:
        """Fold one line in; raises MalformedLine. Drops (counted) when the buffer is full."""
        i = line.find(b":")
        j = line.find(b"|", i + 1)
        if i > 0 and j > 0:
            head = (line[:i], line[j:])
            meta = self._heads.get(head)
            if meta is not None:
                try:
                    v = float(line[i + 1:j])
                except ValueError:
                    meta = None
                else:
                    if -MAX_VALUE <= v <= MAX_VALUE:  # finite and storable
                        self._fold1(meta, v, now)
                        return
        sample = parse_line(line, self._tag_cache)
        sid = self._id((sample.name, sample.kind, sample.tags))
        if sample.ts is None and len(sample.values) == 1 and i > 0 and j > 0:
            if len(self._heads) >= _MAX_HEADS:
                self._heads.clear()
            self._heads[(line[:i], line[j:])] = (sid, sample.kind, sample.rate)
        self._fold(sid, sample.kind, sample.rate, sample.values,
                   sample.ts if sample.ts is not None else now)

    def add(self, s: Sample, now: float) -> bool:
        """Fold one parsed sample in; False (and counted in `dropped`) if the buffer is full."""
        before = self.dropped
        self._fold(self._id((s.name, s.kind, s.tags)), s.kind, s.rate, s.values,
                   s.ts if s.ts is not None else now)
        return self.dropped == before

    def _fold1(self, meta: tuple[int, str, float], v: float, t: float) -> None:
        """`_fold` of one value (the hot path, unrolled)."""
        sid, kind, rate = meta
        key = (sid, int(t))
        acc = self.entries.get(key)
        if acc is None:
            if len(self.entries) >= self.max_entries:
                self.dropped += 1
                return
            acc = self.entries[key] = [0.0, 0.0, math.inf, -math.inf, 0.0, 0,
                                       {} if kind in HISTOGRAM_KINDS else None]
        if kind == "c":
            acc[0] += 1
            acc[1] += v / rate
        else:
            w = 1 if rate == 1.0 or kind == "g" else max(1, round(1 / rate))
            acc[0] += w
            acc[1] += v * w
            hist = acc[6]
            if hist is not None:
                b = bucket_of(v)
                hist[b] = hist.get(b, 0) + w
        if v < acc[2]:
            acc[2] = v
        if v > acc[3]:
            acc[3] = v
        last_ms = int(t * 1000)
        if last_ms >= acc[5]:
            acc[4] = v
            acc[5] = last_ms

    def _fold(self, sid: int, kind: str, rate: float, values: tuple[float, ...],
              t: float) -> None:
        key = (sid, int(t))
        acc = self.entries.get(key)
        if acc is None:
            if len(self.entries) >= self.max_entries:
                self.dropped += len(values)
                return
            acc = self.entries[key] = [0.0, 0.0, math.inf, -math.inf, 0.0, 0,
                                       {} if kind in HISTOGRAM_KINDS else None]
        if kind == "c":
            for v in values:
                acc[_COUNT] += 1
                acc[_SUM] += v / rate
        else:
            weight = 1 if kind == "g" or rate == 1.0 else max(1, round(1 / rate))
            hist = acc[_HIST]
            for v in values:
                acc[_COUNT] += weight
                acc[_SUM] += v * weight
                if hist is not None:
                    b = sketch.bucket_of(v)
                    hist[b] = hist.get(b, 0) + weight
        for v in values:
            if v < acc[_MIN]:
                acc[_MIN] = v
            if v > acc[_MAX]:
                acc[_MAX] = v
        last_ms = int(t * 1000)
        if last_ms >= acc[_LAST_MS]:
            acc[_LAST] = values[-1]
            acc[_LAST_MS] = last_ms

    def drain(self, tenant: str) -> list[dict[str, Any]]:
        """The accumulated `metric` events (aggregated form, schemas/metric.json), one per
        series-second, stamped with the time of their last sample; empties the buffer."""
        entries, self.entries = self.entries, {}
        idents = self._idents
        out = []
        for (sid, _sec), acc in entries.items():
            name, kind, tags = idents[sid]
            e: dict[str, Any] = {
                "v": 1, "type": "metric", "ts": acc[_LAST_MS] / 1000,
                "tenant": tenant, "name": name, "kind": kind, "tags": dict(tags),
                "count": acc[_COUNT], "sum": acc[_SUM], "min": acc[_MIN], "max": acc[_MAX],
                "last": acc[_LAST],
            }
            if acc[_HIST] is not None:
                e["hist"] = {str(k): c for k, c in acc[_HIST].items()}
            out.append(e)
        if len(self._idents) > _MAX_HEADS:  # forget series ids now that nothing refers to them
            self._ids.clear()
            self._idents = []
            self._heads.clear()
        return out
