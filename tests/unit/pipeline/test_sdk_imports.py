"""Importing the public SDK (`import pipeline`, its producers, read client and errors) loads
neither the storage access layer nor the Kafka runners, the worker, the CLI or the API: checked
in a fresh interpreter, by the set of modules it holds afterwards."""

from __future__ import annotations

import json
import subprocess
import sys

#: Module prefixes the SDK must never load.
FORBIDDEN = ("clickhouse_connect", "chdb", "faust", "uvicorn", "fastapi", "query_api",
             "pipeline.storage.clickhouse", "pipeline.storage.keys", "pipeline.local",
             "pipeline.cli", "pipeline.ingest.worker", "pipeline.ingest.sink",
             "pipeline.statsd.listener")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"],
        check=True, capture_output=True, text=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def _hits(mods: set[str]) -> list[str]:
    return sorted(m for m in mods if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))


def test_import_pipeline_loads_only_the_package() -> None:
    mods = _modules_after("import pipeline")
    assert sorted(m for m in mods if m.startswith("pipeline.")) == []
    assert _hits(mods) == []


def test_the_public_sdk_loads_no_storage_access_nor_kafka_runner() -> None:
    mods = _modules_after(
        "import pipeline\n"
        "from pipeline import Client, AsyncClient, Producer, SyncProducer, InvalidEvent\n"
        "from pipeline import ProducerError, BrokerUnavailable\n"
        "from pipeline.sdk.metrics_client import MetricsClient")
    assert _hits(mods) == []
    assert {"pipeline.sdk.producer", "pipeline.sdk.sync_producer", "pipeline.sdk.client"} <= mods
