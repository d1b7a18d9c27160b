"""ClickHouse Native-format blocks built column by column from typed buffers. Pure: no I/O.

A hot table's rows are appended straight into per-column buffers in their wire encoding:
numbers into `array.array` (machine little-endian, as Native wants), booleans into a bytearray
of 0/1 bytes, strings into a bytearray of LEB128-length-prefixed UTF-8. A message's values are
converted while they are fresh, so the Python objects are touched once, and `block()` is one
concatenation. The block is inserted with `FORMAT Native` (see `pipeline.storage.clickhouse`).

A `LowCardinality(String)` column is sent as `String`; ClickHouse converts it on insert
(`input_format_native_allow_types_conversion`, on by default).

Rows are tracked by count: `mark()` and `truncate()` undo a half-appended message.
`tests/integration/storage/test_native_block.py` holds the encoding to what ClickHouse reads back.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["NativeBlock", "NativeColumns", "StringEncoder", "leb128", "string_bytes"]

if sys.byteorder != "little":  # pragma: no cover - every platform Vitals targets is little-endian
    raise ImportError("pipeline.storage.native writes machine-order arrays and needs a "
                      "little-endian host")

#: array typecodes of the fixed-width types (sizes checked at import below).
_ARRAY_CODES = {"UInt8": "B", "UInt16": "H", "UInt32": "I", "UInt64": "Q", "Int64": "q",
                "Float64": "d"}
_SIZES = {"B": 1, "H": 2, "I": 4, "Q": 8, "q": 8, "d": 8}
for _code, _size in _SIZES.items():
    if array(_code).itemsize != _size:  # pragma: no cover
        raise ImportError(f"array typecode {_code!r} is not {_size} bytes on this platform")


def leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def string_bytes(value: str) -> bytes:
    """One Native `String` value: LEB128 byte length, then UTF-8."""
    b = value.encode()
    return leb128(len(b)) + b


class StringEncoder:
    """`string_bytes` memoised for a column of few distinct values (tenants, error kinds).
    The memo is cleared when it reaches `limit` entries, so a flood of distinct values costs
    speed, never memory."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self.memo: dict[str, bytes] = {}

    def __call__(self, value: str) -> bytes:
        b = self.memo.get(value)
        if b is None:
            if len(self.memo) >= self.limit:
                self.memo.clear()
            b = self.memo[value] = string_bytes(value)
        return b

    def many(self, values: Sequence[str]) -> bytes:
        """The encoding of `values` in order; one lookup when they are all the same."""
        if not values:
            return b""
        first = values[0]
        if values.count(first) == len(values):
            return self(first) * len(values)
        try:
            return b"".join(map(self.memo.__getitem__, values))
        except KeyError:
            return b"".join(map(self, values))


def _wire_type(ch_type: str) -> str:
    return "String" if ch_type == "LowCardinality(String)" else ch_type


def _new_buffer(ch_type: str) -> array[Any] | bytearray:
    if ch_type in ("String", "Bool"):
        return bytearray()
    if ch_type.startswith("DateTime64("):
        return array("q")  # ticks: milliseconds for DateTime64(3, ...)
    code = _ARRAY_CODES.get(ch_type)
    if code is None:
        raise ValueError(f"no Native buffer for ClickHouse type {ch_type!r}; supported: "
                         f"String, LowCardinality(String), Bool, DateTime64, "
                         f"{', '.join(_ARRAY_CODES)}")
    return array(code)


@dataclass(frozen=True)
class NativeBlock:
    """An encoded Native block: `rows` rows of the columns it was built for."""

    data: bytes
    rows: int

    def __len__(self) -> int:
        return self.rows


class NativeColumns:
    """Typed column buffers of one table. Append whole columns of one message at a time
    through `buffers` (in `names` order) and count them with `added`; `block()` encodes."""

    def __init__(self, spec: Sequence[tuple[str, str]]) -> None:
        self.names = tuple(name for name, _ in spec)
        self.types = tuple(_wire_type(t) for _, t in spec)
        self.buffers = [_new_buffer(t) for t in self.types]
        self.rows = 0
        self._header = [string_bytes(n) + string_bytes(t) for n, t in zip(self.names,
                                                                         self.types, strict=True)]

    def added(self, n: int) -> None:
        self.rows += n

    def mark(self) -> tuple[int, list[int]]:
        return self.rows, [len(b) for b in self.buffers]

    def truncate(self, mark: tuple[int, list[int]]) -> None:
        self.rows, lengths = mark[0], mark[1]
        for buf, n in zip(self.buffers, lengths, strict=True):
            del buf[n:]

    def block(self) -> NativeBlock:
        """The Native block of every row appended so far."""
        out = bytearray(leb128(len(self.names)) + leb128(self.rows))
        for header, buf in zip(self._header, self.buffers, strict=True):
            out += header
            out += buf
        return NativeBlock(bytes(out), self.rows)

    def columns(self) -> list[list[Any]]:
        """The buffered values back as Python lists (tests and diagnostics)."""
        out: list[list[Any]] = []
        for t, buf in zip(self.types, self.buffers, strict=True):
            if t == "String":
                out.append(list(_read_strings(bytes(buf))))
            elif t == "Bool":
                out.append([b != 0 for b in buf])
            else:
                out.append(list(buf))
        return out


def _read_strings(data: bytes) -> Iterable[str]:
    pos = 0
    while pos < len(data):
        n = shift = 0
        while True:
            b = data[pos]
            pos += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        yield data[pos:pos + n].decode()
        pos += n
