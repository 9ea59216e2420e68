"""`unsilo replay --as-of T`: the mirror as it stood at T, rebuilt later from the log, row for row.

How the live read model is caught "as of T", exactly and deterministically:

- the live mirror (a real `unsilo project mirror` worker) writes its rows and its applied
  offsets in one SQL transaction, so reading both in one read transaction gives a state
  and the exact records it reflects: every offset up to the recorded one, per partition;
- T is the largest Kafka timestamp among those applied records, so every applied record
  is at or before T;
- the state is "as of T" only if no record it does not reflect is at or before T as well:
  a record of the next transaction can be stamped in the same millisecond, or another
  partition may not have been applied as far. The test checks this on the log itself,
  reading uncommitted (open transactions included) every record after the applied
  offsets once the clock has passed T (later records are stamped later still). When it
  does not hold, that snapshot is not an "as of T" state and the test takes another one
  a moment later; it never compares a snapshot it has not proven exact.

The workload keeps writing to the SQLite source through a real connector the whole time;
the replay runs after more changes were captured, so it has to leave them out.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from connectors.runner import ConnectorRunner
from hub.config import KafkaSettings, Settings
from hub.kafka.topics import raw_topic
from projections.point_in_time import iso
from tests.support import query, sqlite_source, unique, wait_for, write_config

pytestmark = pytest.mark.integration

PARTITIONS = 2


def workload_step(conn: sqlite3.Connection, rng: random.Random, next_id: int) -> int:
    """One committed insert, update or delete on ``accounts``; returns the next free id."""
    ids = [row[0] for row in conn.execute("SELECT id FROM accounts")]
    choice = rng.random()
    if not ids or choice < 0.45:
        conn.execute(
            "INSERT INTO accounts VALUES (?, ?, ?)", (next_id, f"owner {next_id}", rng.randint(0, 10**6))
        )
        next_id += 1
    elif choice < 0.85:
        conn.execute("UPDATE accounts SET balance = balance + 1 WHERE id = ?", (rng.choice(ids),))
    else:
        conn.execute("DELETE FROM accounts WHERE id = ?", (rng.choice(ids),))
    conn.commit()
    return next_id


@contextmanager
def running(target: Any, *args: Any) -> Iterator[threading.Event]:
    """``target(stop, *args)`` in a thread until the block ends."""
    stop = threading.Event()
    thread = threading.Thread(target=target, args=(stop, *args), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(60)


def write_continuously(stop: threading.Event, db: Path) -> None:
    rng = random.Random(21)
    conn = sqlite3.connect(db)
    next_id = 10_000
    while not stop.is_set():
        next_id = workload_step(conn, rng, next_id)
        time.sleep(0.01)
    conn.close()


def capture_continuously(stop: threading.Event, runner: ConnectorRunner) -> None:
    threading.Thread(target=lambda: (stop.wait(), runner.stop()), daemon=True).start()
    runner.run()


def live_state(read_db: Path, table: str) -> tuple[list[tuple[Any, ...]], dict[tuple[str, int], int]]:
    """The live mirror's rows and applied offsets, read in one transaction (one consistent state)."""
    conn = sqlite3.connect(read_db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        rows = conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
        offsets = conn.execute(
            'SELECT topic, "partition", "offset" FROM unsilo_projection_positions WHERE projection = ?',
            ("mirror",),
        ).fetchall()
        conn.execute("COMMIT")
    finally:
        conn.close()
    return rows, {(t, p): o for t, p, o in offsets}


def applied_so_far(read_db: Path, table: str) -> dict[tuple[str, int], int]:
    """The live mirror's applied offsets; empty before its table exists."""
    try:
        return live_state(read_db, table)[1]
    except sqlite3.OperationalError:
        return {}


def record_timestamps(kafka: KafkaSettings, topic: str) -> dict[int, list[tuple[int, int]]]:
    """Per partition, (offset, Kafka timestamp) of every record now in ``topic``, open transactions too."""
    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": f"pit-probe-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_uncommitted",
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        found: dict[int, list[tuple[int, int]]] = {p: [] for p in partitions}
        pending = set(found)
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                pending.discard(message.partition())
                continue
            found[message.partition()].append((message.offset(), message.timestamp()[1]))
        assert not pending, "could not read the topic to its end"
        return found
    finally:
        consumer.close()


def as_of_instant(
    kafka: KafkaSettings, topic: str, applied: dict[tuple[str, int], int]
) -> tuple[int | None, str]:
    """T for a live state that applied ``applied``, or None (and why) when that state is not exact."""

    def applied_up_to(partition: int) -> int:
        return applied.get((topic, partition), -1)

    before = time.time() * 1000
    stamps = record_timestamps(kafka, topic)
    mine = [ts for p, records in stamps.items() for offset, ts in records if offset <= applied_up_to(p)]
    if not mine:
        return None, "nothing applied yet"
    as_of = max(mine)
    while time.time() * 1000 <= max(as_of, before) + 1:  # records stamped from now on are after T
        time.sleep(0.002)
    stamps = record_timestamps(kafka, topic)
    late = [(p, o, ts) for p, records in stamps.items() for o, ts in records if o > applied_up_to(p)]
    early = [(p, o, ts) for p, o, ts in late if ts <= as_of]
    if early:
        return None, f"records {early[:3]} at or before T={as_of} were not applied yet"
    return as_of, ""


def unsilo(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def create_source(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT, balance INTEGER)")
    rng = random.Random(20)
    next_id = 1
    for _ in range(300):
        next_id = workload_step(conn, rng, next_id)
    conn.close()


def test_replay_as_of_t_gives_the_rows_the_live_mirror_had_at_t(settings: Settings, tmp_path: Path) -> None:
    """The live mirror recorded at T mid-workload equals `unsilo replay --as-of T`: rows and offsets."""
    db = tmp_path / "bank.db"
    create_source(db)
    system = unique("pit")
    topic = raw_topic(system, "accounts")
    table = f"mirror_{system}_accounts"
    source = sqlite_source(unique("bank"), system, db, ["accounts"], batch_size=20, poll_interval_s=0.05)
    kafka = settings.kafka.model_copy(update={"topic_partitions": PARTITIONS})
    configured = settings.model_copy(update={"sources": [source], "kafka": kafka})
    ConnectorRunner(configured, source).run(until_idle=True)  # the snapshot: the topic exists for the worker
    config = write_config(configured, tmp_path / "unsilo.yaml")
    read_db = Path(configured.read_store.url.removeprefix("sqlite:///"))

    worker = subprocess.Popen(
        # a group of its own: other mirror workers on this broker must not share (and stall) it
        [sys.executable, "-m", "hub.cli", "-c", str(config), "project", "mirror", "--group", unique("pitg")],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "worker.log").open("wb"),
    )
    try:
        with (
            running(write_continuously, db),
            running(capture_continuously, ConnectorRunner(configured, source)),
        ):
            wait_for(
                lambda: len(applied_so_far(read_db, table)) == PARTITIONS,
                timeout_s=120,
                what="the live mirror to apply records of every partition",
            )
            time.sleep(2.0)  # the workload runs on: the snapshot is taken mid-stream
            attempts: list[str] = []
            as_of = None
            while as_of is None:
                assert len(attempts) < 60, f"no exact snapshot in 60 attempts: {attempts[-5:]}"
                rows, applied = live_state(read_db, table)
                as_of, why = as_of_instant(configured.kafka, topic, applied)
                if as_of is None:
                    attempts.append(why)
                    time.sleep(0.05)
            wait_for(
                lambda: all(
                    records[-1][0] > applied[(topic, p)] + 50
                    for p, records in record_timestamps(configured.kafka, topic).items()
                ),
                timeout_s=120,
                what="more records captured after T on every partition",
            )
        wait_for(
            lambda: live_state(read_db, table)[0] != rows, timeout_s=60, what="the live mirror to move on"
        )
    finally:
        worker.terminate()
        worker.wait(30)

    pit_db = tmp_path / "pit.db"
    replayed = unsilo(
        config, "replay", "--as-of", str(as_of), "--read-model", "mirror", "--into", f"sqlite:///{pit_db}"
    )

    assert replayed.returncode == 0, replayed.stderr[-3000:]
    pit_offsets = query(pit_db, 'SELECT topic, "partition", "offset" FROM unsilo_projection_positions')
    assert {(t, p): o for t, p, o in pit_offsets} == applied, replayed.stdout
    replayed_rows = query(pit_db, f"SELECT * FROM {table} ORDER BY id")
    # Same offsets applied (asserted above) yet other rows would mean the live mirror diverged
    # from its own log (an event it recorded as applied but did not apply), not a wrong cut.
    assert replayed_rows == rows, sorted(set(replayed_rows) ^ set(rows))[:10]
    assert len(rows) > 100
    summary = " ".join(replayed.stdout.split())
    assert "0 skipped" in summary and f"as of {iso(as_of)}" in summary
    print(f"exact snapshot after {len(attempts)} retries; {len(rows)} rows; offsets {applied}")


def test_an_instant_before_the_log_says_where_history_starts(settings: Settings, tmp_path: Path) -> None:
    """Replaying as of a moment before the first captured record fails naming the first record's time."""
    db = tmp_path / "bank.db"
    create_source(db)
    system = unique("pit")
    source = sqlite_source(unique("bank"), system, db, ["accounts"])
    configured = settings.model_copy(update={"sources": [source]})
    ConnectorRunner(configured, source).run(until_idle=True)
    config = write_config(configured, tmp_path / "unsilo.yaml")
    first = min(ts for records in record_timestamps(configured.kafka, raw_topic(system, "accounts")).values()
                for _, ts in records[:1])  # fmt: skip

    result = unsilo(
        config, "replay", "--as-of", iso(first - 60_000), "--read-model", "mirror",
        "--into", f"sqlite:///{tmp_path / 'pit.db'}",
    )  # fmt: skip

    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert f"history starts at {iso(first)} (topic {raw_topic(system, 'accounts')} partition 0)" in message
    assert "choose a later instant" in message
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "pit.db").exists() or not query(
        tmp_path / "pit.db", "SELECT name FROM sqlite_master WHERE name LIKE 'mirror_%'"
    )
