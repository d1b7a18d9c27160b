"""Pure parts of the local Kafka runner: server.properties, port choice, cluster ids."""

from __future__ import annotations

import base64
import socket
from pathlib import Path

import pytest

from pipeline.local.kafka_config import (
    KafkaRuntimeError,
    Ports,
    choose_ports,
    new_cluster_id,
    render_server_properties,
)
from pipeline.local.processes import free_port


def _parse(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line and line[0] != "#"]
    assert all(len(pair) == 2 for pair in pairs)
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), "duplicate keys"
    return dict((key, value) for key, value in pairs)


def test_render_server_properties_single_node_kraft() -> None:
    props = _parse(
        render_server_properties(port=19092, controller_port=19093, data_dir=Path("/x/data"))
    )
    expected = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": "1@127.0.0.1:19093",
        "listeners": "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
        "advertised.listeners": "PLAINTEXT://127.0.0.1:19092",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": "/x/data",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
    }
    assert {key: props.get(key) for key in expected} == expected
    assert 1024 * 1024 <= int(props["log.segment.bytes"]) <= 64 * 1024 * 1024
    # Static voters and the dynamic-quorum bootstrap servers must never both be set.
    assert "controller.quorum.bootstrap.servers" not in props


def test_render_server_properties_escapes_backslashes() -> None:
    text = render_server_properties(port=1, controller_port=2, data_dir=Path("/a\\b"))
    assert "log.dirs=/a\\\\b\n" in text


def test_render_server_properties_rejects_equal_ports() -> None:
    with pytest.raises(ValueError, match="ports must differ"):
        render_server_properties(port=5, controller_port=5, data_dir=Path("/d"))


def test_choose_ports_fresh_when_nothing_known() -> None:
    ports = choose_ports(
        requested=None,
        previous=None,
        is_free=lambda p: True,
        allocate=iter([40001, 40002]).__next__,
    )
    assert ports == Ports(40001, 40002)


def test_choose_ports_reuses_previous_ports_when_free() -> None:
    ports = choose_ports(
        requested=None,
        previous=Ports(41000, 41001),
        is_free=lambda p: True,
        allocate=iter([]).__next__,
    )
    assert ports == Ports(41000, 41001)


def test_choose_ports_replaces_only_the_taken_previous_port() -> None:
    for taken, expected in ((41000, Ports(42000, 41001)), (41001, Ports(41000, 42000))):
        ports = choose_ports(
            requested=None,
            previous=Ports(41000, 41001),
            is_free=lambda p, taken=taken: p != taken,
            allocate=iter([42000]).__next__,
        )
        assert ports == expected


def test_choose_ports_requested_port_wins_and_controller_differs() -> None:
    ports = choose_ports(
        requested=9092,
        previous=Ports(41000, 9092),
        is_free=lambda p: True,
        allocate=iter([9092, 9092, 43000]).__next__,
    )
    assert ports == Ports(9092, 43000)


def test_choose_ports_gives_up_when_allocator_repeats_the_broker_port() -> None:
    with pytest.raises(KafkaRuntimeError, match="controller port different from 9092"):
        choose_ports(requested=9092, previous=None, is_free=lambda p: True, allocate=lambda: 9092)


def test_free_port_is_bindable_on_loopback() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_new_cluster_id_is_kafka_uuid_format() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert len(cid) == 22
        assert not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_choose_ports_takes_the_preferred_port_when_free() -> None:
    ports = choose_ports(requested=None, previous=Ports(41000, 41001), is_free=lambda p: True,
                         allocate=iter([42000]).__next__, preferred=9092)
    assert ports == Ports(9092, 41001)


def test_choose_ports_falls_back_from_a_taken_preferred_port() -> None:
    busy = {9092}
    ports = choose_ports(requested=None, previous=Ports(41000, 9092),
                         is_free=lambda p: p not in busy,
                         allocate=iter([9092, 43000, 43001]).__next__, preferred=9092)
    assert ports == Ports(41000, 43000)  # the previous port; the controller never takes 9092
    ports = choose_ports(requested=None, previous=None, is_free=lambda p: p not in busy,
                         allocate=iter([44000, 44001]).__next__, preferred=9092)
    assert ports == Ports(44000, 44001)
