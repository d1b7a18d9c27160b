"""Settings of the DogStatsD listener and the series limit, read from the environment."""

from __future__ import annotations

import pytest

from pipeline.core.settings import Settings, SettingsError


def test_statsd_defaults_and_overrides():
    assert Settings().statsd_port is None           # built in code (tests): no listener
    s = Settings.from_env({})
    assert (s.statsd_port, s.statsd_host, s.statsd_tenant) == (8125, "127.0.0.1", "default")
    assert s.metrics_max_series == 10_000 and s.statsd_max_datagram == 8192
    s = Settings.from_env({"VITALS_STATSD_PORT": "off", "VITALS_METRICS_MAX_SERIES": "50",
                           "VITALS_STATSD_TENANT": "acme", "VITALS_STATSD_FLUSH_S": "0.2"})
    assert (s.statsd_port, s.metrics_max_series, s.statsd_tenant, s.statsd_flush_s) == (
        None, 50, "acme", 0.2)
    assert Settings.from_env({"VITALS_STATSD_PORT": "0"}).statsd_port == 0


@pytest.mark.parametrize("env, name", [
    ({"VITALS_STATSD_PORT": "udp"}, "VITALS_STATSD_PORT"),
    ({"VITALS_STATSD_PORT": "70000"}, "VITALS_STATSD_PORT"),
    ({"VITALS_METRICS_MAX_SERIES": "0"}, "VITALS_METRICS_MAX_SERIES"),
    ({"VITALS_STATSD_MAX_DATAGRAM": "10"}, "VITALS_STATSD_MAX_DATAGRAM"),
])
def test_bad_values_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)
