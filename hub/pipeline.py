"""Capture lag per source table, freshness per read model, and dead-letter counts.

- **Capture lag** (source commit -> Kafka append): the newest record of each raw topic,
  its envelope's ``source.ts_ms`` against its Kafka timestamp; the table's state, snapshot
  progress and position come from ``_unsilo.status``.
- **Freshness** (log -> read model): each projection's applied offsets, read from the read
  store's ``unsilo_projection_positions`` table by name (hub never imports projections),
  against the raw topics' log end; a read model is evaluated like a consumer group (Burrow's
  rules, group ``readmodel:<name>``) and its age is that of the oldest unapplied record.
- **Dead letters**: records in ``unsilo.dlq.*`` and ``unsilo.quarantine.*``, counted exactly
  (read_committed, markers excluded) and incrementally.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from sqlalchemy import Engine, column, create_engine, inspect, select, table
from sqlalchemy.exc import SQLAlchemyError

from hub.config import Settings
from hub.errors import ReadModelError, RegistryUnavailableError, UnsiloError
from hub.kafka.errors import translate
from hub.kafka.topics import raw_topic
from hub.lag import GroupInfo, PartitionOffsets, Status
from hub.lag_monitor import LagMonitor, now_ms
from hub.lag_source import TP, LagSource, quiet_config
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from hub.sql_urls import engine_url
from hub.status import SourceStatus

POSITIONS = table(
    "unsilo_projection_positions",
    column("projection"),
    column("topic"),
    column("partition"),
    column("offset"),
)
TAIL = 20  # records read back from the end to find the newest committed data record
DEAD_LETTER_PREFIXES = ("unsilo.dlq.", "unsilo.quarantine.")


@dataclass
class CaptureLag:
    """One captured table: how far Kafka is behind its source, and the connector's word on it."""

    source: str
    system: str
    table: str
    topic: str
    status: str = "UNKNOWN"  # OK, SNAPSHOT, WARN (retrying), ERR (stopped), UNKNOWN (no status yet)
    state: str = "unknown"
    reason: str | None = None
    capture_lag_s: float | None = None  # Kafka append time - source commit time, newest record
    last_event_age_s: float | None = None  # now - Kafka append time of the newest record
    rows: int = 0
    total: int | None = None
    position: str | None = None
    updated_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Freshness:
    """One read model: how many records and seconds it is behind the log."""

    read_model: str
    status: str
    behind: int
    age_s: float  # now - Kafka time of the oldest record not yet applied (0 when caught up)
    partitions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def capture_status(status: SourceStatus | None, table_name: str) -> tuple[str, str, str | None]:
    """(status, state, reason) of one table from its source's status record."""
    if status is None:
        return "UNKNOWN", "unknown", None
    table_status = status.tables.get(table_name)
    state = table_status.state if table_status else status.state
    if status.state == "stopped" or state == "stopped":
        reason = (table_status.reason if table_status else None) or status.reason
        return Status.ERR.value, "stopped", reason
    if status.state == "retrying":
        return Status.WARN.value, "retrying", status.reason
    if state == "snapshotting":
        return "SNAPSHOT", state, None
    return Status.OK.value, state, None


