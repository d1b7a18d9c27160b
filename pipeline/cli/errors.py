"""The one error type of the `vitals` command: a failure reported as one line on stderr."""

from __future__ import annotations

import sys

from pipeline.core.errors import VitalsError


class CliError(VitalsError):
    """A failure to report as one line on stderr with exit code `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _err(message: str) -> None:
    print(f"vitals: {message}", file=sys.stderr)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
