"""Every exception class the ClickHouse driver can raise has one meaning in Vitals, by type."""

from __future__ import annotations

import inspect

import pytest
from clickhouse_connect.driver import exceptions as dbx

from pipeline.core.errors import StorageFault, StorageRefused, StorageUnavailable
from pipeline.storage.clickhouse import TRANSIENT_CODES, translate

#: The expected Vitals class of each driver class, raised with a non-transient code.
EXPECTED = {
    "ClickHouseError": StorageFault,
    "Warning": StorageFault,
    "Error": StorageFault,
    "InterfaceError": StorageFault,
    "DatabaseError": StorageRefused,
    "DataError": StorageRefused,
    "IntegrityError": StorageRefused,
    "OperationalError": StorageUnavailable,
    "StreamFailureError": StorageUnavailable,
    "InternalError": StorageFault,
    "ProgrammingError": StorageFault,
    "StreamClosedError": StorageFault,
    "NotSupportedError": StorageFault,
    "StreamCompleteException": StorageFault,
}


def driver_classes() -> list[type[BaseException]]:
    return [c for _, c in inspect.getmembers(dbx, inspect.isclass)
            if issubclass(c, BaseException) and c.__module__ == dbx.__name__]


def make(cls: type[BaseException], code: int | None) -> BaseException:
    try:
        return cls("boom", code=code, name="X")  # type: ignore[call-arg]
    except TypeError:  # classes with their own constructor
        return cls()


def test_every_driver_exception_class_is_mapped():
    names = {c.__name__ for c in driver_classes()}
    assert names == set(EXPECTED), f"map these driver classes: {sorted(names ^ set(EXPECTED))}"
    for cls in driver_classes():
        got = translate(make(cls, 469))  # VIOLATED_CONSTRAINT
        assert type(got) is EXPECTED[cls.__name__], cls.__name__


@pytest.mark.parametrize("code", sorted(TRANSIENT_CODES))
def test_transient_codes_are_unavailable(code):
    assert type(translate(dbx.DatabaseError("x", code=code))) is StorageUnavailable


def test_refusal_keeps_code_and_name_and_a_codeless_answer_is_unavailable():
    got = translate(dbx.DatabaseError("Code: 60. Unknown table", code=60, name="UNKNOWN_TABLE"))
    assert (type(got), got.code, got.name) == (StorageRefused, 60, "UNKNOWN_TABLE")
    assert type(translate(dbx.DatabaseError("HTTP 502"))) is StorageUnavailable


def test_text_never_decides():
    # a refusal whose text talks of connections is still a refusal
    got = translate(dbx.DatabaseError("connection timed out Code: 999", code=469))
    assert type(got) is StorageRefused
    assert type(translate(ConnectionResetError("reset"))) is StorageUnavailable
    assert type(translate(TimeoutError())) is StorageUnavailable
    assert type(translate(ValueError("connection"))) is StorageFault
