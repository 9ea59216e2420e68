"""Runs one connector: snapshot, then stream, committing data and position together.

Each batch from the connector becomes one Kafka transaction holding its change events
(a delete followed by its tombstone; a primary-key change as delete, tombstone, create),
any dead-lettered rows, and the connector's new position in ``_unsilo.offsets``. After a
crash, the next start reads the last committed position and resumes exactly there.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from connectors.base import Batch, Change, Connector, Position
from connectors.control import ControlChannel
from connectors.dead_letters import RECORD_LIMIT, check_size, letter_body
from connectors.offsets import encode_position, load_position, position_key
from connectors.outputs import TableOut, TableOutputs
from connectors.routed import RoutedOutputs
from hub.avro_codec import Unencodable
from hub.config import Settings, SourceSettings
from hub.envelope import SourceInfo, TableSchema
from hub.errors import (
    ConfigError,
    FencedError,
    IncompatibleSchemaError,
    LogError,
    SerializationError,
    SourceDataError,
    UnsiloError,
)
from hub.kafka.admin import KafkaAdmin
from hub.kafka.producer import TransactionalProducer
from hub.kafka.topics import OFFSETS_TOPIC, STATUS_TOPIC, dlq_topic, quarantine_topic, spec_for
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from hub.status import SourceStatus

log = structlog.get_logger(__name__)


def create_connector(source: SourceSettings) -> Connector:
    """The connector for ``source.kind``."""
    if source.kind == "sqlite":
        from connectors.sqlite import SqliteConnector

        return SqliteConnector(source)
    if source.kind == "postgres":
        from connectors.postgres import PostgresConnector

        return PostgresConnector(source)
    if source.kind == "mysql":
        from connectors.mysql import MysqlConnector

        return MysqlConnector(source)
    if source.kind == "sql_poll":
        from connectors.sql_poll import SqlPollConnector

        return SqlPollConnector(source)
    if source.kind == "outbox":
        from connectors.outbox import OutboxConnector

        return OutboxConnector(source)
    raise ConfigError(f"source {source.name}: unknown kind {source.kind!r}")


@dataclass
class RunnerStats:
    """What the runner has done since it started."""

    batches: int = 0
    events: int = 0
    snapshot_rows: int = 0
    dead_lettered: int = 0
    started: float = field(default_factory=time.monotonic)


class ConnectorRunner:
    """Drives one connector against Kafka with exactly-once publication."""

    def __init__(
        self,
        settings: Settings,
        source: SourceSettings,
        connector: Connector | None = None,
        *,
        on_batch: Callable[[Batch, RunnerStats], None] | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.connector = connector or create_connector(source)
        self.on_batch = on_batch
        self.stats = RunnerStats()
        self.dlq = dlq_topic(source.name)
        self.quarantine = quarantine_topic(source.name)
        registry = ConfluentRegistry(settings.registry)
        self.outputs = TableOutputs(source.system, AvroSerde(registry), registry)
        self.routed = RoutedOutputs(settings.kafka, self.outputs.serde)  # outbox events
        self.status = SourceStatus(source.name, source.system, source.kind)
        self._producer: TransactionalProducer | None = None  # set once the source is open too
        self._kafka_producer: TransactionalProducer | None = None
        self._control: ControlChannel | None = None
        self.paused = False
        self._stopping = False
        self._last_source: tuple[tuple[Any, ...], SourceInfo] | None = None

    def start(self) -> None:
        """Connect to Kafka, the registry and the source; resume from the last position.

        Kafka comes first, so that a source that cannot be reached shows as retrying in
        ``unsilo connectors``.
        """
        admin = KafkaAdmin(self.settings.kafka)
        if self._kafka_producer is None:
            admin.ensure_reachable()
            admin.ensure_topics(
                [spec_for(t) for t in (OFFSETS_TOPIC, STATUS_TOPIC, self.dlq, self.quarantine)]
            )
            producer = TransactionalProducer(
                self.settings.kafka, f"unsilo-connector-{self.source.name}", audit=self.settings.audit
            )
            producer.init()
            self._kafka_producer = producer
            self._control = ControlChannel(self.settings.kafka, self.source.name)
        position = load_position(self.settings.kafka, self.source.name)
        self.connector.open(position)
        tables = self.connector.tables()
        partitions = self.settings.kafka.topic_partitions
        admin.ensure_topics([spec_for(t, partitions) for t in self.outputs.topics(tables)])
        for schema in tables:
            self.status.table(schema.table).state = "streaming"
            try:
                self.outputs.get(schema)
            except IncompatibleSchemaError as exc:
                self._mark_stopped(schema.table, exc)
        self._track_snapshot(position)
        self._producer = self._kafka_producer
        log.info("connector_started", source=self.source.name, resumed=position is not None)

    def stop(self) -> None:
        self._stopping = True

    def run(self, *, until_idle: bool = False, max_seconds: float | None = None) -> RunnerStats:
        """Publish batches until stopped (or until nothing is left, with ``until_idle``)."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        backoff = 0.5
        rewind = False
        try:
            while not self._stopping and (deadline is None or time.monotonic() < deadline):
                try:
                    if self._producer is None:
                        self.start()
                    elif rewind:
                        self._rewind()
                    rewind = False
                    self._apply_commands()
                    if self.paused:
                        time.sleep(self.source.poll_interval_s)
                        continue
                    published = self.step()
                    backoff = 0.5
                except FencedError:
                    raise
                except UnsiloError as exc:
                    if not exc.retriable:
                        raise
                    log.warning(
                        "connector_retrying", source=self.source.name, error=exc.message, backoff_s=backoff
                    )
                    self._publish_status("retrying", exc.message)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    if isinstance(exc, LogError):
                        self._drop_producer()  # a commit in doubt is fenced before the position is read
                    rewind = True
                    continue
                if not published:
                    if until_idle:
                        break
                    time.sleep(self.source.poll_interval_s)
        finally:
            self.close()
        return self.stats

    def step(self) -> bool:
        """Publish one batch; False when the connector had nothing new."""
        batch = self.connector.poll(self.source.batch_size)
        if batch is None:
            return False
        producer = self._require_producer()
        producer.begin()
        try:
            schemas = {schema.table: schema for schema in self.connector.tables()}
            self._publish_changes(producer, batch.changes, schemas)
            self._update_status(batch)
            producer.send(OFFSETS_TOPIC, position_key(self.source.name), encode_position(batch.position))
            producer.send(STATUS_TOPIC, position_key(self.source.name), self.status.encode())
            producer.commit()
        except BaseException:
            producer.abort()
            raise
        self.connector.committed(batch.position)
        self.stats.batches += 1
        self.stats.events += len(batch.changes)
        self.stats.snapshot_rows += sum(1 for c in batch.changes if c.snapshot)
        if batch.progress:
            log.info("snapshot_chunk_published", source=self.source.name, **batch.progress)
        if self.on_batch is not None:
            self.on_batch(batch, self.stats)
        return True

    def close(self) -> None:
        if self._kafka_producer is not None:
            self._kafka_producer.close()
        self._producer = self._kafka_producer = None
        if self._control is not None:
            self._control.close()
            self._control = None
        self.connector.close()

    def _drop_producer(self) -> None:
        """Forget the producer: the next start inits a new one under the same transactional id.

        When the broker goes away mid-commit the transaction may still complete; reading the
        position at once could miss it and publish the batch again. A new producer's init
        completes or aborts it first, so the position read after it is the true one.
        """
        if self._kafka_producer is not None:
            with contextlib.suppress(UnsiloError):
                self._kafka_producer.close()
        self._producer = self._kafka_producer = None
        if self._control is not None:
            with contextlib.suppress(UnsiloError):
                self._control.close()
            self._control = None

    def _apply_commands(self) -> None:
        """Apply pause, resume and snapshot commands sent with ``unsilo pause|resume|snapshot``."""
        if self._control is None:
            return
        commands = self._control.poll()
        if not commands:
            return
        for command in commands:
            log.info(
                "connector_command", source=self.source.name, command=command.command, table=command.table
            )
            if command.command == "pause":
                self.paused = True
            elif command.command == "resume":
                self.paused = False
            elif command.command == "snapshot":
                self._resnapshot(command.table)
        self._publish_status("paused" if self.paused else "running", None)
        self._control.commit()

    def _resnapshot(self, table: str | None) -> None:
        known = [schema.table for schema in self.connector.tables()]
        resnapshot = getattr(self.connector, "resnapshot", None)
        if table not in known or resnapshot is None:
            log.warning("snapshot_command_refused", source=self.source.name, table=table, known=known)
            return
        resnapshot(table)
        status = self.status.table(table)
        status.state, status.rows, status.total = "snapshotting", 0, None

    def _rewind(self) -> None:
        position: Position | None = load_position(self.settings.kafka, self.source.name)
        self.connector.open(position)

    def _publish_changes(
        self, producer: TransactionalProducer, changes: list[Change], schemas: dict[str, TableSchema]
    ) -> None:
        """Encode and send a batch's changes: runs of snapshot reads together, others one by one."""
        now = int(time.time() * 1000)  # the events' ts_ms: when the batch was processed
        topic = ""  # a run of records for one raw topic, sent together
        records: list[tuple[bytes | None, bytes | None]] = []
        index, count = 0, len(changes)
        while index < count:
            change = changes[index]
            if change.topic is not None:  # a routed change (outbox event): published as-is
                self._publish_routed(producer, change)
                index += 1
                continue
            end = index + 1
            if change.snapshot and change.op == "r":  # a snapshot chunk's rows share one source block
                table, position, ts_ms = change.table, change.position, change.ts_ms
                while end < count and _same_read(changes[end], table, position, ts_ms):
                    end += 1
            schema = schemas[change.table]
            if end - index > 1:
                encoded = self._encoded_reads(producer, changes[index:end], schema, now)
            else:
                encoded = self._encoded(producer, change, schema, now)
            index = end
            if encoded is None:
                continue
            if encoded[0] != topic:
                producer.send_many(topic, records)
                topic, records = encoded[0], []
            records += encoded[1]
        producer.send_many(topic, records)

    def _encoded_reads(
        self, producer: TransactionalProducer, reads: list[Change], schema: TableSchema, now: int
    ) -> tuple[str, list[tuple[bytes | None, bytes | None]]] | None:
        """:meth:`_encoded` for snapshot reads sharing one source block, in one loop where it can."""
        try:
            out = self.outputs.get(schema)
        except IncompatibleSchemaError:
            out = None  # each read goes to quarantine on the full path
        raw = out.raw() if out is not None else None
        fast: list[tuple[bytes | None, bytes | None] | None] | None = None
        if raw is not None:
            with contextlib.suppress(Unencodable):  # the source block itself: the full path
                fast = raw.reads(
                    [c.after or {} for c in reads], self._source_info(reads[0]), now, RECORD_LIMIT
                )
        records: list[tuple[bytes | None, bytes | None]] = []
        for change, record in zip(reads, fast or [None] * len(reads), strict=True):
            if record is not None:
                records.append(record)
            elif (encoded := self._encoded(producer, change, schema, now)) is not None:
                records += encoded[1]  # the full path's records, or none for a dead letter
        return (out.topic, records) if out is not None and records else None

    def _encoded(
        self, producer: TransactionalProducer, change: Change, schema: TableSchema, now: int
    ) -> tuple[str, list[tuple[bytes | None, bytes | None]]] | None:
        """The raw topic and records of ``change``; None when it went to the DLQ or quarantine."""
        try:
            out = self.outputs.get(schema)
        except IncompatibleSchemaError as exc:
            self._mark_stopped(change.table, exc)
            self._dead_letter(producer, change, exc, topic=self.quarantine, schema=schema)
            return None
        try:
            records = self._encode(out, change, now=now)
            check_size(change.table, records)  # too large for the broker: a dead letter, not a crash
        except (SourceDataError, SerializationError) as exc:
            self._dead_letter(producer, change, exc, schema=schema)
            return None
        return out.topic, records

    def _publish_routed(self, producer: TransactionalProducer, change: Change) -> None:
        """A routed change to its own topic (see ``Change.topic``); a bad one to the DLQ."""
        try:
            topic, key, value = self.routed.encode(change)
        except (SourceDataError, SerializationError) as exc:
            self._dead_letter(producer, change, exc)
            return
        except IncompatibleSchemaError as exc:
            self._dead_letter(producer, change, exc, topic=self.quarantine)
            return
        producer.send(topic, key, value, change.headers)

    def _mark_stopped(self, table: str, exc: UnsiloError) -> None:
        status = self.status.table(table)
        status.state, status.reason, status.fix = "stopped", exc.message, exc.hint

    def _track_snapshot(self, position: Position | None) -> None:
        pending = ((position or {}).get("snapshot") or {}).get("pending")
        if position is None:  # first start: every table is snapshotted first
            pending = [schema.table for schema in self.connector.tables()]
        for table in pending or []:
            if self.status.table(table).state != "stopped":
                self.status.table(table).state = "snapshotting"

    def _update_status(self, batch: Batch) -> None:
        self.status.state, self.status.reason = "running", None
        self.status.events += len(batch.changes)
        self.status.dead_lettered = self.stats.dead_lettered
        progress = batch.progress
        if progress:
            table = self.status.table(progress["table"])
            if table.state != "stopped":
                table.rows += int(progress.get("rows", 0))
                table.total = progress.get("total", table.total)
                table.state = "streaming" if progress.get("done") else "snapshotting"
        if batch.changes:
            self.status.position = batch.changes[-1].position

    def _publish_status(self, state: str, reason: str | None) -> None:
        """Publish a status change outside a batch (best effort: the broker may be the problem)."""
        self.status.state, self.status.reason = state, reason
        producer = self._kafka_producer
        if producer is None:
            return
        try:
            producer.begin()
            producer.send(STATUS_TOPIC, position_key(self.source.name), self.status.encode())
            producer.commit(timeout_s=5)
        except LogError as exc:
            producer.abort(timeout_s=5)
            log.info("status_not_published", source=self.source.name, error=exc.message)

    def encode_change(
        self, change: Change, schema: TableSchema, premasked: tuple[str, ...] = ()
    ) -> tuple[str, list[tuple[bytes | None, bytes | None]]]:
        """The raw topic and records of ``change`` under the current schema (``unsilo dlq replay``).

        ``premasked`` columns already hold their masked values (a dead letter's).
        """
        out = self.outputs.get(schema)
        records = self._encode(out, change, premasked)
        check_size(change.table, records)
        return out.topic, records

    def _source_info(self, change: Change) -> SourceInfo:
        """The event's source block; the rows of a snapshot chunk or a transaction share one."""
        same = (change.table, change.snapshot, change.position, change.ts_ms, change.txid)
        if self._last_source is None or self._last_source[0] != same:
            info = SourceInfo(
                connector=self.connector.kind,
                system=self.source.system,
                db=self.connector.db,
                table=change.table,
                snapshot=change.snapshot,
                position=change.position,
                ts_ms=change.ts_ms,
                txid=change.txid,
            )
            self._last_source = (same, info)
        return self._last_source[1]

    def _encode(
        self, out: TableOut, change: Change, premasked: tuple[str, ...] = (), now: int | None = None
    ) -> list[tuple[bytes | None, bytes | None]]:
        schema = out.schema
        info = self._source_info(change)
        if now is None:
            now = int(time.time() * 1000)
        raw = out.raw() if not premasked else None
        if raw is not None:
            try:
                return raw.records(change.op, change.before, change.after, info, now)
            except Unencodable:
                pass  # a value to convert first, a key change, a truncate: the full path
        before = schema.row(change.before, premasked)
        after = schema.row(change.after, premasked)
        if change.op == "u" and change.before and change.after:
            old_key, new_key = schema.key_of(change.before, premasked), schema.key_of(change.after, premasked)
            if old_key != new_key:  # a primary-key change: delete, tombstone, create
                old = out.key.encode(old_key)
                return [
                    (old, out.value.encode(schema.event("d", before, None, info, now))),
                    (old, None),
                    (out.key.encode(new_key), out.value.encode(schema.event("c", None, after, info, now))),
                ]
        if change.op == "t":  # a TRUNCATE: no row, no key (as Debezium publishes it)
            return [(None, out.value.encode(schema.event("t", None, None, info, now)))]
        row = change.after if change.after is not None else change.before
        if row is None:
            raise SourceDataError(f"{change.table}: change {change.position} has no row image")
        key = out.key.encode(schema.key_of(row, premasked))
        records: list[tuple[bytes | None, bytes | None]] = [
            (key, out.value.encode(schema.event(change.op, before, after, info, now)))
        ]
        if change.op == "d":
            records.append((key, None))
        return records

    def _dead_letter(
        self,
        producer: TransactionalProducer,
        change: Change,
        exc: UnsiloError,
        *,
        topic: str | None = None,
        schema: TableSchema | None = None,
    ) -> None:
        """``change`` with the reason to the DLQ (or ``topic``); its values masked as in its events."""
        if topic is None:
            self.stats.dead_lettered += 1
        else:
            self.status.quarantined += 1
        log.warning(
            "change_dead_lettered",
            source=self.source.name,
            table=change.table,
            position=change.position,
            error=exc.message,
        )
        body = letter_body(change, schema)
        headers = [
            ("unsilo.error", exc.message.encode("utf-8")),
            ("unsilo.error.class", type(exc).__name__.encode("utf-8")),
            ("unsilo.source", self.source.name.encode("utf-8")),
            ("unsilo.table", change.table.encode("utf-8")),
            ("unsilo.position", change.position.encode("utf-8")),
        ]
        producer.send(topic or self.dlq, None, body, headers)

    def _require_producer(self) -> TransactionalProducer:
        if self._producer is None:
            raise LogError("the runner is not started")
        return self._producer


def _same_read(change: Change, table: str, position: str, ts_ms: int) -> bool:
    """Whether ``change`` is a snapshot read sharing the source block of the run before it."""
    return (
        change.snapshot
        and change.op == "r"
        and change.topic is None
        and change.table == table
        and change.position == position
        and change.ts_ms == ts_ms
    )


def describe(stats: RunnerStats) -> dict[str, Any]:
    elapsed = max(time.monotonic() - stats.started, 1e-9)
    return {
        "batches": stats.batches,
        "events": stats.events,
        "snapshot_rows": stats.snapshot_rows,
        "dead_lettered": stats.dead_lettered,
        "events_per_s": round(stats.events / elapsed, 1),
    }
