"""Table and column names from the config are quoted by the SQL layer, never interpolated.

A table named ``Order "Lines"; DROP TABLE sentinel;--`` with columns ``line "no"``,
``qty; DELETE FROM sentinel``, ``prix unitaire`` and ``größe`` is captured by the SQLite,
PostgreSQL and query-polling connectors: snapshot and changes arrive with the right values
under a topic name made safe, and the sentinel table is untouched afterwards.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.runner import ConnectorRunner
from hub.avro_types import avro_name
from hub.config import Settings, SourceSettings
from hub.kafka.admin import KafkaAdmin
from hub.kafka.topics import raw_topic
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from tests.fixtures_postgres import run_sql as pg_sql
from tests.support import topic_messages, unique

pytestmark = pytest.mark.integration

TABLE = 'Order "Lines"; DROP TABLE sentinel;--'
KEY, QTY, PRICE, SIZE, MODIFIED = (
    'line "no"',
    "qty; DELETE FROM sentinel",
    "prix unitaire",
    "größe",
    "modifié à",
)


def q(name: str) -> str:
    """A quoted identifier for the test's own SQL (the same rule in SQLite and PostgreSQL)."""
    return '"' + name.replace('"', '""') + '"'


COLUMNS = f"{q(KEY)}, {q(QTY)}, {q(PRICE)}, {q(SIZE)}"
DEFINITION = f"{q(KEY)} integer PRIMARY KEY, {q(QTY)} integer, {q(PRICE)} text, {q(SIZE)} text"
INSERT = f"INSERT INTO {q(TABLE)} ({COLUMNS}) VALUES "


def events(settings: Settings, system: str) -> list[tuple[str, tuple[Any, ...] | None]]:
    """(op, (key, qty, price, size) of the row image) of each event in the table's raw topic."""
    serde = AvroSerde(ConfluentRegistry(settings.registry))
    found = []
    for message in topic_messages(settings.kafka, raw_topic(system, TABLE)):
        if message.value() is None:
            continue
        event = serde.decode(message.value())
        row = event["after"] or event["before"]
        found.append((event["op"], tuple(row.get(avro_name(c)) for c in (KEY, QTY, PRICE, SIZE))))
    return found


def capture(settings: Settings, source: SourceSettings, change: Callable[[], None]) -> None:
    """A snapshot run, ``change`` in the source, and a run that publishes it."""
    configured = settings.model_copy(update={"sources": [source]})
    ConnectorRunner(configured, source).run(until_idle=True)
    change()
    ConnectorRunner(configured, source).run(until_idle=True)


SNAPSHOT = [("r", (1, 5, "9,90 €", "XL")), ("r", (2, 1, "0,50 €", "S"))]
CHANGED = [("c", (3, 7, "1,00 €", "M")), ("u", (1, 6, "9,90 €", "XXL"))]


def test_sqlite_triggers_capture_hostile_names(settings: Settings, tmp_path: Path) -> None:
    """Triggers on the hostile table capture snapshot, insert, update and delete; sentinel intact."""
    db = tmp_path / "legacy.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE sentinel (id INTEGER PRIMARY KEY)")
    conn.execute("INSERT INTO sentinel VALUES (42)")
    conn.execute(f"CREATE TABLE {q(TABLE)} ({DEFINITION})")
    conn.execute(INSERT + "(1, 5, '9,90 €', 'XL'), (2, 1, '0,50 €', 'S')")
    system = unique("legacy")
    source = SourceSettings(name=unique("hostile"), system=system, kind="sqlite", url=str(db), tables=[TABLE])

    def change() -> None:
        conn.execute(INSERT + "(3, 7, '1,00 €', 'M')")
        conn.execute(f"UPDATE {q(TABLE)} SET {q(QTY)} = 6, {q(SIZE)} = 'XXL' WHERE {q(KEY)} = 1")
        conn.execute(f"DELETE FROM {q(TABLE)} WHERE {q(KEY)} = 2")

    capture(settings, source, change)

    assert events(settings, system) == [*SNAPSHOT, *CHANGED, ("d", (2, 1, "0,50 €", "S"))]  # before image
    assert raw_topic(system, TABLE) in KafkaAdmin(settings.kafka).topic_names()
    assert conn.execute("SELECT id FROM sentinel").fetchall() == [(42,)]
    conn.close()


