"""Subscribers and auditors on a real capture: the catalog, AsyncAPI, a record's history, the quickstart."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from fastapi.testclient import TestClient
from jsonschema import Draft7Validator
from pydantic import SecretStr

from connectors.runner import ConnectorRunner
from hub.api.app import create_app
from hub.catalog import build_catalog
from hub.config import (
    ApiSettings,
    KafkaSettings,
    LocalSettings,
    ReadStoreSettings,
    RegistrySettings,
    Settings,
)
from hub.history import history
from hub.kafka.topic_facts import TopicFacts, TopicShape
from hub.kafka.topics import raw_topic
from hub.retention_guard import check_retention
from tests.conftest import Stack
from tests.support import run_sql, sqlite_source, topic_messages, unique, write_config

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
SPEC = ROOT / "tests" / "data" / "asyncapi-3.0.0.schema.json"
ROWS = 20


@dataclass(frozen=True)
class Captured:
    settings: Settings
    topic: str
    system: str
    config: Path
    started_ms: int


@pytest.fixture(scope="module")
def captured(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Captured:
    """20 customers snapshotted into a 3-partition raw topic, then customer 7 updated 3 times and deleted."""
    tmp = tmp_path_factory.mktemp("catalog")
    db = tmp / "shop.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, balance DECIMAL(12,2))")
    conn.executemany(
        "INSERT INTO customers VALUES (?, ?, ?)",
        [(i, f"customer {i}", f"{i}.50") for i in range(1, ROWS + 1)],
    )
    conn.commit()
    conn.close()
    system = unique("sales")
    source = sqlite_source(unique("shop"), system, db, ["customers"])
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=stack.bootstrap, topic_partitions=3),
        registry=RegistrySettings(url=stack.registry_url),
        local=LocalSettings(data_dir=tmp / ".unsilo"),
        read_store=ReadStoreSettings(url=f"sqlite:///{tmp / 'read.db'}"),
        sources=[source],
    )
    started_ms = int(time.time() * 1000)
    ConnectorRunner(settings, source).run(until_idle=True)
    run_sql(db, "UPDATE customers SET balance = 8.00 WHERE id = 7")
    run_sql(db, "UPDATE customers SET name = 'Ada Lovelace' WHERE id = 7")
    run_sql(db, "UPDATE customers SET name = 'Ada King', balance = 9.25 WHERE id = 7")
    run_sql(db, "DELETE FROM customers WHERE id = 7")
    ConnectorRunner(settings, source).run(until_idle=True)
    return Captured(
        settings,
        raw_topic(system, "customers"),
        system,
        write_config(settings, tmp / "unsilo.yaml"),
        started_ms,
    )


def unsilo(config: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_topics_json_lists_the_captured_table(captured: Captured) -> None:
    """`unsilo topics --json` shows the raw topic's system, table, schemas, partitions, count, last time."""
    done = unsilo(captured.config, "topics", "--json")

    assert done.returncode == 0, done.stderr
    entries = {e["topic"]: e for e in json.loads(done.stdout)["topics"]}
    entry = entries[captured.topic]
    assert (entry["kind"], entry["system"], entry["table"]) == ("raw", captured.system, "customers")
    assert entry["read_models"] == ["mirror"]
    assert entry["key_schema"]["subject"] == f"{captured.topic}-key"
    assert [f["name"] for f in entry["key_schema"]["schema"]["fields"]] == ["id"]
    assert entry["value_schema"]["schema"]["name"] == "Envelope" and entry["value_schema"]["versions"] == [1]
    assert entry["partitions"] == 3
    records = len(topic_messages(captured.settings.kafka, captured.topic))
    assert records == ROWS + 5  # 20 snapshot reads, 3 updates, a delete and its tombstone
    assert records < entry["offsets"] <= records + 3 * 2  # plus a commit marker per partition per transaction
    assert captured.started_ms <= entry["last_event_ms"] <= int(time.time() * 1000)
    assert (entry["retention_ms"], entry["cleanup_policy"], entry["retention_risk"]) == (-1, "delete", [])
    assert not any(t.startswith("_unsilo.") for t in entries)


