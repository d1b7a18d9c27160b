"""The deployment files agree with the code (checked statically, no Docker): every environment
name that docker-compose.yml gives a Vitals container is one the settings read, every command
it runs is a `vitals` subcommand, the image runs unprivileged with a data dir from
VITALS_DATA_DIR, and the Vitals services wait for healthy Kafka and ClickHouse."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.cli.main import build_parser
from pipeline.core.settings import Settings
from pipeline.local.kafka_config import java_major

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
VITALS = {name: svc for name, svc in COMPOSE["services"].items() if svc.get("build")}


class _Recorder(dict[str, str]):
    """An environment that records every name the settings look up."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def settings_names() -> set[str]:
    env = _Recorder()
    Settings.from_env(env)
    return env.read


def test_vitals_services_exist():
    assert set(VITALS) >= {"migrate", "worker", "api"}


@pytest.mark.parametrize("service", sorted(VITALS))
def test_every_environment_name_is_read_by_the_settings(service: str):
    names = set(VITALS[service].get("environment") or {})
    assert names, f"{service} has no environment"
    unknown = names - settings_names()
    assert not unknown, f"{service}: {sorted(unknown)} are not read by Settings.from_env"


@pytest.mark.parametrize("service", sorted(VITALS))
def test_every_command_is_a_vitals_command(service: str):
    command = VITALS[service]["command"]
    build_parser().parse_args(command)  # exits (SystemExit) on an unknown command


def test_commands_in_the_compose_comments_parse():
    text = (ROOT / "docker-compose.yml").read_text()
    runs = re.findall(r"docker compose run --rm \w+ (.+)", text)
    assert runs
    for line in runs:
        build_parser().parse_args(shlex.split(line))


@pytest.mark.parametrize("service", ["worker", "api"])
def test_vitals_waits_for_healthy_kafka_and_clickhouse(service: str):
    deps = VITALS[service]["depends_on"]
    for infra in ("kafka", "clickhouse"):
        assert deps[infra] == {"condition": "service_healthy"}, service
        assert COMPOSE["services"][infra]["healthcheck"]["test"]


def test_image_runs_unprivileged_with_a_writable_data_dir():
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()]
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1] not in ("root", "0", "nobody")
    env = next(ln for ln in lines if ln.startswith("ENV VITALS_DATA_DIR="))
    data_dir = env.split("=", 1)[1]
    assert any(f"--home-dir {data_dir}" in ln and "--create-home" in ln and users[-1] in ln
               for ln in lines)  # the user owns its home: the data dir
    assert COMPOSE["x-vitals-env"]["VITALS_DATA_DIR"] == data_dir


@pytest.mark.parametrize(("text", "major"), [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('openjdk version "21" 2023-09-19', 21),
    ('java version "1.8.0_392"', 8),
    ('openjdk version "11.0.2" 2019-01-15', 11),
    ("no java here", None),
])
def test_java_major(text: str, major: int | None):
    assert java_major(text) == major


@pytest.mark.parametrize("java", [None, 'openjdk version "11.0.2" 2019-01-15'])
def test_missing_or_old_java_is_one_line_and_exit_2(tmp_path: Path, java: str | None,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if java is not None:  # a fake `java` printing an old version, like the real one, on stderr
        fake = bin_dir / "java"
        fake.write_text(f"#!/bin/sh\necho '{java}' >&2\n")
        fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("VITALS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    from pipeline.cli.main import main

    assert main(["kafka", "start"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Java 17+" in err[0], err
