"""Query parameters of the GET routes, declared once: the same object reads a parameter and
renders its OpenAPI declaration, so `/openapi.json` lists exactly what the server accepts.

A route passes `openapi_extra=declare(...)` and its handler reads each parameter with the same
`QueryParam` after authentication, so the order of checks stays 401 → 403 → 400. Every read
fails with a 400 naming the parameter, the value given and the allowed values or range.

Rules every declaration follows: numbers are finite and bounded; timestamps are unix seconds in
[0, `MAX_UNIX_S`] (2100-01-01, inside ClickHouse `DateTime`, which ends in 2106, and far inside
`DateTime64(3)` millisecond math on Int64); an optional string given empty counts as absent;
a parameter that is not a list may be given once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.datastructures import QueryParams

from query_api.errors import bad_param
from query_api.params import get_choice, get_int, get_number, get_str

__all__ = ["MAX_UNIX_S", "QueryParam", "coopr_headers", "declare"]

MAX_UNIX_S = 4_102_444_800  # 2100-01-01T00:00:00Z

Kind = Literal["integer", "number", "string", "array"]


@dataclass(frozen=True)
class QueryParam:
    """One query parameter: its JSON Schema bounds are the ones `read_*` enforce."""

    name: str
    kind: Kind
    description: str
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] | None = None
    min_length: int = 0
    max_length: int = 256
    max_items: int = 1
    pattern: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # -- declaration --------------------------------------------------------------------

    def schema(self) -> dict[str, Any]:
        if self.kind in ("integer", "number"):
            out: dict[str, Any] = {"type": self.kind}
            if self.minimum is not None:
                out["minimum"] = self.minimum
            if self.maximum is not None:
                out["maximum"] = self.maximum
            return out
        item: dict[str, Any] = {"type": "string"}
        if self.enum is not None:
            item["enum"] = list(self.enum)
        else:
            if self.min_length:
                item["minLength"] = self.min_length
            item["maxLength"] = self.max_length
        if self.pattern is not None:
            item["pattern"] = self.pattern
        if self.kind == "array":
            return {"type": "array", "items": item, "maxItems": self.max_items}
        return item

    def openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "in": "query", "required": self.required,
                               "description": self.description,
                               "schema": {**self.schema(), **self.extra}}
        if self.kind == "array":
            out["style"], out["explode"] = "form", True
        return out

    # -- reads --------------------------------------------------------------------------

    def _one(self, q: QueryParams) -> dict[str, str]:
        values = q.getlist(self.name)
        if len(values) > 1:
            raise bad_param(self.name, values, f"{self.name} is given {len(values)} times; "
                            f"give it once")
        if not values or (values[0] == "" and not self.required and self.kind == "string"):
            return {}
        return {self.name: values[0]}

    def _bounds(self) -> tuple[Any, Any]:
        return self.minimum, self.maximum

    def read_int(self, q: QueryParams, default: int | None = None) -> int | None:
        assert self.kind == "integer"
        lo, hi = self._bounds()
        return get_int(self._one(q), self.name, required=self.required, default=default,
                       lo=lo, hi=hi)

    def read_number(self, q: QueryParams, default: float | None = None) -> float | None:
        assert self.kind == "number"
        lo, hi = self._bounds()
        return get_number(self._one(q), self.name, required=self.required, default=default,
                          lo=lo, hi=hi)

    def read_str(self, q: QueryParams, default: str | None = None) -> str | None:
        assert self.kind == "string"
        if self.enum is not None:
            return get_choice(self._one(q), self.name, self.enum, required=self.required,
                              default=default)
        return get_str(self._one(q), self.name, required=self.required, default=default,
                       max_len=self.max_length, min_len=self.min_length)

    def read_list(self, q: QueryParams) -> list[str]:
        """Every value given (repeat the parameter); each within the length bounds."""
        assert self.kind == "array"
        values = q.getlist(self.name)
        if len(values) > self.max_items:
            raise bad_param(self.name, values, f"{self.name} is given {len(values)} times; "
                            f"at most {self.max_items}")
        for v in values:
            get_str({self.name: v}, self.name, max_len=self.max_length,
                    min_len=self.min_length)
        return values


def declare(*params: QueryParam, headers: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """`openapi_extra` for a route: its query parameters (and header parameters)."""
    return {"parameters": [p.openapi() for p in params] + list(headers)}


def coopr_headers() -> list[dict[str, Any]]:
    """The Coopr-style credentials (sent together, instead of `Authorization: Bearer`)."""
    text = {"Coopr-UserID": "user id (Coopr-style calls send all three headers)",
            "Coopr-ApiKey": "API key",
            "Coopr-TenantID": "tenant of the API key"}
    return [{"name": name, "in": "header", "required": False, "description": desc,
             "schema": {"type": "string"}} for name, desc in text.items()]
