"""An analyst's query that names its own output format: `SELECT … FORMAT Vertical`.

`vitals sql` and the `/sql` route choose the output format themselves (their `format`), and
ClickHouse refuses a query with two FORMAT clauses as a syntax error. `trailing_format` splits
the clause off the end of the query so that the caller can use it as the format instead. Pure.
"""

from __future__ import annotations

import re

__all__ = ["trailing_format"]

# `FORMAT <name>` as the query's last clause, an optional `;` after it. A FORMAT word inside a
# string literal never matches: the literal's closing quote would end the query instead.
_TRAILING = re.compile(r"\s+FORMAT\s+([A-Za-z][A-Za-z0-9_]*)\s*;?\s*\Z", re.IGNORECASE)


def trailing_format(query: str) -> tuple[str, str | None]:
    """(the query without its trailing FORMAT clause, the format it named), or (the query, None)
    when it names none."""
    m = _TRAILING.search(query)
    if m is None:
        return query, None
    return query[:m.start()], m.group(1)
