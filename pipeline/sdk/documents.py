"""Read-only views over the API's JSON documents, with the attribute names Python code expects.
Pure: no I/O.

`Doc` wraps a JSON object. `doc.total_executions` reads the key `total_executions`, else its
camelCase form `totalExecutions` (the API's spelling), else — for a name that is a Python keyword
written with a trailing underscore — the keyword (`event.from_` reads `from`). A field the
document does not have reads as None, never raises: the reference's SDK examples read some
fields Vitals does not serve (docs/read-client.md lists them). `doc["key"]` reads a key as it is.
Nested objects and lists come back as `Doc` and `DocList`; `to_dict()` gives the plain JSON back.

Timeseries convert to pandas (an optional dependency: `pip install vitals[pandas]`):
`DocList.to_pandas()` makes one row per item; `Doc.to_pandas()` makes one column per list-valued
field of equal length (the shape of the Vast timeseries answers). Columns named `timestamp`
holding epoch seconds or ISO strings become `datetime64` (UTC).
"""

from __future__ import annotations

import keyword
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

__all__ = ["Doc", "DocList", "camel", "wrap"]


def camel(name: str) -> str:
    """`total_executions` → `totalExecutions`."""
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def wrap(value: Any) -> Any:
    if type(value) is dict:
        return Doc(value)
    if type(value) is list:
        return DocList(value)
    return value


def _to_frame(rows: Any) -> Any:
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("to_pandas() needs pandas: pip install 'vitals[pandas]'") from exc
    frame = pd.DataFrame(rows)
    if "timestamp" in frame.columns and len(frame):
        col = frame["timestamp"]
        if col.dtype.kind in "if":
            frame["timestamp"] = pd.to_datetime(col, unit="s", utc=True)
        elif col.dtype == object:
            frame["timestamp"] = pd.to_datetime(col, utc=True)
    return frame


class Doc(Mapping[str, Any]):
    """A JSON object, read by attribute (snake_case or the API's camelCase) or by key."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def _key(self, name: str) -> str | None:
        data = self._data
        if name in data:
            return name
        if name.endswith("_") and keyword.iskeyword(name[:-1]) and name[:-1] in data:
            return name[:-1]
        alt = camel(name)
        return alt if alt in data else None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        key = self._key(name)
        return None if key is None else wrap(self._data[key])

    def __getitem__(self, key: str) -> Any:
        return wrap(self._data[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Doc({dict(self._data)!r})"

    def to_dict(self) -> dict[str, Any]:
        return dict(self._data)

    def to_pandas(self) -> Any:
        """One column per list-valued field (all of the longest length)."""
        lists = {k: v for k, v in self._data.items() if type(v) is list}
        if not lists:
            return _to_frame([self._data])
        n = max(len(v) for v in lists.values())
        return _to_frame({k: v for k, v in lists.items() if len(v) == n})


class DocList(Sequence[Any]):
    """A JSON array; objects in it read as `Doc`."""

    __slots__ = ("_items",)

    def __init__(self, items: list[Any]) -> None:
        self._items = items

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> DocList: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return DocList(self._items[index])
        return wrap(self._items[index])

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Any]:
        return (wrap(v) for v in self._items)

    def __repr__(self) -> str:
        return f"DocList({self._items!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DocList):
            return self._items == other._items
        if isinstance(other, list):
            return self._items == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # a mutable sequence's view: unhashable, as list

    def to_list(self) -> list[Any]:
        return list(self._items)

    def to_pandas(self) -> Any:
        """One row per item (objects: one column per field)."""
        return _to_frame(self._items)
