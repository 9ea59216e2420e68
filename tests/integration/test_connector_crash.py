"""Exactly once across crashes: SIGKILL the connector while it streams, restart, count."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from connectors.runner import ConnectorRunner
from hub.config import Settings
from hub.kafka.topics import raw_topic
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from tests.support import sqlite_source, topic_messages, unique, write_config

pytestmark = pytest.mark.integration

ROWS = 40
UPDATES = 4000
KILLS = 5


def updater(db: Path, seed: int, stop: threading.Event) -> None:
    """Commit ``UPDATES`` single-row increments at random keys, one per transaction."""
    rng = random.Random(seed)
    conn = sqlite3.connect(db, timeout=30)
    for _ in range(UPDATES):
        if stop.is_set():
            break
        conn.execute("UPDATE counters SET version = version + 1 WHERE id = ?", (rng.randrange(ROWS),))
        conn.commit()
        time.sleep(0.0005)
    conn.close()


def start_connector(config: Path, source: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "-c", str(config), "run", source],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),
    )


def test_sigkill_while_streaming_loses_and_duplicates_nothing(settings: Settings, tmp_path: Path) -> None:
    """After repeated SIGKILLs of the connector mid-stream, every update is in the topic once, in order."""
    db = tmp_path / "counters.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE counters (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)")
    conn.executemany("INSERT INTO counters VALUES (?, 0)", [(i,) for i in range(ROWS)])
    conn.commit()
    conn.close()
    system = unique("ops")
    source = sqlite_source(unique("ctr"), system, db, ["counters"], batch_size=25)
    configured = settings.model_copy(update={"sources": [source]})
    config = write_config(configured, tmp_path / "unsilo.yaml")
    ConnectorRunner(configured, source).run(until_idle=True)  # snapshot at version 0, triggers in
    log = tmp_path / "connector.log"
    rng = random.Random(20261127)

    stop = threading.Event()
    workload = threading.Thread(target=updater, args=(db, 1, stop))
    workload.start()
    kills = 0
    try:
        while kills < KILLS:
            process = start_connector(config, source.name, log)
            time.sleep(rng.uniform(2.0, 4.0))
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            kills += 1
    finally:
        workload.join(120)
        stop.set()
    final = start_connector(config, source.name, log)
    try:
        conn = sqlite3.connect(db)
        expected = dict(conn.execute("SELECT id, version FROM counters"))
        conn.close()
        serde = AvroSerde(ConfluentRegistry(settings.registry))
        topic = raw_topic(system, "counters")
        deadline = time.monotonic() + 120
        while True:
            versions: dict[int, list[int]] = defaultdict(list)
            for message in topic_messages(settings.kafka, topic):
                value = serde.decode(message.value())
                if value is not None and value["op"] == "u":
                    versions[value["after"]["id"]].append(value["after"]["version"])
            caught_up = all((versions[k][-1] if versions[k] else 0) == v for k, v in expected.items())
            if caught_up or time.monotonic() > deadline:
                break
            time.sleep(1.0)
    finally:
        final.send_signal(signal.SIGTERM)
        final.wait(30)

    assert kills == KILLS
    lost_or_duplicated = {
        key: seen for key, seen in versions.items() if seen != list(range(1, expected[key] + 1))
    }
    assert not lost_or_duplicated, (
        f"keys whose updates are not exactly 1..N in order: {sorted(lost_or_duplicated)[:5]}"
    )
    assert sum(len(seen) for seen in versions.values()) == sum(expected.values())
