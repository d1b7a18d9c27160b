"""Event schemas: JSON Schema files (the source of truth) and their compiled validators.

`load(name)` returns the parsed schema `<name>.json`; `validator(name)` its compiled validator.
ClickHouse DDL migrations live in `clickhouse/NNN_*.sql` beside this file.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from schemas.validator import SchemaViolation, Validator, compile_schema

__all__ = ["SchemaViolation", "Validator", "load", "migration_files", "validator"]


@functools.cache
def load(name: str) -> dict[str, Any]:
    text = resources.files(__package__).joinpath(f"{name}.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def validator(name: str) -> Validator:
    return compile_schema(load(name))


def migration_files() -> list[tuple[str, str]]:
    """(file name, SQL text) of every ClickHouse migration, in order."""
    folder = resources.files(__package__).joinpath("clickhouse")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(n, folder.joinpath(n).read_text("utf-8")) for n in names]
