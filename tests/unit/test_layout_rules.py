"""Rules of the package layout that hold for every module: one exception root, process-wide
tuning only at the entry point."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

from pipeline.core.errors import VitalsError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "query_api", "schemas")


def _modules() -> list[str]:
    names = []
    for pkg in PACKAGES:
        names.append(pkg)
        mod = importlib.import_module(pkg)
        names += [m.name for m in pkgutil.walk_packages(mod.__path__, pkg + ".")]
    return names


def test_every_exception_is_a_vitals_error() -> None:
    strays = []
    for name in _modules():
        mod = importlib.import_module(name)
        for attr, obj in vars(mod).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException)
                    and obj.__module__ == name and not issubclass(obj, VitalsError)):
                strays.append(f"{name}.{attr}")
    assert strays == []


def test_gc_tuning_only_in_the_entry_point() -> None:
    tuning = re.compile(r"\bgc\.(freeze|set_threshold|disable)\(")
    found = sorted(str(p.relative_to(ROOT)) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
                   if tuning.search(p.read_text()))
    assert found == ["pipeline/cli/gc_tuning.py"]


def test_topic_kinds_are_named_once() -> None:
    from pipeline.core.settings import TOPIC_KINDS
    from pipeline.ingest.topics import KINDS

    assert sorted(KINDS) == sorted(TOPIC_KINDS)
    assert all(name == k.name for name, k in KINDS.items())
