"""The docker compose file in deploy/ (parsed with PyYAML; Docker is never run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "deploy" / "docker-compose.yml"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    found: dict[str, Any] = data["services"]
    return found


def _env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whether written as a mapping or a list."""
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Service name to the condition it waits for (short list form means service_started)."""
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def test_compose_defines_kafka_registry_and_unsilo(services: dict[str, Any]) -> None:
    """The compose file runs exactly the broker, the registry and the hub."""
    assert set(services) == {"kafka", "registry", "unsilo"}


def test_images_are_pinned_to_the_supported_versions(services: dict[str, Any]) -> None:
    """Kafka is apache/kafka 4.1.1 and the registry Apicurio 3.3.3; the hub is built from deploy/."""
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert services["registry"]["image"] == "apicurio/apicurio-registry:3.3.3"
    assert services["unsilo"]["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert (COMPOSE_FILE.parent / "Dockerfile").is_file()


def test_kafka_is_one_kraft_node_with_host_and_internal_listeners(services: dict[str, Any]) -> None:
    """Kafka is a combined broker+controller advertising localhost:9092 and kafka:29092."""
    kafka = services["kafka"]
    env = _env(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "PLAINTEXT://localhost:9092" in advertised
    assert any(item.endswith("://kafka:29092") for item in advertised)
    assert "9092:9092" in kafka["ports"]
    assert "healthcheck" in kafka


def test_kafka_internal_topics_fit_a_single_broker(services: dict[str, Any]) -> None:
    """Transaction state and offsets topics need only one replica, so transactions work."""
    env = _env(services["kafka"])
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


def test_registry_stores_schemas_in_kafka_over_the_internal_listener(services: dict[str, Any]) -> None:
    """Apicurio keeps its kafkasql journal in _schemas on kafka:29092, once Kafka is healthy."""
    registry = services["registry"]
    env = _env(registry)
    assert env["APICURIO_STORAGE_KIND"] == "kafkasql"
    assert env["APICURIO_KAFKASQL_BOOTSTRAP_SERVERS"] == "kafka:29092"
    assert env["APICURIO_KAFKASQL_TOPIC"] == "_schemas"
    assert "8081:8080" in registry["ports"]
    assert _depends_on(registry) == {"kafka": "service_healthy"}


def test_unsilo_uses_the_internal_listener_and_the_ccompat_api(services: dict[str, Any]) -> None:
    """The hub reaches Kafka on kafka:29092 and the registry through its Confluent-compatible API."""
    unsilo = services["unsilo"]
    env = _env(unsilo)
    assert env["UNSILO_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:29092"
    assert env["UNSILO_REGISTRY__URL"] == "http://registry:8080/apis/ccompat/v7"
    command = unsilo["command"]
    assert (command.split() if isinstance(command, str) else command) == ["unsilo", "demo"]
    assert any(str(port).split(":")[-1] == "8000" for port in unsilo["ports"])


def test_unsilo_depends_on_kafka_and_the_registry(services: dict[str, Any]) -> None:
    """The hub starts only after the broker is healthy and the registry has started."""
    deps = _depends_on(services["unsilo"])
    assert set(deps) == {"kafka", "registry"}
    assert deps["kafka"] == "service_healthy"
