"""Kafka security passthrough: the hub runs against a broker that requires SASL/SCRAM and ACLs.

A second broker of the test's own (never the shared one) has a SASL_PLAINTEXT listener with
SCRAM-SHA-512, the StandardAuthorizer, no access without an ACL, and ACLs for the hub's
principal only: topics prefixed ``unsilo.`` and ``_unsilo.``, transactional ids prefixed
``unsilo-`` and groups prefixed ``unsilo``.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from pydantic import SecretStr

from connectors.runner import ConnectorRunner
from hub.config import KafkaSettings, LocalSettings, Settings
from hub.errors import AuthenticationError, AuthorizationError, LogUnavailableError
from hub.kafka.admin import KafkaAdmin
from hub.kafka.topics import raw_topic
from hub.local.kafka import LocalKafka
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from tests.fixtures_kafka_sasl import MECHANISM, SaslKafka, ScramUser
from tests.support import sqlite_source, topic_messages, unique, write_config

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ADMIN = ScramUser("admin", "admin-Secret-4821")
HUB = ScramUser("unsilo", "hub-Secret-7713")
STRANGER = ScramUser("stranger", "stranger-Secret-1290")  # authenticates, but has no ACL


def hub_acls(principal: str) -> list[AclBinding]:
    allow = AclPermissionType.ALLOW
    prefixed = ResourcePatternType.PREFIXED
    resources = [
        (ResourceType.TOPIC, "unsilo."),
        (ResourceType.TOPIC, "_unsilo."),
        (ResourceType.TRANSACTIONAL_ID, "unsilo-"),
        (ResourceType.GROUP, "unsilo"),
    ]
    return [
        AclBinding(kind, name, prefixed, principal, "*", AclOperation.ALL, allow) for kind, name in resources
    ]


@pytest.fixture(scope="module")
def broker() -> Iterator[SaslKafka]:
    """The SASL/ACL broker with the hub's ACLs, for this module."""
    local = LocalKafka(LocalSettings(data_dir=Path(".unsilo")), PROJECT_ROOT)
    local.ensure_installed()
    kafka = SaslKafka(local.lib_dir, ADMIN, [HUB, STRANGER])
    kafka.start()
    try:
        admin = AdminClient(kafka.client_config(ADMIN))
        for future in admin.create_acls(hub_acls(f"User:{HUB.name}")).values():
            future.result(timeout=30)
        yield kafka
    finally:
        kafka.stop()


def kafka_settings(
    broker: SaslKafka, user: ScramUser | None, protocol: str = "SASL_PLAINTEXT"
) -> KafkaSettings:
    if user is None:
        return KafkaSettings(bootstrap_servers=broker.bootstrap_servers, security_protocol="PLAINTEXT")
    return KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers,
        security_protocol=protocol,  # type: ignore[arg-type]
        sasl_mechanism=MECHANISM,
        sasl_username=user.name,
        sasl_password=SecretStr(user.password),
    )


def shop(tmp_path: Path) -> Path:
    db = tmp_path / "shop.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total NUMERIC(10,2))")
    conn.executemany("INSERT INTO orders VALUES (?, ?)", [(1, "9.90"), (2, "19.90"), (3, "29.90")])
    conn.commit()
    conn.close()
    return db


def test_hub_principal_captures_a_table_through_sasl_and_acls(
    broker: SaslKafka, settings: Settings, tmp_path: Path
) -> None:
    """With SCRAM-SHA-512 credentials and only its ACLs, a SQLite connector publishes its snapshot
    and a change; they are read back with the same principal."""
    system = unique("shop")
    source = sqlite_source(unique("shopsrc"), system, shop(tmp_path), ["orders"])
    configured = settings.model_copy(update={"kafka": kafka_settings(broker, HUB), "sources": [source]})
    ConnectorRunner(configured, source).run(until_idle=True)
    conn = sqlite3.connect(tmp_path / "shop.db")
    conn.execute("UPDATE orders SET total = 39.90 WHERE id = 3")
    conn.commit()
    conn.close()
    ConnectorRunner(configured, source).run(until_idle=True)

    serde = AvroSerde(ConfluentRegistry(settings.registry))
    events = [serde.decode(m.value()) for m in topic_messages(configured.kafka, raw_topic(system, "orders"))]
    assert [(e["op"], e["after"]["id"]) for e in events] == [("r", 1), ("r", 2), ("r", 3), ("u", 3)]
    assert broker.started_in is not None and broker.started_in < 30


def test_client_without_credentials_is_refused_with_a_clear_error(broker: SaslKafka, tmp_path: Path) -> None:
    """PLAINTEXT on the SASL port and a wrong password are refused, each saying what to check
    (a wrong password is not retried); `unsilo validate` prints it without a traceback."""
    wrong = ScramUser(HUB.name, "not-the-password")

    with pytest.raises(LogUnavailableError) as plaintext:
        KafkaAdmin(kafka_settings(broker, None)).ensure_reachable(timeout_s=5)
    with pytest.raises(AuthenticationError) as bad_password:
        KafkaAdmin(kafka_settings(broker, wrong)).ensure_reachable(timeout_s=5)
    config = write_config(Settings(kafka=kafka_settings(broker, None)), tmp_path / "unsilo.yaml")
    validate = subprocess.run(
        [sys.executable, "-m", "hub.cli", "--config", str(config), "validate"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert "security protocol" in plaintext.value.message
    assert "SASL authentication error" in bad_password.value.message
    assert "kafka.sasl_password" in (bad_password.value.hint or "")
    assert "kafka.security_protocol" in (plaintext.value.hint or "")
    assert validate.returncode == 1 and "security protocol" in validate.stderr
    assert "Traceback" not in validate.stderr


def test_principal_without_acls_gets_an_authorization_error(
    broker: SaslKafka, settings: Settings, tmp_path: Path
) -> None:
    """An authenticated principal the ACLs do not name cannot run a connector: AuthorizationError
    naming the denied operation, with the ACLs to grant as the hint."""
    source = sqlite_source(unique("shopsrc"), unique("shop"), shop(tmp_path), ["orders"])
    configured = settings.model_copy(update={"kafka": kafka_settings(broker, STRANGER), "sources": [source]})

    started = time.monotonic()
    with pytest.raises(AuthorizationError) as denied:
        ConnectorRunner(configured, source).run(until_idle=True, max_seconds=30)

    assert "AUTHORIZATION_FAILED" in denied.value.message
    assert "'_unsilo.'" in (denied.value.hint or "")
    assert time.monotonic() - started < 20  # refused at once, not retried
