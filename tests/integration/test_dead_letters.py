"""A row that cannot become an event goes to the source's DLQ with the reason; the table goes on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from connectors.runner import ConnectorRunner
from hub.config import Settings
from hub.kafka.topics import dlq_topic, raw_topic
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from tests.support import sqlite_source, topic_messages, unique

pytestmark = pytest.mark.integration


def test_unencodable_row_is_dead_lettered_with_reason_and_position(
    settings: Settings, tmp_path: Path
) -> None:
    """A DATE column holding 'soon' lands in unsilo.dlq.<source> with reason and position; other rows flow."""
    db = tmp_path / "hr.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE emp (empno INTEGER PRIMARY KEY, hired DATE)")
    conn.commit()
    system = unique("hr")
    source = sqlite_source(unique("hrsrc"), system, db, ["emp"])
    configured = settings.model_copy(update={"sources": [source]})
    ConnectorRunner(configured, source).run(until_idle=True)
    conn.execute("INSERT INTO emp VALUES (1, '2024-02-29')")
    conn.execute("INSERT INTO emp VALUES (2, 'soon')")  # SQLite accepts it; Avro's date cannot
    conn.execute("INSERT INTO emp VALUES (3, '2024-03-01')")
    conn.commit()
    conn.close()

    stats = ConnectorRunner(configured, source).run(until_idle=True)

    serde = AvroSerde(ConfluentRegistry(settings.registry))
    good = [
        serde.decode(m.value())["after"]["empno"]
        for m in topic_messages(settings.kafka, raw_topic(system, "emp"))
    ]
    dead = topic_messages(settings.kafka, dlq_topic(source.name))
    headers = dict(dead[0].headers() or [])
    assert good == [1, 3]
    assert stats.dead_lettered == 1 and len(dead) == 1
    assert b"hired" in headers["unsilo.error"] and headers["unsilo.table"] == b"emp"
    assert int(headers["unsilo.position"]) > 0
    assert b'"soon"' in (dead[0].value() or b"")
