"""Session-wide real services for the integration and e2e tiers.

Order of preference: an already running broker and registry (``UNSILO_TEST_BOOTSTRAP`` and
``UNSILO_TEST_REGISTRY``); testcontainers' Kafka module where a Docker engine answers (the
registry then runs locally against it); otherwise the local broker and registry from
``deploy/`` in a temporary data directory on free ports. Started once, stopped at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.config import KafkaSettings, LocalSettings, ReadStoreSettings, RegistrySettings, Settings
from tests.support import free_ports

# Real PostgreSQL and MariaDB for the connector tests: one throwaway server each per session.
pytest_plugins = ["tests.fixtures_postgres", "tests.fixtures_mysql"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_JARS = PROJECT_ROOT / ".unsilo"


@dataclass(frozen=True)
class Stack:
    """Where the session's broker and registry answer."""

    bootstrap: str
    registry_url: str


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def _local_settings(data_dir: Path, bootstrap_port: int | None = None) -> LocalSettings:
    kafka_port, controller_port, registry_port = free_ports(3)
    return LocalSettings(
        data_dir=data_dir,
        kafka_port=bootstrap_port or kafka_port,
        controller_port=controller_port,
        registry_port=registry_port,
        kafka_heap="768m",
        registry_heap="512m",
        start_timeout_s=180,
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A real Kafka broker and Confluent-compatible registry for the whole session."""
    bootstrap = os.environ.get("UNSILO_TEST_BOOTSTRAP")
    registry_url = os.environ.get("UNSILO_TEST_REGISTRY")
    if bootstrap and registry_url:
        yield Stack(bootstrap, registry_url)
        return
    from hub.local.kafka import LocalKafka
    from hub.local.registry import LocalRegistry

    data_dir = tmp_path_factory.mktemp("stack")
    jars = {
        "kafka": SHARED_JARS / "kafka-lib" if (SHARED_JARS / "kafka-lib").exists() else None,
        "registry": SHARED_JARS / "apicurio" if (SHARED_JARS / "apicurio").exists() else None,
    }
    container = None
    kafka: LocalKafka | None = None
    local = _local_settings(data_dir)
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        container = KafkaContainer("apache/kafka:4.1.1").with_kraft()
        container.start()
        bootstrap = container.get_bootstrap_server()
    else:
        kafka = LocalKafka(local, PROJECT_ROOT, lib_dir=jars["kafka"])
        kafka.ensure_installed()
        kafka.start()
        kafka.wait_ready()
        bootstrap = kafka.bootstrap_servers
    registry = LocalRegistry(local, PROJECT_ROOT, bootstrap, install_dir=jars["registry"])
    try:
        registry.ensure_installed()
        registry.start()
        registry.wait_ready()
        yield Stack(bootstrap, registry.url)
    finally:
        registry.stop()
        if kafka is not None:
            kafka.stop()
        if container is not None:
            container.stop()


@pytest.fixture
def settings(stack: Stack, tmp_path: Path) -> Settings:
    """Settings pointing at the session's services, with a private read store and data dir."""
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=stack.bootstrap),
        registry=RegistrySettings(url=stack.registry_url),
        local=LocalSettings(data_dir=tmp_path / ".unsilo"),
        read_store=ReadStoreSettings(url=f"sqlite:///{tmp_path / 'read.db'}"),
    )
