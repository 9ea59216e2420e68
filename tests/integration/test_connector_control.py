"""Operators steer a running connector: pause, resume, and re-snapshot one table."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub.config import Settings
from hub.kafka.topics import raw_topic
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from hub.status import load_statuses
from tests.support import sqlite_source, topic_messages, unique, wait_for, write_config

pytestmark = pytest.mark.integration


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def insert(db: Path, ticket: int) -> None:
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO sales VALUES (?, 1.00)", (ticket,))
    conn.commit()
    conn.close()


def test_pause_resume_and_resnapshot_a_running_connector(settings: Settings, tmp_path: Path) -> None:
    """A paused connector publishes nothing until resumed, then catches up; a re-snapshot re-reads."""
    db = tmp_path / "pos.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE sales (ticket INTEGER PRIMARY KEY, amount DECIMAL(8,2))")
    conn.commit()
    conn.close()
    insert(db, 1)
    system = unique("pos")
    source = sqlite_source(unique("till"), system, db, ["sales"])
    config = write_config(settings.model_copy(update={"sources": [source]}), tmp_path / "unsilo.yaml")
    topic = raw_topic(system, "sales")
    process = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "-c", str(config), "run", source.name],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "connector.log", "wb"),  # noqa: SIM115
    )
    try:
        wait_for(lambda: len(topic_messages(settings.kafka, topic)) == 1, what="the snapshot")

        assert cli(config, "pause", source.name).returncode == 0
        wait_for(lambda: load_statuses(settings.kafka)[source.name].state == "paused", what="paused")
        insert(db, 2)
        time.sleep(2)
        assert len(topic_messages(settings.kafka, topic)) == 1, "a paused connector published"

        assert cli(config, "resume", source.name).returncode == 0
        wait_for(lambda: len(topic_messages(settings.kafka, topic)) == 2, what="catching up after resume")

        assert cli(config, "snapshot", f"{source.name}.sales").returncode == 0
        wait_for(lambda: len(topic_messages(settings.kafka, topic)) == 4, what="the re-snapshot")
    finally:
        process.terminate()
        process.wait(30)

    serde = AvroSerde(ConfluentRegistry(settings.registry))
    ops = [serde.decode(m.value())["op"] for m in topic_messages(settings.kafka, topic)]
    assert ops == ["r", "c", "r", "r"]
    assert cli(config, "snapshot", f"{source.name}.nope").returncode == 2
