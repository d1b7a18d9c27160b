"""Session-wide real Kafka broker for the integration tests.

`tests/integration/conftest.py` imports `kafka_bootstrap` from here; without that conftest, load
this module as a plugin::

    python -m pytest tests/integration/local/test_kafka_local.py -p tests.integration.kafka_fixture

One broker per test session (per xdist worker), in the session's temp dir; jars are resolved once
per machine into ``~/.cache/vitals``. A broker that cannot start fails the tests, never skips them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.local.kafka import LocalKafka

__all__ = ["JAR_CACHE", "broker_home", "kafka_bootstrap"]

JAR_CACHE = Path.home() / ".cache" / "vitals"
_HOME_NAME = "vitals-kafka-broker"


def broker_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session broker's home directory (tests may open a second `LocalKafka` on it)."""
    return tmp_path_factory.getbasetemp() / _HOME_NAME


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running single-node Kafka broker, shared by the whole session.

    Raises (an error, not a skip) if the broker cannot start; stops it at session end.
    """
    home = tmp_path_factory.mktemp(_HOME_NAME, numbered=False)
    kafka = LocalKafka(home, cache_dir=JAR_CACHE)
    try:
        info = kafka.start(timeout=120.0)
        yield info.bootstrap
    finally:
        kafka.stop()
