"""Exactly once across SIGKILLs, as a base class each connector's integration tests subclass.

A subclass provides a ``counters`` table (``id`` integer primary key, ``version`` integer,
``ROWS`` rows at version 0) in its database, a way to bump one row's version in its own
committed transaction, and the source settings. The contract kills the connector process
(``unsilo run``) with SIGKILL at seeded random points while it snapshots and while it
streams, restarts it, and then reads the raw topic: every row is read once by the snapshot,
and every update appears exactly once, in commit order per key.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from hub.config import KafkaSettings, Settings, SourceSettings
from hub.kafka.topics import raw_topic
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from tests.support import topic_messages, unique, wait_for, write_config


def log_end(settings: KafkaSettings, topic: str) -> int:
    """The topic's log-end offset (partition 0): grows as the connector commits."""
    consumer = Consumer({**settings.client_config(), "group.id": unique("probe")})
    try:
        if topic not in consumer.list_topics(timeout=10).topics:
            return 0
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        consumer.close()


class CrashContract:
    """SIGKILL at random points during snapshot and streaming loses and duplicates nothing."""

    SNAPSHOT_ROWS = 6000
    STREAM_ROWS = 30
    UPDATES = 3000
    KILLS_DURING_SNAPSHOT = 4
    KILLS_DURING_STREAMING = 4
    SEED = 20261127

    # -- hooks -----------------------------------------------------------------------

    def create_counters(self, rows: int) -> None:
        raise NotImplementedError

    def bump(self, row_id: int) -> None:
        """``UPDATE counters SET version = version + 1 WHERE id = ?`` in its own transaction."""
        raise NotImplementedError

    def versions(self) -> dict[int, int]:
        raise NotImplementedError

    def source(self, name: str, system: str) -> SourceSettings:
        raise NotImplementedError

    # -- machinery -------------------------------------------------------------------

    def _start(self, config: Path, source: str, log: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "-c", str(config), "run", source],
            stdout=subprocess.DEVNULL,
            stderr=open(log, "ab"),
        )

    def _kill_after_progress(
        self, settings: Settings, config: Path, source: str, topic: str, log: Path, rng: random.Random
    ) -> bool:
        """Start the connector, SIGKILL it once the topic grew by a random amount; True if it grew."""
        before = log_end(settings.kafka, topic)
        grow = rng.randint(50, 400)
        process = self._start(config, source, log)
        deadline = time.monotonic() + 60
        grew = False
        while time.monotonic() < deadline and process.poll() is None:
            if log_end(settings.kafka, topic) >= before + grow:
                grew = True
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        return grew

    def _configure(self, settings: Settings, tmp_path: Path) -> tuple[SourceSettings, Path, str]:
        system = unique("crash")
        source = self.source(unique("src"), system)
        config = write_config(settings.model_copy(update={"sources": [source]}), tmp_path / "unsilo.yaml")
        return source, config, raw_topic(system, "counters")

    def _decoded(self, settings: Settings, topic: str) -> list[dict]:  # type: ignore[type-arg]
        serde = AvroSerde(ConfluentRegistry(settings.registry))
        return [v for v in (serde.decode(m.value()) for m in topic_messages(settings.kafka, topic)) if v]

    def _count(self, settings: Settings, topic: str, op: str) -> int:
        return sum(1 for value in self._decoded(settings, topic) if value["op"] == op)

    # -- the contract ----------------------------------------------------------------

    def test_sigkill_during_snapshot_reads_every_row_exactly_once(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        """Killed repeatedly mid-snapshot, the connector resumes the snapshot: each row read exactly once."""
        self.create_counters(self.SNAPSHOT_ROWS)
        source, config, topic = self._configure(settings, tmp_path)
        rng = random.Random(self.SEED)
        log = tmp_path / "connector.log"

        grew = [
            self._kill_after_progress(settings, config, source.name, topic, log, rng)
            for _ in range(self.KILLS_DURING_SNAPSHOT)
        ]
        final = self._start(config, source.name, log)
        try:
            wait_for(
                lambda: self._count(settings, topic, "r") >= self.SNAPSHOT_ROWS,
                timeout_s=180,
                what="the snapshot to finish",
            )
        finally:
            final.terminate()
            final.wait(30)

        reads = Counter(v["after"]["id"] for v in self._decoded(settings, topic) if v["op"] == "r")
        assert sum(grew) >= self.KILLS_DURING_SNAPSHOT - 1, "the kills did not land mid-snapshot"
        assert set(reads) == set(range(self.SNAPSHOT_ROWS))
        assert [k for k, n in reads.items() if n != 1] == []

    def test_sigkill_while_streaming_loses_and_duplicates_nothing(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        """Killed repeatedly mid-stream, every update is in the topic exactly once, in order per key."""
        self.create_counters(self.STREAM_ROWS)
        source, config, topic = self._configure(settings, tmp_path)
        log = tmp_path / "connector.log"
        rng = random.Random(self.SEED + 1)
        first = self._start(config, source.name, log)
        wait_for(lambda: log_end(settings.kafka, topic) >= self.STREAM_ROWS, what="the initial snapshot")
        first.send_signal(signal.SIGKILL)
        first.wait(10)

        stop = threading.Event()

        def workload() -> None:
            bumps = random.Random(self.SEED + 2)
            for _ in range(self.UPDATES):
                if stop.is_set():
                    return
                self.bump(bumps.randrange(self.STREAM_ROWS))
                time.sleep(0.001)

        writer = threading.Thread(target=workload)
        writer.start()
        try:
            grew = [
                self._kill_after_progress(settings, config, source.name, topic, log, rng)
                for _ in range(self.KILLS_DURING_STREAMING)
            ]
        finally:
            writer.join(300)
            stop.set()
        expected = self.versions()
        final = self._start(config, source.name, log)
        try:
            wait_for(
                lambda: self._count(settings, topic, "u") >= sum(expected.values()),
                timeout_s=120,
                interval_s=1.0,
                what="every update to be captured",
            )
            time.sleep(1)  # anything beyond the expected count would be a duplicate
        finally:
            final.terminate()
            final.wait(30)

        seen: dict[int, list[int]] = defaultdict(list)
        for value in self._decoded(settings, topic):
            if value["op"] == "u":
                seen[value["after"]["id"]].append(value["after"]["version"])
        wrong = {k: v for k, v in seen.items() if v != list(range(1, expected[k] + 1))}
        assert sum(grew) >= 1, "no kill landed while the connector was streaming"
        assert not wrong, f"keys whose updates are not exactly 1..N in order: {sorted(wrong)[:5]}"
        assert sum(len(v) for v in seen.values()) == sum(expected.values())
