"""Query parameter declarations: what `/openapi.json` says is what the readers enforce, and
every hostile number is a 400 naming the parameter (never an exception that would be a 500)."""

from __future__ import annotations

import json
import math

import pytest
from starlette.datastructures import QueryParams

from query_api.endpoint_metrics.params import DECLARED
from query_api.errors import ApiError, bad_param
from query_api.params import get_int, get_number
from query_api.query_params import MAX_UNIX_S, QueryParam, declare

T = QueryParam("t", "number", "a timestamp", minimum=0, maximum=MAX_UNIX_S)
N = QueryParam("n", "integer", "a count", minimum=1, maximum=10)
S = QueryParam("s", "string", "a name", required=True, min_length=1, max_length=5)
C = QueryParam("c", "string", "a choice", enum=("a", "b"))
L = QueryParam("l", "array", "filters", min_length=2, max_length=4, max_items=2,
               pattern="^[^:]+:")


def err(fn, *args, **kwargs) -> dict:
    with pytest.raises(ApiError) as info:
        fn(*args, **kwargs)
    assert info.value.status == 400 and info.value.code == "INVALID_PARAMETERS"
    body = json.loads(info.value.response().body)  # always encodable: no nan/inf leaks
    return body["details"]


def test_openapi_declarations_carry_the_bounds() -> None:
    doc = declare(T, N, S, C, L)["parameters"]
    assert doc[0] == {"name": "t", "in": "query", "required": False,
                      "description": "a timestamp",
                      "schema": {"type": "number", "minimum": 0, "maximum": MAX_UNIX_S}}
    assert doc[1]["schema"] == {"type": "integer", "minimum": 1, "maximum": 10}
    assert doc[2]["required"] is True
    assert doc[2]["schema"] == {"type": "string", "minLength": 1, "maxLength": 5}
    assert doc[3]["schema"] == {"type": "string", "enum": ["a", "b"]}
    assert doc[4]["schema"] == {"type": "array", "maxItems": 2, "items": {
        "type": "string", "minLength": 2, "maxLength": 4, "pattern": "^[^:]+:"}}
    assert doc[4]["style"] == "form" and doc[4]["explode"] is True
    names = [p.name for p in DECLARED]
    assert names == ["timeframe", "granularity", "metrics", "format", "aggregation"]


@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-inf", "Infinity", "1e309", "", "x",
                                 "-1", "-0.5", str(MAX_UNIX_S + 1), "1e300",
                                 "9" * 5000])
def test_hostile_numbers_are_400_with_the_allowed_range(raw: str) -> None:
    details = err(T.read_number, QueryParams({"t": raw}))
    assert details["parameter"] == "t"
    assert details["allowedRange"] == [0, MAX_UNIX_S]


@pytest.mark.parametrize("raw", ["0", "11", "1.5", "nan", "", "1e3", "9" * 5000, "-" + "9" * 50,
                                 "0x10", " "])
def test_hostile_integers_are_400_with_the_allowed_range(raw: str) -> None:
    details = err(N.read_int, QueryParams({"n": raw}))
    assert details["parameter"] == "n" and details["allowedRange"] == [1, 10]


def test_bounds_themselves_and_absence_are_accepted() -> None:
    assert T.read_number(QueryParams({"t": "0"})) == 0.0
    assert T.read_number(QueryParams({"t": str(MAX_UNIX_S)})) == MAX_UNIX_S
    assert T.read_number(QueryParams(""), default=5.0) == 5.0
    assert N.read_int(QueryParams({"n": " 10 "})) == 10
    assert N.read_int(QueryParams(""), default=3) == 3
    assert C.read_str(QueryParams({"c": ""}), default="a") == "a"  # empty = absent
    assert L.read_list(QueryParams([("l", "k:v"), ("l", "j:")])) == ["k:v", "j:"]


def test_strings_choices_lists_and_repeats() -> None:
    assert err(S.read_str, QueryParams(""))["parameter"] == "s"  # required
    assert err(S.read_str, QueryParams({"s": ""}))["parameter"] == "s"  # minLength 1
    assert err(S.read_str, QueryParams({"s": "toolong"}))["parameter"] == "s"
    assert err(C.read_str, QueryParams({"c": "z"}))["allowedValues"] == ["a", "b"]
    assert err(N.read_int, QueryParams([("n", "1"), ("n", "2")]))["parameter"] == "n"
    assert err(L.read_list, QueryParams([("l", "a:")] * 3))["parameter"] == "l"
    assert err(L.read_list, QueryParams({"l": "abcde"}))["parameter"] == "l"


def test_body_readers_bound_numbers_too() -> None:
    assert err(get_number, {"p": math.inf}, "p", lo=0, hi=1)["value"] == "inf"
    assert err(get_number, {"p": math.nan}, "p")["value"] == "nan"
    assert err(get_number, {"p": 2.0}, "p", lo=0, hi=1)["allowedRange"] == [0, 1]
    assert err(get_int, {"p": 10**30}, "p", lo=0, hi=2**63 - 1)["value"] == str(10**30)
    assert err(get_int, {"p": True}, "p")["parameter"] == "p"
    assert get_number({"p": "1e3"}, "p", hi=1000) == 1000.0


def test_error_details_stay_json_for_non_finite_values() -> None:
    body = json.loads(bad_param("x", [math.nan, -math.inf], "bad").response().body)
    assert body["details"]["value"] == ["nan", "-inf"]