class PipelineReader:
    """Reads capture lag, freshness and dead-letter counts (keeps small caches between calls)."""

    def __init__(self, settings: Settings, source: LagSource, monitor: LagMonitor) -> None:
        self.settings = settings
        self.source = source
        self.monitor = monitor
        self._serde = AvroSerde(ConfluentRegistry(settings.registry))
        self._engine: Engine | None = None
        self._decode = True
        self._dead: dict[TP, tuple[int, int]] = {}  # partition -> (next offset to count, count so far)

    def topics(self) -> set[str]:
        try:
            return set(self.source.admin.list_topics(timeout=self.source.timeout_s).topics)
        except KafkaException as exc:
            raise translate(exc, self.settings.kafka.bootstrap_servers, "listing topics") from exc

    # -- capture lag
    def capture(
        self, statuses: dict[str, SourceStatus], topics: set[str], *, decode: bool = True
    ) -> list[CaptureLag]:
        """Capture lag of every table of every configured or reporting source.

        ``decode=False`` (the registry is down) leaves the source-commit figure out.
        """
        self._decode = decode
        rows: dict[tuple[str, str], CaptureLag] = {}
        for source in self.settings.sources:
            for t in source.tables:
                rows[(source.name, t.name)] = CaptureLag(
                    source.name, source.system, t.name, raw_topic(source.system, t.name)
                )
        for name, status in statuses.items():
            for table_name in status.tables:
                rows.setdefault(
                    (name, table_name),
                    CaptureLag(name, status.system, table_name, raw_topic(status.system, table_name)),
                )
        newest = self._newest_records([r.topic for r in rows.values() if r.topic in topics])
        now = now_ms()
        for (name, table_name), row in rows.items():
            reported = statuses.get(name)
            row.status, row.state, row.reason = capture_status(reported, table_name)
            if reported is not None:
                row.position, row.updated_ms = reported.position, reported.updated_ms
                table_status = reported.tables.get(table_name)
                if table_status is not None:
                    row.rows, row.total = table_status.rows, table_status.total
            found = newest.get(row.topic)
            if found is not None:
                kafka_ms, value = found
                row.last_event_age_s = max(0.0, (now - kafka_ms) / 1000)
                source_ms = self._source_ts(value)
                if source_ms is not None:
                    row.capture_lag_s = max(0.0, (kafka_ms - source_ms) / 1000)
        return sorted(rows.values(), key=lambda r: (r.source, r.table))

    def _source_ts(self, value: bytes) -> int | None:
        if not self._decode:
            return None
        try:
            datum = self._serde.decode(value)
        except RegistryUnavailableError:
            self._decode = False  # do not wait on a registry that is down once per topic
            return None
        except UnsiloError:
            return None  # not an envelope: the figure is left out
        source = datum.get("source") if isinstance(datum, dict) else None
        stamp = source.get("ts_ms") if isinstance(source, dict) else None
        return int(stamp) if isinstance(stamp, int) else None

    def _newest_records(self, topics: list[str]) -> dict[str, tuple[int, bytes]]:
        """Per topic, the Kafka timestamp and value of its newest committed data record."""
        if not topics:
            return {}
        ends = self.source.watermarks((t, p) for t in topics for p in range(self._partition_count(t)))
        starts = {tp: max(lo, hi - TAIL) for tp, (lo, hi) in ends.items() if hi > lo}
        newest: dict[str, tuple[int, bytes]] = {}
        for message in self._read_ranges(starts, {tp: ends[tp][1] for tp in starts}):
            value = message.value()
            stamp = int(message.timestamp()[1])
            topic = message.topic() or ""
            if value is not None and (topic not in newest or stamp >= newest[topic][0]):
                newest[topic] = (stamp, value)
        return newest

    def _partition_count(self, topic: str) -> int:
        metadata = self.source.admin.list_topics(topic=topic, timeout=self.source.timeout_s)
        described = metadata.topics.get(topic)
        return len(described.partitions) if described is not None and described.error is None else 0

    def _read_ranges(self, starts: dict[TP, int], ends: dict[TP, int]) -> list[Any]:
        """Committed data records of each partition from its start offset to its end."""
        if not starts:
            return []
        consumer = Consumer(
            quiet_config(
                self.settings.kafka.client_config(),
                **{
                    "group.id": "unsilo-ops-reader",
                    "isolation.level": "read_committed",
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "auto.offset.reset": "earliest",
                    "fetch.wait.max.ms": 20,
                },
            )
        )
        messages: list[Any] = []
        pending = set(starts)
        try:
            consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in starts.items()])
            deadline = time.monotonic() + self.source.timeout_s
            while pending and time.monotonic() < deadline:
                for message in consumer.consume(num_messages=5000, timeout=0.1):
                    tp = (message.topic() or "", message.partition() or 0)
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            pending.discard(tp)
                        continue
                    messages.append(message)
                    if (message.offset() or 0) + 1 >= ends[tp]:
                        pending.discard(tp)
        except KafkaException as exc:
            raise translate(exc, self.settings.kafka.bootstrap_servers, "reading topic tails") from exc
        finally:
            consumer.close()
        return messages

    # -- freshness
    def positions(self) -> dict[str, dict[TP, int]]:
        """Each projection's last applied offset per partition, from the read store."""
        try:
            if self._engine is None:
                self._engine = create_engine(engine_url(self.settings.read_store.url))
            with self._engine.connect() as conn:
                if not inspect(conn).has_table(POSITIONS.name):
                    return {}
                rows = conn.execute(
                    select(
                        POSITIONS.c.projection, POSITIONS.c.topic, POSITIONS.c.partition, POSITIONS.c.offset
                    )
                )
                found: dict[str, dict[TP, int]] = {}
                for projection, topic, partition, offset in rows:
                    found.setdefault(str(projection), {})[(str(topic), int(partition))] = int(offset)
                return found
        except SQLAlchemyError as exc:
            raise ReadModelError(f"cannot read the read store's positions: {type(exc).__name__}") from exc

    def freshness(self) -> list[Freshness]:
        """Freshness of every read model that recorded a position."""
        applied = self.positions()
        if not applied:
            return []
        ends = self.source.watermarks(tp for offsets in applied.values() for tp in offsets)
        wanted: dict[TP, list[int]] = {}
        for offsets in applied.values():
            for tp, offset in offsets.items():
                if tp in ends and ends[tp][1] > offset + 1:
                    wanted.setdefault(tp, []).append(offset + 1)
        heads = self.source.heads(wanted, timeout_s=self.source.timeout_s)
        partitions: list[PartitionOffsets] = []
        infos: dict[str, GroupInfo] = {}
        for projection, offsets in applied.items():
            group = f"readmodel:{projection}"
            infos[group] = GroupInfo(group, "READ_MODEL")
            for (topic, partition), offset in offsets.items():
                if (topic, partition) not in ends:
                    continue
                start, end = ends[(topic, partition)]
                key = (topic, partition, offset + 1)
                partitions.append(
                    PartitionOffsets(
                        group,
                        topic,
                        partition,
                        offset + 1,
                        start,
                        end,
                        heads.get(key),
                        key in heads and heads[key] is None,
                    )
                )
        report = self.monitor.evaluate(partitions, infos)
        result = []
        for lagging in report.groups.values():
            result.append(
                Freshness(
                    lagging.group.removeprefix("readmodel:"),
                    lagging.status.value,
                    lagging.total_lag,
                    round(lagging.max_lag_seconds, 3),
                    [
                        {
                            "topic": p.topic,
                            "partition": p.partition,
                            "applied_offset": p.committed - 1,
                            "log_end_offset": p.log_end,
                            "behind": p.lag,
                            "status": p.status.value,
                        }
                        for p in lagging.partitions
                    ],
                )
            )
        return sorted(result, key=lambda f: f.read_model)

    # -- dead letters
    def dead_letters(self, topics: set[str]) -> dict[str, int]:
        """Records in each dead-letter and quarantine topic (counted incrementally)."""
        names = sorted(t for t in topics if t.startswith(DEAD_LETTER_PREFIXES))
        ends = self.source.watermarks((t, p) for t in names for p in range(self._partition_count(t)))
        starts: dict[TP, int] = {}
        for tp, (low, high) in ends.items():
            next_offset, _ = self._dead.get(tp, (low, 0))
            if high > next_offset:
                starts[tp] = max(next_offset, low)
        counted: dict[TP, int] = {}
        for message in self._read_ranges(starts, {tp: ends[tp][1] for tp in starts}):
            tp = (message.topic() or "", message.partition() or 0)
            counted[tp] = counted.get(tp, 0) + 1
        for tp in starts:
            previous = self._dead.get(tp, (0, 0))[1]
            self._dead[tp] = (ends[tp][1], previous + counted.get(tp, 0))
        totals = dict.fromkeys(names, 0)
        for (topic, _), (_, count) in self._dead.items():
            if topic in totals:
                totals[topic] += count
        return totals
