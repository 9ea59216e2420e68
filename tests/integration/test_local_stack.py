"""The local stack for real: a Kafka broker and Apicurio started from jars, stopped by PID.

Uses a temporary data directory and free ports, so it never touches a stack the developer
already runs. Jars are shared with the project's ``.unsilo/`` (resolved there once).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from hub.config import LocalSettings, RegistrySettings, Settings
from hub.local import stack
from hub.local.process import ServiceStatus
from tests.support import free_ports

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[2]
JARS = {
    "kafka_lib_dir": PROJECT_ROOT / ".unsilo" / "kafka-lib",
    "registry_install_dir": PROJECT_ROOT / ".unsilo" / "apicurio",
}

CUSTOMER_V1 = {
    "type": "record",
    "name": "Customer",
    "namespace": "unsilo.test",
    "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}],
}
CUSTOMER_V2 = {
    **CUSTOMER_V1,
    "fields": [
        *CUSTOMER_V1["fields"],
        {"name": "email", "type": ["null", "string"], "default": None},
    ],
}
CUSTOMER_BROKEN = {**CUSTOMER_V1, "fields": [{"name": "id", "type": "string"}]}
EMPLOYEE = {
    "type": "record",
    "name": "Employee",
    "namespace": "unsilo.test",
    "fields": [{"name": "employee_no", "type": "string"}, {"name": "hired", "type": "int"}],
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of a stack in a fresh data dir on free ports; whatever runs is stopped after."""
    kafka_port, controller_port, registry_port = free_ports(3)
    local = LocalSettings(
        data_dir=tmp_path_factory.mktemp("unsilo"),
        kafka_port=kafka_port,
        controller_port=controller_port,
        registry_port=registry_port,
        kafka_heap="512m",
        registry_heap="384m",
        start_timeout_s=180,
    )
    registry = RegistrySettings(url=f"http://127.0.0.1:{registry_port}/apis/ccompat/v7")
    value = Settings(local=local, registry=registry)
    yield value
    stack.down(value, PROJECT_ROOT, **JARS)


@pytest.fixture(scope="module")
def running(settings: Settings) -> list[ServiceStatus]:
    """The stack, started once for the module."""
    return stack.up(settings, PROJECT_ROOT, **JARS)


def _client(settings: Settings) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": settings.registry.url})


def _schema_by_id(client: SchemaRegistryClient, schema_id: int) -> object:
    text = client.get_schema(schema_id).schema_str
    assert text is not None
    return json.loads(text)


def test_up_starts_a_broker_that_lists_itself(settings: Settings, running: list[ServiceStatus]) -> None:
    """After ``up`` the broker answers a metadata request that lists broker 1 at its port."""
    assert [s.name for s in running] == ["kafka", "registry"]
    assert all(s.running and s.pid for s in running)
    admin = AdminClient({"bootstrap.servers": running[0].address})
    metadata = admin.list_topics(timeout=10)
    assert 1 in metadata.brokers
    assert metadata.brokers[1].port == settings.local.kafka_port
    assert "_schemas" in metadata.topics  # the registry's journal lives in the broker


def test_up_starts_a_registry_with_backward_default(settings: Settings, running: list[ServiceStatus]) -> None:
    """The registry answers ``GET /subjects`` and its global compatibility is BACKWARD."""
    assert running[1].address == settings.registry.url
    with httpx.Client(timeout=10) as client:
        subjects = client.get(settings.registry.url + "/subjects")
        config = client.get(settings.registry.url + "/config")
    assert subjects.status_code == 200
    assert config.json() == {"compatibilityLevel": "BACKWARD"}


def test_confluent_client_works_against_the_registry(
    settings: Settings, running: list[ServiceStatus]
) -> None:
    """confluent-kafka's SchemaRegistryClient registers, reads back and checks compatibility."""
    client = _client(settings)
    subject = "unsilo.raw.crm.customers-value"
    schema_id = client.register_schema(subject, Schema(json.dumps(CUSTOMER_V1), "AVRO"))
    assert client.register_schema(subject, Schema(json.dumps(CUSTOMER_V1), "AVRO")) == schema_id
    assert _schema_by_id(client, schema_id) == CUSTOMER_V1
    latest = client.get_latest_version(subject)
    assert (latest.schema_id, latest.version) == (schema_id, 1)
    assert client.test_compatibility(subject, Schema(json.dumps(CUSTOMER_V2), "AVRO"))
    assert not client.test_compatibility(subject, Schema(json.dumps(CUSTOMER_BROKEN), "AVRO"))
    assert client.get_compatibility() == "BACKWARD"
    client.set_compatibility(subject, "FULL")
    assert client.get_compatibility(subject) == "FULL"
    client.set_compatibility(subject, "BACKWARD")
    v2_id = client.register_schema(subject, Schema(json.dumps(CUSTOMER_V2), "AVRO"))
    assert v2_id != schema_id
    assert _client(settings).get_latest_version(subject).version == 2  # a fresh client: no cache


def test_up_again_leaves_healthy_services_alone(settings: Settings, running: list[ServiceStatus]) -> None:
    """A second ``up`` while both run keeps the same processes."""
    again = stack.up(settings, PROJECT_ROOT, **JARS)
    assert [s.pid for s in again] == [s.pid for s in running]
    assert stack.ps(settings, PROJECT_ROOT) == again


def test_schemas_survive_a_restart_on_the_same_data_dir(
    settings: Settings, running: list[ServiceStatus]
) -> None:
    """Schemas registered before ``down`` are found by id after ``up`` on the same data dir."""
    subject = "unsilo.raw.hr.employees-value"
    schema_id = _client(settings).register_schema(subject, Schema(json.dumps(EMPLOYEE), "AVRO"))
    cluster_id_file = Path(settings.local.data_dir) / "kafka" / "cluster.id"
    cluster_id = cluster_id_file.read_text(encoding="utf-8")

    stopped = stack.down(settings, PROJECT_ROOT, **JARS)
    assert [s.running for s in stopped] == [False, False]
    assert not any((Path(settings.local.data_dir) / "run").glob("*.pid"))

    restarted = stack.up(settings, PROJECT_ROOT, **JARS)
    assert all(s.running for s in restarted)
    assert cluster_id_file.read_text(encoding="utf-8") == cluster_id  # reused, not reformatted
    client = _client(settings)
    assert _schema_by_id(client, schema_id) == EMPLOYEE
    assert client.get_latest_version(subject).schema_id == schema_id
    assert set(client.get_subjects()) >= {subject, "unsilo.raw.crm.customers-value"}
    assert client.get_compatibility() == "BACKWARD"

    stack.down(settings, PROJECT_ROOT, **JARS)
    assert not any(s.running for s in stack.ps(settings, PROJECT_ROOT))


def test_a_service_is_not_declared_dead_before_it_execs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between fork and exec a new child's argv is still ours, without the service's marker: the
    start must not read that as 'exited during start-up' (it left the broker running, orphaned)."""
    import sys

    from hub.local import process

    service = process.ManagedProcess("sleeper", tmp_path, "unsilo-test-sleeper")
    pid = service.start(
        [sys.executable, "-c", "import time; time.sleep(30)", "unsilo-test-sleeper"], cwd=tmp_path
    )
    try:
        monkeypatch.setattr(
            process, "_cmdline", lambda _pid: [sys.executable, "-m", "pytest"]
        )  # not exec'd yet

        assert service.pid() == pid
        assert service.pid_file.exists()
    finally:
        monkeypatch.undo()
        service.stop(5)
    assert service.pid() is None
