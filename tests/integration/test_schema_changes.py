"""A DDL change in a captured table: a new schema version when allowed, a stopped table when not."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.runner import ConnectorRunner
from hub.config import Settings
from hub.kafka.topics import quarantine_topic, raw_topic
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde, schema_id_of
from hub.status import load_statuses
from tests.support import sqlite_source, topic_messages, unique, write_config

pytestmark = pytest.mark.integration


def make_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT)")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO items VALUES (1, 'one')")
    conn.commit()
    conn.close()


def sql(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
        conn.commit()
    conn.close()


def test_added_nullable_column_registers_a_new_version(settings: Settings, tmp_path: Path) -> None:
    """ADD COLUMN (nullable) registers a second version; later events carry the column, earlier do not."""
    db = tmp_path / "shop.db"
    make_db(db)
    system = unique("inv")
    source = sqlite_source(unique("src"), system, db, ["items", "notes"])
    configured = settings.model_copy(update={"sources": [source]})
    ConnectorRunner(configured, source).run(until_idle=True)

    runner = ConnectorRunner(configured, source)
    runner.start()
    sql(db, "ALTER TABLE items ADD COLUMN colour TEXT")
    runner.step()  # the connector notices the DDL before the next write
    sql(db, "INSERT INTO items VALUES (2, 'two', 'red')")
    runner.run(until_idle=True)

    serde = AvroSerde(ConfluentRegistry(settings.registry))
    messages = topic_messages(settings.kafka, raw_topic(system, "items"))
    values = [serde.decode(m.value()) for m in messages]
    assert [v["after"]["id"] for v in values] == [1, 2]
    assert "colour" not in values[0]["after"] and values[1]["after"]["colour"] == "red"
    assert len({schema_id_of(m.value()) for m in messages}) == 2


def test_incompatible_change_stops_the_table_and_keeps_its_events(settings: Settings, tmp_path: Path) -> None:
    """A refused change stops that table (reason shown) and quarantines its events; others go on."""
    db = tmp_path / "shop.db"
    make_db(db)
    system = unique("inv")
    source = sqlite_source(unique("src"), system, db, ["items", "notes"])
    configured = settings.model_copy(update={"sources": [source]})
    ConnectorRunner(configured, source).run(until_idle=True)

    runner = ConnectorRunner(configured, source)
    runner.start()
    # NOT NULL without an Avro default: BACKWARD refuses it (old events lack the field).
    sql(db, "ALTER TABLE items ADD COLUMN sku TEXT NOT NULL DEFAULT 'x'")
    runner.step()
    sql(db, "INSERT INTO items VALUES (3, 'three', 'SKU-3')", "INSERT INTO notes VALUES (1, 'still flowing')")
    runner.run(until_idle=True)

    items = topic_messages(settings.kafka, raw_topic(system, "items"))
    notes = topic_messages(settings.kafka, raw_topic(system, "notes"))
    quarantined = topic_messages(settings.kafka, quarantine_topic(source.name))
    status = load_statuses(settings.kafka)[source.name]
    assert len(items) == 1  # only the snapshot read; the new row is not lost...
    assert len(quarantined) == 1 and b"SKU-3" in (quarantined[0].value() or b"")  # ...it is here
    assert dict(quarantined[0].headers() or [])["unsilo.position"]
    assert len(notes) == 1  # the other table goes on
    assert status.tables["items"].state == "stopped"
    assert "compatib" in (status.tables["items"].reason or "")
    assert status.tables["notes"].state == "streaming"

    config = write_config(configured, tmp_path / "unsilo.yaml")
    listing = subprocess.run(
        [sys.executable, "-m", "hub.cli", "-c", str(config), "connectors"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert "stopped" in listing.stdout and "streaming" in listing.stdout, listing.stdout + listing.stderr
