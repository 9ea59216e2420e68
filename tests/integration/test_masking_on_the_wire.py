"""Masked columns never reach Kafka in clear: the raw topic is read byte by byte."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from connectors.runner import ConnectorRunner
from hub.config import Settings, SourceSettings, TableSettings
from hub.kafka.topics import raw_topic
from tests.support import topic_messages, unique

pytestmark = pytest.mark.integration

SALARY = "987654.32"
NATIONAL_ID = "NID-55-0042-XYZ"


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
