"""Rules of the package layout that hold for every module: one exception root, process-wide
tuning only at the entry point."""

from __future__ import annotations

import ast
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


#: Third-party packages held to their boundary modules, and the modules allowed to import each.
#: faust and mode (its service layer): the worker builds the app; everything else sees the
#: protocols in `pipeline/ingest/faust_types.py`. clickhouse-connect and chdb (loaded by
#: clickhouse-connect through the `chdb://` DSN): the store creates clients and translates the
#: driver's exceptions, and `pipeline/storage/embedded.py` opens the embedded engine's sessions;
#: everything else sees `Store` and `pipeline/storage/ch_types.py`.
#: aiokafka ships no types (a mypy override lets it through): each module below is a Kafka
#: boundary of its own part (the SDK's link, topic creation, the local broker's readiness, the
#: lag gauges) or catches `KafkaError` where a Kafka call's failure is reported (the CLI, HTTP
#: ingest). pandas backs the SDK's optional `to_pandas()`, httptools uvicorn's fast parser and
#: the probe port's.
BOUNDARIES = {
    "faust": {"pipeline/ingest/worker.py"},
    "mode": {"pipeline/ingest/worker.py"},
    "clickhouse_connect": {"pipeline/storage/clickhouse.py", "pipeline/storage/embedded.py"},
    "chdb": {"pipeline/storage/clickhouse.py"},
    "aiokafka": {"pipeline/sdk/producer_kafka.py", "pipeline/ingest/topic_admin.py",
                 "pipeline/local/processes.py", "query_api/ops/gauges.py",
                 "query_api/ingest.py", "pipeline/cli/main.py"},
    "pandas": {"pipeline/sdk/documents.py"},
    "httptools": {"query_api/http_protocol.py", "query_api/probe_server.py"},
}

INDIRECT = {"mode", "chdb"}


def _imported_packages(path: Path) -> set[str]:
    """Top-level package names a module imports (at module level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_untyped_and_driver_packages_stay_in_their_boundary_modules() -> None:
    importers: dict[str, set[str]] = {name: set() for name in BOUNDARIES}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            for name in _imported_packages(path) & set(BOUNDARIES):
                importers[name].add(str(path.relative_to(ROOT)))
    strays = {name: sorted(found - BOUNDARIES[name]) for name, found in importers.items()
              if found - BOUNDARIES[name]}
    assert strays == {}
    # the list is exact: a boundary module that no longer imports its package leaves the list
    # (mode and chdb are loaded by faust and clickhouse-connect; no module names them today)
    gone = {name: sorted(BOUNDARIES[name] - found) for name, found in importers.items()
            if BOUNDARIES[name] - found and name not in INDIRECT}
    assert gone == {}


#: SQL in a string literal: a statement (upper-case keywords, as every query here writes them)
#: or a condition with a ClickHouse query parameter (`{name:Type}`).
SQL = re.compile(r"\bSELECT\b.*?\bFROM\b|\bINSERT\s+INTO\b|\b(ALTER|OPTIMIZE|TRUNCATE)\s+TABLE\b"
                 r"|\b(CREATE|DROP)\s+(TABLE|DATABASE|VIEW|MATERIALIZED\s+VIEW)\b"
                 r"|\{\w+:(U?Int\d+|String|Float\d+|Bool|DateTime\w*|Array\([^)]*\))\}", re.S)


def _sql_homes(path: Path) -> bool:
    """Where SQL may be written: the storage layer and each route family's store modules."""
    rel = path.relative_to(ROOT)
    return (rel.parts[:2] == ("pipeline", "storage") or path.name == "store.py"
            or path.name.endswith("_store.py"))


def _literals(source: str) -> list[str]:
    """The string literals of a module but its docstrings; an f-string's fields read `{}`."""
    tree = ast.parse(source)
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and n.body and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            out.append("".join(v.value if isinstance(v, ast.Constant) else "{}"
                               for v in node.values))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docs):
            out.append(node.value)
    return out


def sql_outside_stores(root: Path = ROOT) -> list[str]:
    return sorted(str(p.relative_to(root)) for pkg in PACKAGES for p in (root / pkg).rglob("*.py")
                  if not _sql_homes(p) and any(SQL.search(s) for s in _literals(p.read_text())))


def test_sql_only_in_store_modules() -> None:
    assert sql_outside_stores() == []


def test_the_sql_rule_sees_a_statement_but_not_prose() -> None:
    assert [bool(SQL.search(s)) for s in (
        "SELECT count() FROM {db}.requests_raw", "INSERT INTO t", "ALTER TABLE t ADD COLUMN x",
        "tenant = {tenant:String} AND ep = {ep:UInt64}", "select a field from the list",
        "Selecting rows", "the FROM header of a mail", "{asctime} {level}", "{x!r:>8}")] == [
        True, True, True, True, False, False, False, False, False]


#: The modules that authenticate a caller: the key check itself and the route dependencies.
AUTH_HOMES = ("query_api/auth.py", "query_api/deps.py")


def authenticating_modules() -> list[str]:
    """Modules under query_api/ outside `AUTH_HOMES` that call `.authenticate(`: a route
    handler takes its caller from a dependency of `query_api.deps`, never authenticates."""
    found = []
    for p in sorted((ROOT / "query_api").rglob("*.py")):
        rel = str(p.relative_to(ROOT))
        if rel not in AUTH_HOMES and any(
                isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                and n.func.attr == "authenticate" for n in ast.walk(ast.parse(p.read_text()))):
            found.append(rel)
    return found


def test_only_the_dependencies_authenticate() -> None:
    assert authenticating_modules() == []