def test_catalog_and_asyncapi_over_http(captured: Captured) -> None:
    """GET /catalog lists the topic; GET /asyncapi.json is valid AsyncAPI 3.0.0 with its channel."""
    with TestClient(create_app(captured.settings, background=False)) as client:
        catalog = client.get("/catalog")
        asyncapi = client.get("/asyncapi.json")

    assert catalog.status_code == 200, catalog.text
    entry = next(e for e in catalog.json()["topics"] if e["topic"] == captured.topic)
    assert entry["table"] == "customers"
    assert asyncapi.status_code == 200, asyncapi.text
    doc = asyncapi.json()
    validator = Draft7Validator(json.loads(SPEC.read_text(encoding="utf-8")))
    assert [e.message[:200] for e in validator.iter_errors(doc)] == []
    assert doc["channels"][captured.topic]["address"] == captured.topic
    payload = doc["components"]["messages"][captured.topic]["payload"]
    assert payload["schema"]["name"] == "Envelope"


def test_history_over_http_is_for_auditors(captured: Captured) -> None:
    """A subscriber reads the catalog but not history; an auditor gets the versions, 404 for no such key."""
    api = ApiSettings(subscriber_token=SecretStr("sub-token"), auditor_token=SecretStr("audit-token"))
    settings = captured.settings.model_copy(update={"api": api})
    subscriber = {"Authorization": "Bearer sub-token"}
    auditor = {"Authorization": "Bearer audit-token"}
    with TestClient(create_app(settings, background=False)) as client:
        denied = client.get(f"/history/{captured.topic}/7", headers=subscriber)
        found = client.get(f"/history/{captured.system}.customers/7", headers=auditor)
        missing = client.get(f"/history/{captured.topic}/999", headers=auditor)
        anonymous = client.get("/asyncapi.json")

    assert denied.status_code == 403
    assert found.status_code == 200, found.text
    assert [v["op"] for v in found.json()["versions"]] == ["r", "u", "u", "u", "d", "tombstone"]
    assert missing.status_code == 404
    assert f"no record with key 999 in {captured.topic}" in missing.json()["detail"]
    assert anonymous.status_code == 401


def test_history_of_a_record_updated_three_times_then_deleted(captured: Captured) -> None:
    """Snapshot, three updates, delete and tombstone, oldest first, each with what changed."""
    found = history(captured.settings, f"{captured.system}.customers", "7")

    versions = found.to_dict()["versions"]
    assert [v["op"] for v in versions] == ["r", "u", "u", "u", "d", "tombstone"]
    assert versions[0]["diff"] == {"id": [None, 7], "name": [None, "customer 7"], "balance": [None, "7.50"]}
    assert versions[1]["diff"] == {"balance": ["7.50", "8.00"]}
    assert versions[2]["diff"] == {"name": ["customer 7", "Ada Lovelace"]}
    assert versions[3]["diff"] == {"name": ["Ada Lovelace", "Ada King"], "balance": ["8.00", "9.25"]}
    assert versions[4]["diff"] == {"id": [7, None], "name": ["Ada King", None], "balance": ["9.25", None]}
    assert versions[5]["diff"] == {} and versions[5]["tombstone"]
    positions = [v["source_position"] for v in versions[:5]]
    assert all(positions) and positions[1:] == sorted(positions[1:])  # changelog ids in commit order
    assert all(v["source_ts_ms"] for v in versions[:5])
    assert len({v["partition"] for v in versions}) == 1
    assert found.scanned < ROWS + 5  # only the key's partition was read


def test_history_cli_prints_json_and_says_when_a_key_is_unknown(captured: Captured) -> None:
    """`unsilo history <topic> 7 --json` lists the versions; key 999 exits 1 saying nothing matched."""
    done = unsilo(captured.config, "history", captured.topic, "7", "--json")
    missing = unsilo(captured.config, "history", captured.topic, "999")

    assert done.returncode == 0, done.stderr
    assert [v["op"] for v in json.loads(done.stdout)["versions"]] == ["r", "u", "u", "u", "d", "tombstone"]
    assert missing.returncode == 1
    assert f"no record with key 999 in {captured.topic}" in missing.stderr
    assert "records scanned" in missing.stderr


