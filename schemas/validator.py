"""Compile the JSON Schema files in this package into fast validators.

The schema files are the single source of truth; this module understands the subset they use
(`type`, `enum`, `minimum`, `maximum`, `minLength`, `maxLength`, `required`, `properties`,
`additionalProperties`, `default`) and refuses any other keyword at compile time, so a schema
edit can never be silently half-enforced.

A compiled validator takes a decoded JSON object and returns a new dict holding every declared
property (defaults filled in) and nothing else, or raises `SchemaViolation` naming the field.
Booleans are never accepted as numbers, and floats with a fractional part never as integers.

Why there are two validation paths, this one and the msgspec structs of `schemas.fast`
(measured: `python -m bench.validators`, figures and reading in bench/results.md, "Validation
paths"). Both are compiled from the same schema files; these validators are the reference: they
decide every event alone and name its reason, which becomes the dead-letter reason, and they
accept what the schemas accept (an integral float for an integer, normalised). The msgspec path
judges a whole envelope in C and says only "not all of it": the worker (`pipeline.ingest.decode`)
and the producer SDK (`check_encoded`) try it first and fall back here for a message it
declines. One path does not serve:
- these validators alone cost 2.5× (heartbeats, jobs) to 5.3× (requests) the worker's decoding
  CPU on valid envelopes, 1.3–3× the SDK's per checked event;
- msgspec alone would change dead letters: first error of an envelope only (a bad event must be
  dead-lettered alone), its own reason texts, integral floats refused, and no way to express
  the metrics and task-events schemas (`object` properties, `refine` checks).
The cost of two paths falls on invalid messages only (10–25 % slower than this path alone).
`tests/unit/schemas/test_fast_decode.py` holds the two to the same decisions over thousands of
mutated envelopes: a change to one path that the other does not follow fails there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from pipeline.core.errors import VitalsError

__all__ = ["SchemaViolation", "Validator", "compile_schema", "kind_of"]

_ANNOTATIONS = {"$schema", "$id", "title", "description", "default", "examples"}
_SUPPORTED = _ANNOTATIONS | {
    "type", "enum", "minimum", "maximum", "minLength", "maxLength",
    "required", "properties", "additionalProperties",
}

Check = Callable[[str, Any], Any]
Validator = Callable[[Any], dict[str, Any]]


class SchemaViolation(VitalsError, ValueError):
    """The value breaks the schema; `str()` is a reason fit for a dead-letter record."""


#: The JSON Schema types that are one Python type exactly (a bool is no integer, an int no float).
_EXACT_TYPES: dict[str, type] = {"string": str, "boolean": bool, "object": dict, "array": list,
                                 "null": type(None)}


#: (keyword, the failing comparison, the reason) of the bounds on a number and on a length.
_VALUE_BOUNDS = (("minimum", "<", "is below the minimum"), ("maximum", ">", "is above the maximum"))
_LENGTH_BOUNDS = (("minLength", "<", "shorter than"), ("maxLength", ">", "longer than"))


def _type_check(kind: str) -> Check:
    if kind == "integer":
        def check_int(name: str, v: Any) -> Any:
            if type(v) is int:
                return v
            if type(v) is float and v.is_integer() and math.isfinite(v):
                return int(v)
            raise SchemaViolation(f"{name}: expected integer, got {kind_of(v)}")
        return check_int
    if kind == "number":
        def check_num(name: str, v: Any) -> Any:
            t = type(v)
            if t is int or (t is float and math.isfinite(v)):
                return v
            raise SchemaViolation(f"{name}: expected number, got {kind_of(v)}")
        return check_num
    exact = _EXACT_TYPES.get(kind)
    if exact is not None:
        def check_exact(name: str, v: Any) -> Any:
            if type(v) is exact:
                return v
            raise SchemaViolation(f"{name}: expected {kind}, got {kind_of(v)}")
        return check_exact
    raise ValueError(f"unsupported JSON Schema type {kind!r}")


def kind_of(v: Any) -> str:
    """The JSON type of a decoded value, as a violation names it."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number" if math.isfinite(v) else "non-finite number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def compile_schema(schema: dict[str, Any]) -> Validator:
    """Build a validator for an object schema (see the module docstring for the contract).

    The whole schema compiles into one generated function that checks every property inline
    (no call per field), starting from a copy of the defaults updated with the event. That
    keeps strict validation to a couple of microseconds per event.
    """
    unknown = set(schema) - _SUPPORTED
    if unknown:
        raise ValueError(f"unsupported JSON Schema keywords {sorted(unknown)}")
    if schema.get("type") != "object":
        raise ValueError("compile_schema takes an object schema")
    props: dict[str, Any] = schema.get("properties", {})
    required = tuple(schema.get("required", ()))
    req_set = frozenset(required)
    allowed = frozenset(props)
    closed = schema.get("additionalProperties", True) is False
    env: dict[str, Any] = {
        "_V": SchemaViolation, "_kind": kind_of, "_isfinite": math.isfinite,
        "_req_set": req_set, "_required": required, "_allowed": allowed,
        "_defaults": {n: spec["default"] for n, spec in props.items() if "default" in spec},
    }
    lines = [
        "def validate(obj):",
        "    if type(obj) is not dict:",
        "        raise _V(f'event: expected object, got {_kind(obj)}')",
        "    keys = obj.keys()",
        "    if not _req_set <= keys:",
        "        missing = [n for n in _required if n not in keys]",
        "        raise _V(f'{missing[0]}: required field is missing')",
    ]
    if closed:
        lines += [
            "    if not keys <= _allowed:",
            "        extra = ', '.join(sorted(set(keys) - _allowed))",
            "        raise _V(f'unknown field(s) {extra}')",
            "    out = _defaults.copy()",
            "    out.update(obj)",
        ]
    else:
        lines += [
            "    out = _defaults.copy()",
            "    for k in _allowed & keys:",
            "        out[k] = obj[k]",
        ]
    # Every declared property is checked inline (one function, no per-field calls): present
    # values and defaults alike; optional properties without a default only when present.
    for i, (name, spec) in enumerate(props.items()):
        var = f"v{i}"
        body = _property_code(name, spec, var, env, i)
        if "default" in spec or name in req_set:
            lines.append(f"    {var} = out[{name!r}]")
            lines += [f"    {b}" for b in body]
            if _normalises(spec):
                lines.append(f"    out[{name!r}] = {var}")
        else:
            lines.append(f"    if {name!r} in out:")
            lines.append(f"        {var} = out[{name!r}]")
            lines += [f"        {b}" for b in body]
            if _normalises(spec):
                lines.append(f"        out[{name!r}] = {var}")
    lines.append("    return out")
    title = schema.get("title", "object")
    exec(compile("\n".join(lines) + "\n", f"<schema {title}>", "exec"), env)
    validate: Validator = env["validate"]
    return validate


