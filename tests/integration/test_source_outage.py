"""An unreachable source: the connector retries with backoff and says so, then catches up."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub.config import Settings
from hub.kafka.topics import raw_topic
from hub.status import load_statuses
from tests.support import sqlite_source, topic_messages, unique, wait_for, write_config

pytestmark = pytest.mark.integration


def test_missing_source_is_retried_and_shown_then_captured(settings: Settings, tmp_path: Path) -> None:
    """With the database missing the connector keeps running, shows 'retrying' and why, then captures."""
    db = tmp_path / "late.db"
    system = unique("pos")
    source = sqlite_source(unique("late"), system, db, ["sales"])
    config = write_config(settings.model_copy(update={"sources": [source]}), tmp_path / "unsilo.yaml")
    log = tmp_path / "connector.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "-c", str(config), "run", source.name],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "wb"),  # noqa: SIM115
    )
    try:
        status = wait_for(
            lambda: load_statuses(settings.kafka).get(source.name), timeout_s=60, what="a status"
        )
        assert status.state == "retrying" and "does not exist" in (status.reason or "")
        time.sleep(2)
        assert process.poll() is None, "the connector must not exit or crash-loop"

        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE sales (ticket INTEGER PRIMARY KEY, amount DECIMAL(8,2))")
        conn.execute("INSERT INTO sales VALUES (1, 9.99)")
        conn.commit()
        conn.close()

        wait_for(
            lambda: len(topic_messages(settings.kafka, raw_topic(system, "sales"))) == 1,
            timeout_s=90,
            what="the row to be captured once the database exists",
        )
        wait_for(
            lambda: load_statuses(settings.kafka)[source.name].state == "running",
            timeout_s=30,
            what="the status to say running",
        )
    finally:
        process.terminate()
        process.wait(30)
    assert "connector_retrying" in log.read_text()
