"""The generated configuration of the local broker and registry (no processes, no network)."""

from __future__ import annotations

from pathlib import Path

from hub.config import LocalSettings
from hub.local.kafka import LocalKafka, new_cluster_id, render_server_properties
from hub.local.registry import JOURNAL_TOPIC, LocalRegistry, registry_properties
from hub.local.tools import parse_java_version


def _parse(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def test_server_properties_describe_one_loopback_kraft_node(tmp_path: Path) -> None:
    """server.properties makes one combined KRaft node, static quorum, on 127.0.0.1 only."""
    settings = LocalSettings(data_dir=tmp_path, kafka_port=19092, controller_port=19093)
    props = _parse(render_server_properties(settings, tmp_path / "kafka" / "data"))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert "controller.quorum.bootstrap.servers" not in props


def test_server_properties_fit_a_single_small_broker(tmp_path: Path) -> None:
    """Replication settings suit one broker and the cleaner buffer suits a small heap."""
    props = _parse(render_server_properties(LocalSettings(data_dir=tmp_path), tmp_path / "d"))
    assert props["log.dirs"] == str((tmp_path / "d").absolute())
    assert Path(props["log.dirs"]).is_absolute()
    assert props["auto.create.topics.enable"] == "false"
    assert props["num.partitions"] == "1"
    assert props["log.cleaner.dedupe.buffer.size"] == "2097152"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.min.isr",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_local_kafka_places_everything_under_the_data_dir(tmp_path: Path) -> None:
    """A relative data_dir is taken from the project root; lib_dir may point elsewhere."""
    kafka = LocalKafka(LocalSettings(data_dir=Path("state"), kafka_port=19500), tmp_path)
    assert kafka.data_dir == tmp_path / "state"
    assert kafka.lib_dir == tmp_path / "state" / "kafka-lib"
    assert kafka.bootstrap_servers == "127.0.0.1:19500"
    assert kafka.process.pid_file == tmp_path / "state" / "run" / "kafka.pid"
    assert kafka.process.log_file == tmp_path / "state" / "logs" / "kafka.log"
    other = LocalKafka(LocalSettings(), tmp_path, lib_dir=tmp_path / "jars")
    assert other.classpath() == str(tmp_path / "jars" / "*")
    home = LocalKafka(LocalSettings(kafka_home=tmp_path / "kafka_2.13-4.1.1"), tmp_path)
    assert home.classpath() == str(tmp_path / "kafka_2.13-4.1.1" / "libs" / "*")


def test_cluster_id_is_22_url_safe_chars_not_starting_with_dash() -> None:
    """A drawn cluster id is 22 chars of URL-safe base64 that never starts with '-'."""
    for _ in range(200):
        value = new_cluster_id()
        assert len(value) == 22
        assert not value.startswith("-")
        assert set(value) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_registry_keeps_its_storage_in_kafka_on_loopback(tmp_path: Path) -> None:
    """Apicurio gets kafkasql storage on the given broker and binds 127.0.0.1 only."""
    settings = LocalSettings(data_dir=tmp_path, registry_port=18081)
    props = registry_properties(settings, "127.0.0.1:19092", tmp_path / "registry")
    assert props["apicurio.storage.kind"] == "kafkasql"
    assert props["apicurio.kafkasql.bootstrap.servers"] == "127.0.0.1:19092"
    assert props["apicurio.kafkasql.topic"] == JOURNAL_TOPIC == "_schemas"
    assert props["quarkus.http.host"] == "127.0.0.1"
    assert props["quarkus.http.port"] == "18081"
    assert props["quarkus.management.host"] == "127.0.0.1"
    registry = LocalRegistry(settings, tmp_path, "127.0.0.1:19092")
    assert registry.url == "http://127.0.0.1:18081/apis/ccompat/v7"
    assert registry.run_jar == tmp_path / "apicurio" / "quarkus-run.jar"


def test_java_versions_are_parsed_in_old_and_new_styles() -> None:
    """``java -version`` output gives 8 for 1.8.x and the first number from Java 9 on."""
    assert parse_java_version('openjdk version "1.8.0_402"') == 8
    assert parse_java_version('openjdk version "17.0.15" 2025-04-15') == 17
    assert parse_java_version('openjdk version "25" 2025-09-16') == 25
    assert parse_java_version('java version "21-ea"') == 21