def _normalises(spec: dict[str, Any]) -> bool:
    """Whether the property's check may rewrite the value (integral floats become ints)."""
    kinds = spec.get("type")
    return kinds == "integer" or isinstance(kinds, list)


def _property_code(name: str, spec: dict[str, Any], var: str, env: dict[str, Any],
                   i: int) -> list[str]:
    """Source lines checking (and normalising) local `var` against one property schema."""
    out: list[str] = []
    kinds = spec.get("type")
    if isinstance(kinds, list):
        env[f"alts{i}"] = [_type_check(k) for k in kinds]
        joined = " or ".join(kinds)
        out += [
            f"for _alt in alts{i}:",
            "    try:",
            f"        {var} = _alt({name!r}, {var})",
            "        break",
            "    except _V:",
            "        pass",
            "else:",
            f"    raise _V(f'{name}: expected {joined}, got {{_kind({var})}}')",
        ]
    elif kinds == "integer":
        out += [
            f"if type({var}) is not int:",
            f"    if type({var}) is float and _isfinite({var}) and {var}.is_integer():",
            f"        {var} = int({var})",
            "    else:",
            f"        raise _V(f'{name}: expected integer, got {{_kind({var})}}')",
        ]
    elif kinds == "number":
        out += [
            f"if type({var}) is not int and (type({var}) is not float or not _isfinite({var})):",
            f"    raise _V(f'{name}: expected number, got {{_kind({var})}}')",
        ]
    elif kinds in ("string", "boolean", "object", "array"):
        py = {"string": "str", "boolean": "bool", "object": "dict", "array": "list"}[kinds]
        out += [
            f"if type({var}) is not {py}:",
            f"    raise _V(f'{name}: expected {kinds}, got {{_kind({var})}}')",
        ]
    elif kinds == "null":
        out += [f"if {var} is not None:",
                f"    raise _V(f'{name}: expected null, got {{_kind({var})}}')"]
    elif kinds is not None:
        raise ValueError(f"{name}: unsupported JSON Schema type {kinds!r}")
    if "enum" in spec:
        allowed = list(spec["enum"])
        env[f"enum{i}"] = frozenset((type(a), a) for a in allowed)
        shown = ", ".join(repr(a) for a in allowed).replace("'", "\\'")
        out += [
            f"if (type({var}), {var}) not in enum{i}:",
            f"    raise _V(f'{name}: {{{var}!r}} is not one of {shown}')",
        ]
    for key, op, reason in _VALUE_BOUNDS:
        if key in spec:
            out += [f"if {var} {op} {spec[key]!r}:",
                    f"    raise _V(f'{name}: {{{var}!r}} {reason} {spec[key]}')"]
    for key, op, reason in _LENGTH_BOUNDS:
        if key in spec:
            out += [f"if len({var}) {op} {spec[key]}:",
                    f"    raise _V('{name}: {reason} {spec[key]} characters')"]
    return out or ["pass"]

