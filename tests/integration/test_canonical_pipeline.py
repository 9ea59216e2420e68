"""The canonical layer on the demo estate: raw topics mapped exactly once, identities resolved."""

from __future__ import annotations

import collections
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import KafkaException

from connectors.runner import ConnectorRunner
from hub.config import Settings
from hub.errors import ConfigError
from hub.estate import SYSTEMS, TABLES, create_estate
from hub.mapping import DEMO_MAPPINGS, load_mappings
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from hub.status import load_statuses
from projections.canonical.contract import CanonicalTopics
from projections.canonical.transform import canonical_key
from projections.cli_canonical import run_canonical
from projections.identity.app import send_command
from tests.crash_contract import log_end
from tests.support import sqlite_source, topic_messages, unique, wait_for, write_config

pytestmark = pytest.mark.integration


class Estate:
    """The seeded demo estate in tmp_path, captured under unique system names."""

    def __init__(self, settings: Settings, where: Path, *, dirty: bool = True) -> None:
        self.uid = unique("c")
        self.systems = {system: f"{system}_{self.uid}" for system in SYSTEMS}
        self.urls = create_estate(where, 42, dirty=dirty)
        self.dbs = {system: Path(url.removeprefix("sqlite:///")) for system, url in self.urls.items()}
        sources = [
            sqlite_source(unique("src"), self.systems[s], self.dbs[s], list(TABLES[s])) for s in SYSTEMS
        ]
        self.settings = settings.model_copy(update={"sources": sources})
        self.topics = CanonicalTopics(self.uid)
        self.mappings_file = where / "mappings.yaml"
        self.mappings_file.write_text(yaml.safe_dump(self.rename(yaml.safe_load(DEMO_MAPPINGS.read_text()))))
        self.mappings = load_mappings(self.mappings_file)
        self.serde = AvroSerde(ConfluentRegistry(settings.registry))

    def rename(self, node: Any) -> Any:
        """The mapping document with the estate's systems under this test's names."""
        if isinstance(node, dict):
            renamed = {
                self.systems.get(k, k) if isinstance(k, str) else k: self.rename(v) for k, v in node.items()
            }
            for field in ("system",):
                if isinstance(renamed.get(field), str):
                    renamed[field] = self.systems.get(renamed[field], renamed[field])
            return renamed
        if isinstance(node, list):
            return [self.rename(item) for item in node]
        return node

    def capture(self) -> None:
        for source in self.settings.sources:
            ConnectorRunner(self.settings, source).run(until_idle=True)

    def canonicalize(self, **options: Any) -> dict[str, int]:
        return run_canonical(
            self.settings,
            mappings=self.mappings_file,
            namespace=self.uid,
            until_idle=True,
            max_seconds=180,
            **options,
        )

    def expected_keys(self, entity: str) -> collections.Counter[str]:
        """The canonical keys of every source row mapped to ``entity`` (the dirty row excluded)."""
        keys: collections.Counter[str] = collections.Counter()
        for mapping in (m for m in self.mappings if m.entity == entity):
            system = next(s for s, renamed in self.systems.items() if renamed == mapping.system)
            conn = sqlite3.connect(self.dbs[system])
            conn.row_factory = sqlite3.Row
            for row in conn.execute(f'SELECT * FROM "{mapping.table}"'):
                if dict(row).get("HIREDATE") == "20230229":
                    continue
                keys[canonical_key(mapping, dict(row))] += 1
            conn.close()
        return keys

    def keys_in(self, entity: str) -> collections.Counter[str]:
        messages = topic_messages(self.settings.kafka, self.topics.entity(entity))
        return collections.Counter(self.serde.decode(m.key())["key"] for m in messages)

    def links(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """Every identity record in order, and the latest link per source key."""
        history = [
            self.serde.decode(m.value()) for m in topic_messages(self.settings.kafka, self.topics.identity)
        ]
        return history, {link["source_key"]: link for link in history}


ENTITIES = [
    "Customer",
    "Invoice",
    "Payment",
    "Department",
    "Employee",
    "Product",
    "Store",
    "Order",
    "OrderLine",
    "Sale",
    "StockMovement",
]


@pytest.fixture
def estate(settings: Settings, tmp_path: Path) -> Estate:
    estate = Estate(settings, tmp_path / "estate")
    estate.capture()
    return estate


def test_every_row_once_dirty_row_in_dlq_and_identities(estate: Estate) -> None:
    """Every mapped row is in its canonical topic once, the dirty row in the DLQ, customers resolved."""
    result = estate.canonicalize()

    for entity in ENTITIES:
        expected = estate.expected_keys(entity)
        assert expected, entity
        assert estate.keys_in(entity) == expected, entity
    (dead,) = topic_messages(estate.settings.kafka, estate.topics.dlq)
    headers = dict(dead.headers() or [])
    assert b"HIREDATE" in headers["unsilo.error"] and b"20230229" in headers["unsilo.error"]
    assert headers["unsilo.mapping"].decode().endswith(".EMP->Employee")
    status = load_statuses(estate.settings.kafka)[estate.topics.status_key]
    assert status.dead_lettered == 1 and status.events == result["raw_events"]
    assert sum(t.rows for t in status.tables.values()) == sum(
        sum(estate.expected_keys(e).values()) for e in ENTITIES
    )

    _, latest = estate.links()
    customers = {k: v for k, v in latest.items() if v["entity"] == "Customer"}
    parties = {tuple(v["members"]) for v in customers.values()}
    pairs = [p for p in parties if len(p) == 2]
    assert len(customers) == sum(estate.expected_keys("Customer").values())
    assert all(len(p) <= 2 for p in parties)
    assert len(pairs) == 15 + 8 + 8 + 8
    assert all(p[0].startswith("fin:") and p[1].startswith("sales:") for p in pairs)
    alone = [p[0] for p in parties if len(p) == 1]
    assert sum(k.startswith("sales:") for k in alone) == 12 and sum(k.startswith("fin:") for k in alone) == 9
    rules = collections.Counter(customers[p[0]]["rule"] for p in pairs)
    assert rules == {"reference": 23, "tax_id": 8, "email": 8}
    employees = [v for v in latest.values() if v["entity"] == "Employee"]
    assert len(employees) == sum(estate.expected_keys("Employee").values())
    assert all(v["rule"] == "self" and v["members"] == [v["source_key"]] for v in employees)


def test_link_and_unlink_change_the_identity_topic(estate: Estate) -> None:
    """unsilo link joins two lone customers by hand; unlink splits a pair; a restart re-emits nothing else."""
    estate.canonicalize()
    history, latest = estate.links()
    lone = sorted(k for k, v in latest.items() if v["entity"] == "Customer" and len(v["members"]) == 1)
    fin_alone = next(k for k in lone if k.startswith("fin:"))
    sales_alone = next(k for k in lone if k.startswith("sales:"))
    paired = next(v for v in latest.values() if v["rule"] == "reference")
    split_key = next(k for k in paired["members"] if k.startswith("fin:"))
    partner = next(k for k in paired["members"] if k != split_key)

    config = write_config(estate.settings, estate.mappings_file.parent / "unsilo.yaml")
    cli = [sys.executable, "-m", "hub.cli", "-c", str(config)]
    subprocess.run([*cli, "link", fin_alone, sales_alone, "--namespace", estate.uid], check=True, timeout=60)
    send_command(estate.settings, estate.topics, "unlink", [split_key])
    estate.canonicalize()

    after, latest = estate.links()
    new = after[len(history) :]
    assert sorted(link["source_key"] for link in new) == sorted([fin_alone, sales_alone, split_key, partner])
    assert (
        latest[fin_alone]["members"] == sorted([fin_alone, sales_alone])
        and latest[fin_alone]["rule"] == "manual"
    )
    assert latest[split_key]["members"] == [split_key] and latest[split_key]["rule"] == "manual"
    assert latest[partner]["members"] == [partner] and latest[partner]["rule"] == "self"


def test_mapping_naming_a_missing_column_fails_with_its_name(estate: Estate) -> None:
    """A mapping that reads a column the captured table lacks fails validation naming that column."""
    document = yaml.safe_load(estate.mappings_file.read_text())
    document["mappings"][0]["fields"]["name"] = {"column": "CUSTOMER_NAME", "convert": "strip"}
    broken = estate.mappings_file.with_name("broken.yaml")
    broken.write_text(yaml.safe_dump(document))

    with pytest.raises(ConfigError, match="CUSTOMER_NAME") as raised:
        run_canonical(estate.settings, mappings=broken, namespace=estate.uid, until_idle=True)
    assert raised.value.exit_code == 2


def test_sigkill_mid_run_then_restart_leaves_each_record_once(estate: Estate) -> None:
    """A SIGKILL of `unsilo canonicalize` mid-run and a restart leave every canonical record exactly once."""
    config = write_config(estate.settings, estate.mappings_file.parent / "unsilo.yaml")
    command = [
        sys.executable,
        "-m",
        "hub.cli",
        "-c",
        str(config),
        "canonicalize",
        "--mappings",
        str(estate.mappings_file),
    ]
    command += ["--namespace", estate.uid]
    process = subprocess.Popen(
        [*command, "--batch-size", "20"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    total = sum(sum(estate.expected_keys(entity).values()) for entity in ENTITIES)

    def produced() -> int:
        return sum(len(topic_messages(estate.settings.kafka, estate.topics.entity(e))) for e in ENTITIES)

    def committed_something() -> bool:
        # cheap (watermarks only), so the kill lands right after the first transactions
        try:
            return any(log_end(estate.settings.kafka, estate.topics.entity(e)) > 0 for e in ENTITIES)
        except KafkaException:  # a topic being created has no leader yet
            return False

    try:
        wait_for(committed_something, 120, interval_s=0.02, what="the first canonical records")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    partial = produced()

    subprocess.run([*command, "--until-idle"], check=True, timeout=240, stdout=subprocess.DEVNULL)

    assert 0 < partial < total, "the kill did not come mid-run"
    for entity in ENTITIES:
        assert estate.keys_in(entity) == estate.expected_keys(entity), entity
