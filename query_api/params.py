"""Typed reads of request parameters, each failure a 400 naming the parameter. Pure."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import orjson

from query_api.errors import ApiError, bad_param

__all__ = ["get_choice", "get_int", "get_number", "get_str", "json_object", "parse_json_body"]

N = TypeVar("N", int, float)

def parse_json_body(raw: bytes, *, max_bytes: int = 1 << 20) -> dict[str, Any]:
    if len(raw) > max_bytes:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"request body exceeds {max_bytes} bytes",
                       {"limit": max_bytes})
    if not raw.strip():
        return {}
    return json_object(raw)


def json_object(raw: bytes, must: str = "body must be a JSON object") -> dict[str, Any]:
    """The JSON object `raw`, or a 400 on the body: not JSON, or `must` when not an object."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_param("body", None, f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise bad_param("body", None, must)
    return doc


def _given(body: Mapping[str, Any], name: str, required: bool,
           allowed: Sequence[str] | None = None) -> Any:
    """The value of `name` in `body`; None when absent or null, a 400 then if `required`."""
    v = body.get(name)
    if v is None and required:
        raise bad_param(name, None, f"{name} is required", allowed)
    return v


def get_int(body: Mapping[str, Any], name: str, *, required: bool = False,
            default: int | None = None, lo: int | None = None,
            hi: int | None = None) -> int | None:
    """An integer (a JSON integer, an integral float or a decimal string), within [lo, hi]
    when given."""
    return _bounded(body, name, required, default, lo, hi, _as_int)


def get_number(body: Mapping[str, Any], name: str, *, required: bool = False,
               default: float | None = None, lo: float | None = None,
               hi: float | None = None) -> float | None:
    """A finite number (a JSON number or a decimal string), within [lo, hi] when given."""
    return _bounded(body, name, required, default, lo, hi, _as_number)


def _bounded(body: Mapping[str, Any], name: str, required: bool, default: N | None,
             lo: float | None, hi: float | None,
             read: Callable[[str, Any, float | None, float | None], N]) -> N | None:
    """`default` when `name` is absent or null (a 400 then if `required`), else the value as
    `read` reads and bounds it."""
    v = _given(body, name, required)
    return default if v is None else read(name, v, lo, hi)


def _as_int(name: str, v: Any, lo: float | None, hi: float | None) -> int:
    if isinstance(v, bool):
        raise bad_param(name, v, f"{name} must be an integer")
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        v = int(v)
    if isinstance(v, str):
        digits = v.strip().lstrip("-")
        if digits.isascii() and digits.isdigit():
            if len(digits) > 40:  # out of any range here (and int() refuses > 4300 digits)
                raise _out_of_range(name, v[:50], lo, hi)
            v = int(v)
    if not isinstance(v, int):
        raise bad_param(name, v, f"{name} must be an integer", allowed_range=_range(lo, hi))
    _check_range(name, v, lo, hi)
    return v


def _as_number(name: str, v: Any, lo: float | None, hi: float | None) -> float:
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            raise bad_param(name, v, f"{name} must be a number",
                            allowed_range=_range(lo, hi)) from None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise bad_param(name, v, f"{name} must be a finite number",
                        allowed_range=_range(lo, hi))
    _check_range(name, v, lo, hi)
    return float(v)


def _range(lo: float | None, hi: float | None) -> tuple[float | None, float | None] | None:
    return None if lo is None and hi is None else (lo, hi)


def _check_range(name: str, v: float, lo: float | None, hi: float | None) -> None:
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise _out_of_range(name, v, lo, hi)


def _out_of_range(name: str, v: Any, lo: float | None, hi: float | None) -> ApiError:
    bounds = (f"between {lo} and {hi}" if lo is not None and hi is not None
              else f">= {lo}" if lo is not None else f"<= {hi}" if hi is not None
              else "a 64-bit integer")
    return bad_param(name, v, f"{name} must be {bounds}", allowed_range=_range(lo, hi))




def get_str(body: Mapping[str, Any], name: str, *, required: bool = False,
            default: str | None = None, max_len: int = 256, min_len: int = 0) -> str | None:
    v = _given(body, name, required)
    if v is None:
        return default
    if not isinstance(v, str):
        raise bad_param(name, v, f"{name} must be a string")
    if len(v) > max_len:
        raise bad_param(name, v[:50], f"{name} is longer than {max_len} characters")
    if len(v) < min_len:
        raise bad_param(name, v, f"{name} must have at least {min_len} character"
                        f"{'s' if min_len > 1 else ''}")
    return v


def get_choice(body: Mapping[str, Any], name: str, allowed: Sequence[str], *,
               required: bool = False, default: str | None = None) -> str | None:
    v = _given(body, name, required, allowed)
    if v is None:
        return default
    if not isinstance(v, str) or v not in allowed:
        raise bad_param(name, v, f"{name} must be one of {', '.join(allowed)}", allowed)
    return v
