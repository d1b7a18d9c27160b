"""The one Prometheus text-exposition writer (format 0.0.4) of Vitals: the pipeline's own
`/metrics` (`pipeline.core.telemetry`) and the endpoint metrics' `format=prometheus`
(`query_api.endpoint_metrics.formats`) both write through it. Pure.

Numbers: integers as integers (below 1e15), other floats as Python's shortest repr, infinities
and NaN as `+Inf`, `-Inf`, `NaN`. Label values escape backslash, double quote and newline.
Every family has exactly one HELP and one TYPE line followed by all of its samples
(`promtool check metrics` rejects a second HELP for a name).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

__all__ = ["Exposition", "escape", "labels", "number"]


def escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels(pairs: Mapping[str, str]) -> str:
    """`{k="v",...}` in the mapping's order; empty for no labels."""
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in pairs.items()) + "}"


def number(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if math.isnan(v):
        return "NaN"
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


class Exposition:
    """Families written in order, each once; `lines` joined by newlines is the text."""

    def __init__(self, base: Mapping[str, str] | None = None) -> None:
        self.base = dict(base or {})
        self.lines: list[str] = []
        self.names: set[str] = set()

    def head(self, name: str, kind: str, help_: str) -> None:
        """HELP and TYPE of a family; a family is written once, all its samples together."""
        if name in self.names:
            raise ValueError(f"metric family {name} written twice")
        self.names.add(name)
        self.lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, lab: Mapping[str, str], v: float) -> None:
        self.lines.append(f"{name}{labels({**self.base, **lab})} {number(v)}")

    def family(self, name: str, kind: str, help_: str,
               samples: Sequence[tuple[Mapping[str, str], float | None]]) -> None:
        """A family of the given samples (None values skipped; no family when none is left)."""
        kept = [(lab, v) for lab, v in samples if v is not None]
        if not kept:
            return
        self.head(name, kind, help_)
        for lab, v in kept:
            assert v is not None
            self.sample(name, lab, v)

    def histogram(self, name: str, help_: str, series: Sequence[tuple[Mapping[str, str],
                  Sequence[tuple[float, float]], float]]) -> None:
        """A histogram family: per label set, (upper bound, count in the bucket) pairs ending
        with +Inf, and the sum; buckets are written cumulative, `_count` is the total."""
        if not series:
            return
        self.head(name, "histogram", help_)
        for lab, buckets, total in series:
            cum = 0.0
            for le, c in buckets:
                cum += c
                le_s = "+Inf" if math.isinf(le) else repr(le)
                self.sample(name + "_bucket", {**lab, "le": le_s}, cum)
            self.sample(name + "_sum", lab, total)
            self.sample(name + "_count", lab, cum)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"