def test_history_of_an_unknown_table_suggests_the_captured_one(captured: Captured) -> None:
    """A misspelt table exits 2 and names the table the user probably meant."""
    done = unsilo(captured.config, "history", f"{captured.system}.customer", "7")

    assert done.returncode == 2
    assert captured.topic in done.stderr


def test_consumer_quickstart_prints_every_change(captured: Captured) -> None:
    """The README's example consumer prints each change's op, key and after-image."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "consumer_quickstart.py"),
            captured.topic,
            "--bootstrap",
            captured.settings.kafka.bootstrap_servers,
            "--registry",
            captured.settings.registry.url,
            "--group",
            unique("quickstart"),
            "--stop-after-idle",
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    lines = [parse_line(line) for line in done.stdout.splitlines()]
    assert sum(1 for op, _, _ in lines if op == "r") == ROWS
    seven = [(op, after) for op, key, after in lines if key == {"id": 7}]
    assert [op for op, _ in seven] == ["r", "u", "u", "u", "d", "tombstone"]
    assert seven[3][1] == {"id": 7, "name": "Ada King", "balance": "9.25"}
    assert seven[4][1] is None  # a delete has no after-image


def parse_line(line: str) -> tuple[str, object, object]:
    """``op key-json [after-json]`` as printed by the quickstart."""
    op, _, rest = line.partition(" ")
    decoder = json.JSONDecoder()
    key, end = decoder.raw_decode(rest)
    after = rest[end:].strip()
    return op, key, json.loads(after) if after else None


@pytest.fixture
def short_lived_topic(stack: Stack) -> Iterator[str]:
    """A raw topic created with retention.ms=1000, as a careless kafka-topics call would."""
    name = raw_topic(unique("guard"), "ledger")
    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config={"retention.ms": "1000"})])[name].result(30)
    yield name
    admin.delete_topics([name])[name].result(30)


def test_retention_guard_flags_a_raw_topic_that_deletes_history(
    captured: Captured, short_lived_topic: str
) -> None:
    """The guard and the catalog both name the topic with retention.ms=1000 and say to set -1."""
    check = check_retention(captured.settings)
    findings = [f for f in check.findings if f.topic == short_lived_topic]
    entry = build_catalog(captured.settings, topics=[short_lived_topic])[0]

    assert [(f.setting, f.value, f.fix) for f in findings] == [("retention.ms", "1000", "retention.ms=-1")]
    assert [f.fix for f in entry.retention_risk] == ["retention.ms=-1"]
    assert check.status == "WARN" and short_lived_topic in check.summary()
    assert (check.gauge()[short_lived_topic], check.gauge()[captured.topic]) == (1, 0)


def test_a_topic_deleted_while_the_catalog_is_built_is_left_out(captured: Captured) -> None:
    """Topics come and go on a busy cluster: one listed then deleted does not fail the others."""
    facts = TopicFacts(captured.settings.kafka)
    live = facts.shapes()[captured.topic]
    gone = TopicShape(raw_topic(unique("gone"), "t"), 1, 1)

    ranges = facts.watermarks([gone, live])
    configs = facts.configs([gone.name, live.name])

    assert sorted(ranges) == [(captured.topic, p) for p in range(3)]
    assert list(configs) == [captured.topic]


def test_retention_risk_shows_in_status_and_metrics(captured: Captured, short_lived_topic: str) -> None:
    """`unsilo status` says WARN naming the topic; /metrics has unsilo_topic_retention_risk 1 for it."""
    from prometheus_client import CollectorRegistry, generate_latest

    from hub.metrics import HubCollector
    from hub.overview import Observer

    observer = Observer(captured.settings)
    try:
        snap = observer.snapshot(lag=False)
    finally:
        observer.close()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(lambda: snap, "test"))
    metrics = generate_latest(registry).decode()

    status = snap.to_dict()["retention"]
    assert status["status"] == "WARN" and short_lived_topic in status["summary"]
    assert f'unsilo_topic_retention_risk{{topic="{short_lived_topic}"}} 1.0' in metrics
    assert f'unsilo_topic_retention_risk{{topic="{captured.topic}"}} 0.0' in metrics
