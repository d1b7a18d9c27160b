"""Settings come from the environment once; bad values name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.settings import Settings, SettingsError, TopicNames


def test_defaults_are_embedded() -> None:
    s = Settings.from_env({})
    assert s.kafka_bootstrap is None and s.embedded
    assert s.dsn == f"chdb://{(Path('.data') / 'clickhouse').resolve()}"
    assert s.stats_window_s == 60 and s.liveness_timeout_s == 60
    assert s.kafka_port == 9092
    assert Settings.from_env({"VITALS_KAFKA_PORT": "19092"}).kafka_port == 19092
    assert Settings.from_env({"VITALS_KAFKA_PORT": "0"}).kafka_port == 0  # any free port


def test_values_are_read_and_typed() -> None:
    s = Settings.from_env({"KAFKA_BOOTSTRAP": "k:9092", "CLICKHOUSE_DSN": "http://ch:8123",
                           "VITALS_TOPIC_PREFIX": "p-", "VITALS_STATS_WINDOW_S": "30",
                           "VITALS_BATCH_MAX_SECONDS": "0.5"})
    assert s.kafka_bootstrap == "k:9092" and not s.embedded
    assert s.topics.requests == "p-requests" and s.topics.dlq("jobs") == "p-jobs.dlq"
    assert s.stats_window_s == 30 and s.batch_max_seconds == 0.5


def test_read_sharing_and_inflight_limit() -> None:
    d = Settings.from_env({})
    assert (d.read_cache_ms, d.api_max_inflight) == (1000, 64)
    s = Settings.from_env({"VITALS_READ_CACHE_MS": "0", "VITALS_API_MAX_INFLIGHT": "200"})
    assert (s.read_cache_ms, s.api_max_inflight) == (0, 200)
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"VITALS_API_MAX_INFLIGHT": "0"})
    assert "VITALS_API_MAX_INFLIGHT=0 must be >= 1" in str(info.value)


@pytest.mark.parametrize("env,needle", [
    ({"VITALS_STATS_WINDOW_S": "abc"}, "VITALS_STATS_WINDOW_S='abc' is not an integer"),
    ({"VITALS_STATS_WINDOW_S": "0"}, "VITALS_STATS_WINDOW_S=0 must be >= 1"),
    ({"CLICKHOUSE_DSN": "mysql://x"}, "allowed schemes are chdb://, http://, https://"),
    ({"VITALS_BATCH_MAX_SECONDS": "-1"}, "VITALS_BATCH_MAX_SECONDS=-1.0 must be > 0"),
    ({"VITALS_KAFKA_PORT": "70000"}, "VITALS_KAFKA_PORT=70000 must be <= 65535"),
    ({"VITALS_KAFKA_PORT": "kafka"}, "VITALS_KAFKA_PORT='kafka' is not an integer"),
    ({"VITALS_MAX_MESSAGE_BYTES": "16777217"},
     "VITALS_MAX_MESSAGE_BYTES=16777217 must be <= 16777216 (16 MiB, the largest message"),
])
def test_bad_values_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=None) as info:
        Settings.from_env(env)
    assert needle in str(info.value)


def test_the_message_limit_may_reach_the_topics_limit() -> None:
    s = Settings.from_env({"VITALS_MAX_MESSAGE_BYTES": str(16 * 1024 * 1024)})
    assert s.max_message_bytes == 16 * 1024 * 1024


def test_topic_kinds_are_closed() -> None:
    with pytest.raises(ValueError, match="unknown topic kind"):
        TopicNames().topic("nope")
    assert len(TopicNames().all()) == 10
