"""Find the messages of a batch that storage refuses, by bisection. No I/O of its own.

`refused_leaves(items, attempt, first)` splits a refused batch in halves and retries each half
with `attempt` until every refused half is a single item: those items are returned with the
refusal each got, and every other item was stored by some `attempt`. An `attempt` raises
`StorageRefused` for a refusal; any other exception (storage unavailable) propagates, and the
caller retries the whole batch later (rows are keyed by source position, so halves stored
before are absorbed).

Cost: with k refused items among n, about 2·k·log2(n) attempts; one poison message in a batch of
1,000 costs ~20 inserts, once.

Whether the refusal is the data's or the store's is decided by the caller (`is_store_wide`):
when every single item is refused, the cause is the store (a dropped table, permissions, a
constraint nothing passes), and the topic is held rather than dead-lettered whole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from pipeline.core.errors import StorageRefused

__all__ = ["STORE_WIDE_CODES", "is_store_wide", "refused_leaves"]

T = TypeVar("T")

#: ClickHouse error codes that no row can cause: the table, column, database or grant is
#: missing. THERE_IS_NO_COLUMN, NO_SUCH_COLUMN_IN_TABLE, UNKNOWN_IDENTIFIER, UNKNOWN_TABLE,
#: UNKNOWN_DATABASE, READONLY, UNKNOWN_USER, WRONG_PASSWORD, DATABASE_ACCESS_DENIED,
#: ACCESS_DENIED, AUTHENTICATION_FAILED, NOT_FOUND_COLUMN_IN_BLOCK.
STORE_WIDE_CODES = frozenset({8, 16, 47, 60, 81, 164, 192, 193, 291, 497, 516, 10})


async def refused_leaves(items: Sequence[T], attempt: Callable[[Sequence[T]], Awaitable[None]],
                         first: StorageRefused) -> list[tuple[T, StorageRefused]]:
    """The items that `attempt` refuses alone, given that `attempt(items)` raised `first`."""
    out: list[tuple[T, StorageRefused]] = []

    async def split(part: Sequence[T], refusal: StorageRefused) -> None:
        if len(part) == 1:
            out.append((part[0], refusal))
            return
        mid = len(part) // 2
        for half in (part[:mid], part[mid:]):
            try:
                await attempt(half)
            except StorageRefused as exc:
                await split(half, exc)

    await split(items, first)
    return out


def is_store_wide(total: int, refused: Sequence[tuple[object, StorageRefused]]) -> bool:
    """Whether a refusal is the store's, not the data's: any refusal with a code that names the
    schema or a grant (`STORE_WIDE_CODES`: no data causes those, even when the store was mended
    half-way through the bisection), or every one of several items refused alone (no
    data-dependent cause hits every message of a validated batch)."""
    if any(exc.code in STORE_WIDE_CODES for _, exc in refused):
        return True
    return total > 1 and len(refused) == total