def test_postgres_logical_replication_captures_hostile_names(settings: Settings, postgres_db: str) -> None:
    """pgoutput capture of the hostile table: snapshot, insert, update, delete; sentinel intact."""
    pg_sql(postgres_db, "CREATE TABLE sentinel (id integer PRIMARY KEY)")
    pg_sql(postgres_db, "INSERT INTO sentinel VALUES (42)")
    pg_sql(
        postgres_db,
        f"CREATE TABLE {q(TABLE)} ({DEFINITION})",
    )
    pg_sql(postgres_db, f"ALTER TABLE {q(TABLE)} REPLICA IDENTITY FULL")
    pg_sql(postgres_db, INSERT + "(1, 5, '9,90 €', 'XL'), (2, 1, '0,50 €', 'S')")
    system, name = unique("legacy"), unique("hostile")
    source = SourceSettings(
        name=name, system=system, kind="postgres", url=postgres_db, tables=[TABLE], heartbeat_interval_s=1
    )

    def change() -> None:
        pg_sql(postgres_db, INSERT + "(3, 7, '1,00 €', 'M')")
        pg_sql(postgres_db, f"UPDATE {q(TABLE)} SET {q(QTY)} = 6, {q(SIZE)} = 'XXL' WHERE {q(KEY)} = 1")
        pg_sql(postgres_db, f"DELETE FROM {q(TABLE)} WHERE {q(KEY)} = 2")

    capture(settings, source, change)

    assert events(settings, system) == [*SNAPSHOT, *CHANGED, ("d", (2, 1, "0,50 €", "S"))]
    assert pg_sql(postgres_db, "SELECT id FROM sentinel") == [(42,)]
    assert pg_sql(postgres_db, f"SELECT count(*) FROM {q(TABLE)}") == [(2,)]


def test_sql_poll_captures_hostile_names(settings: Settings, tmp_path: Path) -> None:
    """Query polling by (timestamp, id) over hostile column names; sentinel intact."""
    db = tmp_path / "legacy.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE sentinel (id INTEGER PRIMARY KEY)")
    conn.execute("INSERT INTO sentinel VALUES (42)")
    conn.execute(
        f"CREATE TABLE {q(TABLE)} ({q(KEY)} INTEGER PRIMARY KEY, {q(QTY)} INTEGER, {q(PRICE)} TEXT, "
        f"{q(SIZE)} TEXT, {q(MODIFIED)} TIMESTAMP DEFAULT '2020-01-01 00:00:00')"
    )
    conn.execute(INSERT + "(1, 5, '9,90 €', 'XL'), (2, 1, '0,50 €', 'S')")
    system = unique("legacy")
    source = SourceSettings(
        name=unique("hostile"),
        system=system,
        kind="sql_poll",
        url=f"sqlite:///{db}",
        tables=[TABLE],
        poll_mode="timestamp+incrementing",
        timestamp_column=MODIFIED,
        incrementing_column=KEY,
        lag_s=0,
        state_dir=tmp_path / "state",
    )

    def change() -> None:
        conn.execute(
            f"INSERT INTO {q(TABLE)} ({COLUMNS}, {q(MODIFIED)}) "
            "VALUES (3, 7, '1,00 €', 'M', '2020-01-02 00:00:00')"
        )
        conn.execute(
            f"UPDATE {q(TABLE)} SET {q(QTY)} = 6, {q(SIZE)} = 'XXL', {q(MODIFIED)} = '2020-01-03 00:00:00' "
            f"WHERE {q(KEY)} = 1"
        )

    capture(settings, source, change)

    assert events(settings, system) == [
        ("c", (1, 5, "9,90 €", "XL")),
        ("c", (2, 1, "0,50 €", "S")),
        ("c", (3, 7, "1,00 €", "M")),
        ("u", (1, 6, "9,90 €", "XXL")),
    ]
    assert conn.execute("SELECT id FROM sentinel").fetchall() == [(42,)]
    conn.close()
