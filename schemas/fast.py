"""msgspec types generated from the JSON Schema files: the fast path of envelope decoding.

`envelope_decoder(schemas)` builds one msgspec JSON decoder for "an event object, or an array of
event objects" over the object schemas of one topic kind. msgspec parses and validates a whole
envelope in C: measured 2.5× (to dicts) to 5.3× (the requests worker's columnar structs) the
events per CPU second of `orjson.loads` plus the Python validators of `schemas.validator`
(`python -m bench.validators`; why both paths exist: `schemas.validator`'s docstring).

Contract: the fast path accepts a subset of what the Python validators accept and produces the
same normalised events (`to_dicts`). msgspec is stricter in places (an integral float such as
`200.0` is not an integer for it; the Python validator converts it), and it reports only the
first error of a message. So decoding is all-or-nothing: any failure sends the whole message
down the Python path, which names the reason of every bad event.
`tests/unit/schemas/test_fast_decode.py`
holds the two paths to the same results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union

import msgspec

__all__ = ["FastDecoder", "envelope_decoder"]

_ANNOTATIONS = {"$schema", "$id", "title", "description", "default", "examples"}


_INT64 = (-(2**63), 2**63 - 1)


def _field_type(name: str, spec: dict[str, Any], post: list[tuple[str, Any, Any]]) -> Any:
    """The msgspec type of one property. Integer bounds outside int64 (which msgspec cannot
    express) are appended to `post` as (name, minimum, maximum) checks done after decoding."""
    kind = spec.get("type")
    meta: dict[str, Any] = {}
    lo, hi = spec.get("minimum"), spec.get("maximum")
    if kind == "integer" and ((lo is not None and not _INT64[0] <= lo <= _INT64[1])
                              or (hi is not None and not _INT64[0] <= hi <= _INT64[1])):
        post.append((name, lo, hi))
        lo = hi = None
    if lo is not None:
        meta["ge"] = lo
    if hi is not None:
        meta["le"] = hi
    if "minLength" in spec:
        meta["min_length"] = spec["minLength"]
    if "maxLength" in spec:
        meta["max_length"] = spec["maxLength"]
    if "enum" in spec:
        values = tuple(spec["enum"])
        if kind == "string" and all(type(v) is str for v in values):
            base: Any = Literal[values]
        elif kind == "integer" and all(type(v) is int for v in values):
            base = Literal[values]
        else:
            raise ValueError(f"{name}: enum of {kind!r} has no fast-path type")
        return base if not meta else Annotated[base, msgspec.Meta(**meta)]
    py = {"integer": int, "number": float, "string": str, "boolean": bool}.get(kind or "")
    if py is None:
        raise ValueError(f"{name}: JSON Schema type {kind!r} has no fast-path type")
    return Annotated[py, msgspec.Meta(**meta)] if meta else py


class _Kind:
    """One event type: its msgspec struct and how to turn a decoded struct into the event dict."""

    def __init__(self, schema: dict[str, Any], *, tagged: bool) -> None:
        props: dict[str, Any] = schema["properties"]
        required = set(schema.get("required", ()))
        type_values = props.get("type", {}).get("enum", [])
        if len(type_values) != 1:
            raise ValueError("an event schema needs a `type` property with exactly one value")
        self.tag: str = type_values[0]
        self.optional: list[str] = []
        self.post: list[tuple[str, Any, Any]] = []
        fields: list[tuple[Any, ...]] = []
        for name, spec in props.items():
            if name == "type" and tagged:
                continue  # the union's tag
            unknown = set(spec) - _ANNOTATIONS - {"type", "enum", "minimum", "maximum",
                                                  "minLength", "maxLength"}
            if unknown:
                raise ValueError(f"{name}: keywords {sorted(unknown)} have no fast path")
            ftype = _field_type(name, spec, self.post)
            if name in required:
                fields.append((name, ftype))
            elif "default" in spec:
                fields.append((name, ftype, spec["default"]))
            else:
                fields.append((name, ftype, msgspec.UNSET))
                self.optional.append(name)
        # gc=False: the fields are scalars (`_field_type`), so an event struct can hold no
        # reference cycle and its type need not be a collected one. As a collected type, each
        # of a worker batch's ~100,000 structs counted towards the young generation's
        # threshold and set off collections while the batch was decoded (decode 1.13-1.49 ->
        # 1.02-1.11 µs per event in batches of 200 envelopes, bench/results.md 2026-12-03).
        options: dict[str, Any] = {
            "kw_only": True,
            "gc": False,
            "forbid_unknown_fields": schema.get("additionalProperties", True) is False,
        }
        if tagged:
            options.update(tag_field="type", tag=self.tag)
        self.struct: type[msgspec.Struct] = msgspec.defstruct(
            f"Event_{self.tag}", fields, **options)
        self.tagged = tagged

    def to_dict(self, obj: Any) -> dict[str, Any]:
        d = msgspec.structs.asdict(obj)
        for name in self.optional:
            if d[name] is msgspec.UNSET:
                del d[name]
        if self.tagged:
            d["type"] = self.tag
        for name, lo, hi in self.post:
            v = d.get(name, msgspec.UNSET)
            if v is not msgspec.UNSET and ((lo is not None and v < lo)
                                           or (hi is not None and v > hi)):
                raise msgspec.ValidationError(f"{name}: out of range")
        return d


class FastDecoder:
    """Decodes an envelope of one topic kind; raises `msgspec.ValidationError` (or
    `msgspec.DecodeError`) on anything the fast path does not accept."""

    def __init__(self, event_schemas: Sequence[dict[str, Any]]) -> None:
        tagged = len(event_schemas) > 1
        self._kinds = [_Kind(s, tagged=tagged) for s in event_schemas]
        self._by_struct = {k.struct: k for k in self._kinds}
        self._post = any(k.post for k in self._kinds)
        one: Any = (self._kinds[0].struct if not tagged
                    else Union[tuple(k.struct for k in self._kinds)])  # noqa: UP007
        self._decoder = msgspec.json.Decoder(list[one] | one)
        self._one = msgspec.json.Decoder(one)

    @property
    def columnar(self) -> bool:
        """True when `structs` may be used: one event type, no checks after decoding."""
        return len(self._kinds) == 1 and not self._kinds[0].tagged and not self._post

    def structs(self, value: bytes) -> list[Any]:
        """The envelope's events as msgspec structs (only when `columnar`): what `decode`
        returns, as attributes rather than dict items, with absent optional fields
        `msgspec.UNSET`."""
        doc = self._decoder.decode(value)
        return doc if type(doc) is list else [doc]

    def struct(self, value: bytes) -> Any:
        """One event object (not an array) as a msgspec struct (only when `columnar`): the
        producer's check of a single event, without the envelope's list."""
        return self._one.decode(value)

    def decode(self, value: bytes) -> list[dict[str, Any]]:
        doc = self._decoder.decode(value)
        items = doc if type(doc) is list else [doc]
        if self._post:
            by_struct = self._by_struct
            return [by_struct[type(obj)].to_dict(obj) for obj in items]
        # One C call for the whole envelope: to_builtins leaves out UNSET (absent optional)
        # fields and writes a tagged struct's tag, exactly what `_Kind.to_dict` does.
        dicts: list[dict[str, Any]] = msgspec.to_builtins(items)
        return dicts


def envelope_decoder(event_schemas: Sequence[dict[str, Any]]) -> FastDecoder | None:
    """A fast decoder for these schemas, or None when a schema uses something the fast path
    cannot express (decoding then always takes the Python path)."""
    try:
        return FastDecoder(event_schemas)
    except (ValueError, TypeError):
        return None
