"""The part of clickhouse-connect's client that Vitals uses, as a protocol.

`ClickHouseStore` (pipeline/storage/clickhouse.py) is the one module that imports
clickhouse-connect: it creates the clients and translates the driver's exceptions. It holds
them as `ClickHouseClient`, so every call Vitals makes is checked against this surface, and
mypy checks the driver's `Client` against it where `get_client` hands one over (no cast:
clickhouse-connect ships its types). A call outside this surface is a type error here first,
which keeps the embedded engine (chdb) and a server on the same few calls.

`tests/unit/test_layout_rules.py` holds the import of clickhouse-connect (and of chdb, which
only clickhouse-connect loads, through the `chdb://` DSN) to that module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["ClickHouseClient", "QueryResult"]


class QueryResult(Protocol):
    """What Vitals reads of a query's result: its rows, as tuples or lists of column values."""

    @property
    def result_rows(self) -> Sequence[Sequence[Any]]: ...


class ClickHouseClient(Protocol):
    """A synchronous clickhouse-connect client (`chdb://` or `http(s)://`), confined to the
    thread that created it. `database` is the default for unqualified table names."""

    database: str | None

    def query(self, query: str, parameters: dict[str, Any] | None = None,
              settings: dict[str, Any] | None = None) -> QueryResult: ...

    def raw_query(self, query: str, parameters: dict[str, Any] | None = None,
                  settings: dict[str, Any] | None = None, fmt: str | None = None) -> bytes: ...

    def command(self, cmd: str, parameters: dict[str, Any] | None = None) -> object: ...

    def insert(self, table: str, data: Sequence[Sequence[Any]], column_names: Sequence[str],
               *, column_oriented: bool, settings: dict[str, Any] | None = None) -> object: ...

    def raw_insert(self, table: str, column_names: Sequence[str], insert_block: bytes,
                   settings: dict[str, Any] | None = None, fmt: str | None = None) -> object: ...
