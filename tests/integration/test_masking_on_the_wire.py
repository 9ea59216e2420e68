"""Masked columns never reach Kafka in clear: the raw topic (and the DLQ) read byte by byte."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from connectors.runner import ConnectorRunner
from hub.config import Settings, SourceSettings, TableSettings
from hub.kafka.topics import dlq_topic, raw_topic
from tests.fixtures_postgres import run_sql as pg_sql
from tests.support import topic_messages, unique

pytestmark = pytest.mark.integration

SALARY = "987654.32"
NATIONAL_ID = "NID-55-0042-XYZ"
IBAN = "FR7630006000011234567890189"


def test_masked_values_are_nowhere_in_the_topic_bytes(settings: Settings, tmp_path: Path) -> None:
    """After snapshot and an update, no record key, value or header holds a masked value in clear."""
    db = tmp_path / "hr.db"
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE emp (empno INTEGER PRIMARY KEY, ename TEXT, sal VARCHAR(20), nid TEXT)"
    )  # text: in clear it would show
    conn.execute("INSERT INTO emp VALUES (7839, 'KING', ?, ?)", (SALARY, NATIONAL_ID))
    conn.commit()
    system = unique("hr")
    table = TableSettings(name="emp", mask={"sal": "drop", "nid": "hash"})
    source = SourceSettings(
        name=unique("hrsrc"), system=system, kind="sqlite", url=str(db), tables=[table], mask_key="k"
    )
    configured = settings.model_copy(update={"sources": [source]})
    ConnectorRunner(configured, source).run(until_idle=True)
    conn.execute("UPDATE emp SET ename = 'KING JR', sal = '987655.32' WHERE empno = 7839")
    conn.commit()
    conn.close()
    ConnectorRunner(configured, source).run(until_idle=True)

    messages = topic_messages(settings.kafka, raw_topic(system, "emp"))
    blobs = [m.key() or b"" for m in messages] + [m.value() or b"" for m in messages]
    blobs += [value for m in messages for _, value in (m.headers() or [])]

    assert len(messages) == 2
    assert b"KING JR" in b"".join(blobs)  # the unmasked column is there...
    for secret in (SALARY, "987655.32", NATIONAL_ID):
        assert all(secret.encode() not in blob for blob in blobs), secret  # ...the masked ones are not


def wire_bytes(settings: Settings, topic: str) -> list[bytes]:
    """Every key, value and header value of ``topic``'s records."""
    messages = topic_messages(settings.kafka, topic)
    blobs = [m.key() or b"" for m in messages] + [m.value() or b"" for m in messages]
    return blobs + [value or b"" for m in messages for _, value in (m.headers() or [])]


def test_postgres_masked_values_are_nowhere_in_the_topic_bytes(settings: Settings, postgres_db: str) -> None:
    """PostgreSQL capture (snapshot, update, delete with REPLICA IDENTITY FULL before images):
    dropped, hashed and redacted columns never show in clear; the hashed key still joins."""
    pg_sql(
        postgres_db,
        "CREATE TABLE emp (empno integer PRIMARY KEY, ename text, sal numeric(10,2), nid text, iban text)",
    )
    pg_sql(postgres_db, "ALTER TABLE emp REPLICA IDENTITY FULL")
    pg_sql(postgres_db, "INSERT INTO emp VALUES (7839, 'KING', %s, %s, %s)", (SALARY, NATIONAL_ID, IBAN))
    system = unique("hr")
    table = TableSettings(name="emp", mask={"sal": "drop", "nid": "hash", "iban": "redact"})
    source = SourceSettings(
        name=unique("hrsrc"), system=system, kind="postgres", url=postgres_db, tables=[table], mask_key="k"
    )
    configured = settings.model_copy(update={"sources": [source]})
    ConnectorRunner(configured, source).run(until_idle=True)
    pg_sql(postgres_db, "UPDATE emp SET ename = 'KING JR', sal = 987655.32 WHERE empno = 7839")
    pg_sql(postgres_db, "DELETE FROM emp WHERE empno = 7839")
    ConnectorRunner(configured, source).run(until_idle=True)

    blobs = wire_bytes(settings, raw_topic(system, "emp"))
    assert b"KING JR" in b"".join(blobs)  # the unmasked column is there...
    for secret in (SALARY, "987655.32", NATIONAL_ID, IBAN):
        assert all(secret.encode() not in blob for blob in blobs), secret  # ...the masked ones are not
    assert len(topic_messages(settings.kafka, raw_topic(system, "emp"))) == 4  # r, u, d, tombstone


def test_dead_letters_keep_masked_columns_masked(settings: Settings, tmp_path: Path) -> None:
    """A row dead-lettered for another column holds its masked columns hashed or left out in the DLQ."""
    db = tmp_path / "hr.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE emp (empno INTEGER PRIMARY KEY, hired DATE, sal VARCHAR(20), nid TEXT)")
    conn.execute("INSERT INTO emp VALUES (7839, 'soon', ?, ?)", (SALARY, NATIONAL_ID))  # 'soon': no date
    conn.commit()
    conn.close()
    table = TableSettings(name="emp", mask={"sal": "drop", "nid": "hash"})
    source = SourceSettings(
        name=unique("hrsrc"), system=unique("hr"), kind="sqlite", url=str(db), tables=[table], mask_key="k"
    )
    stats = ConnectorRunner(settings.model_copy(update={"sources": [source]}), source).run(until_idle=True)

    blobs = wire_bytes(settings, dlq_topic(source.name))
    assert stats.dead_lettered == 1 and b"soon" in b"".join(blobs)
    for secret in (SALARY, NATIONAL_ID):
        assert all(secret.encode() not in blob for blob in blobs), secret
