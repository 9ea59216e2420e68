"""Transactional outbox capture: events an application wrote to an outbox table, routed by type.

The table follows Debezium's outbox event router conventions: ``id`` (event id),
``aggregatetype``, ``aggregateid``, ``type``, ``payload`` (JSON text) and optionally
``timestamp``. Rows are read in insertion order, either by a strictly increasing
``incrementing_column`` (a sequence; a gap in it waits ``lag_s`` for a late commit) or by
(``timestamp_column``, default ``timestamp``; ``id``) behind the ``lag_s`` commit-lag window
(see :mod:`connectors.sql_poll`). Each row becomes one event on
``unsilo.outbox.<aggregatetype>``: key = the aggregate id (Avro ``string``), value = an
``OutboxEvent`` record, header ``unsilo.event_id`` for consumers to de-duplicate on. The
cursor commits in the same Kafka transaction as the events, so each row is published once.

With ``outbox_delete_after_publish`` the published rows (exactly those, by event id, never
a range that could hold a late row) are deleted once their transaction has committed. A
crash between that commit and the delete leaves them in the table, behind the cursor:
never published again, but not deleted either.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import SQLAlchemyError

from connectors.base import Batch, Change, Position
from connectors.poll_query import PollTable, epoch_ms
from connectors.poll_state import KeyDelta, encode_value
from connectors.sql_poll import SqlPollConnector
from hub.avro_types import Column
from hub.config import PollMode, TableSettings
from hub.envelope import TableSchema
from hub.errors import ConfigError
from hub.kafka.topics import outbox_topic

log = structlog.get_logger(__name__)

EVENT_ID_HEADER = "unsilo.event_id"
OUTBOX_COLUMNS = ("id", "aggregatetype", "aggregateid", "type", "payload")
_DELETE_CHUNK = 500

OUTBOX_EVENT_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "OutboxEvent",
    "namespace": "io.unsilo.outbox",
    "doc": "A domain event an application wrote to its transactional outbox table.",
    "fields": [
        {"name": "event_id", "type": "string", "doc": "the outbox row's id; de-duplicate on it"},
        {"name": "aggregate_type", "type": "string"},
        {"name": "aggregate_id", "type": "string"},
        {"name": "type", "type": "string", "doc": "the event type"},
        {"name": "payload", "type": ["null", "string"], "default": None, "doc": "the event, JSON text"},
        {
            "name": "ts_ms",
            "type": ["null", "long"],
            "default": None,
            "doc": "the row's timestamp, ms since the epoch (null without a timestamp column)",
        },
    ],
}


class OutboxConnector(SqlPollConnector):
    """Publishes outbox rows as domain events (see module docstring)."""

    kind = "outbox"
    reports_initial_load = False  # events, not a table: nothing to snapshot

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._published: list[tuple[int, str, list[Any]]] = []  # (seq, table, event ids)

    def _spec(self, table: TableSettings) -> tuple[PollMode, str | None, str | None]:
        mode = table.poll_mode or self.settings.poll_mode
        incrementing = table.incrementing_column or self.settings.incrementing_column
        timestamp = table.timestamp_column or self.settings.timestamp_column
        if mode is None:
            mode = "incrementing" if incrementing else "timestamp+incrementing"
        if mode == "incrementing" and incrementing is None:
            raise ConfigError(
                f"source {self.name}: outbox {table.name!r} polls by incrementing but names no column",
                hint="set incrementing_column to the outbox's sequence column",
            )
        if mode not in ("incrementing", "timestamp+incrementing"):
            raise ConfigError(
                f"source {self.name}: an outbox is read in insertion order, not by {mode}",
                hint="use poll_mode incrementing (a sequence column) or timestamp+incrementing",
            )
        if mode == "timestamp+incrementing":
            timestamp, incrementing = timestamp or "timestamp", incrementing or "id"
        return mode, incrementing, timestamp

    def _schema(self, table: TableSettings, columns: list[Column], pk: list[str]) -> TableSchema | None:
        missing = [name for name in OUTBOX_COLUMNS if name not in {c.name for c in columns}]
        if missing:
            raise ConfigError(
                f"source {self.name}: outbox table {table.name!r} lacks column(s) {missing}",
                hint="an outbox table has id, aggregatetype, aggregateid, type, payload "
                "(and optionally timestamp)",
            )
        return None  # events go to outbox topics, not to a raw table topic

    def _tracks(self, mode: PollMode) -> bool:
        return False  # every outbox row is a new event: 'c', nothing to remember

    def open(self, position: Position | None) -> None:
        super().open(position)
        committed = self._position["seq"]
        self._published = [entry for entry in self._published if entry[0] <= committed]

    def _rows_batch(self, table: PollTable, rows: list[dict[str, Any]]) -> Batch:
        now_ms = int(self._clock().timestamp() * 1000)
        changes = [self._event(table, row, now_ms) for row in rows]
        batch = self._batch(changes, KeyDelta())
        if self.settings.outbox_delete_after_publish:
            self._published.append((batch.position["seq"], table.name, [row["id"] for row in rows]))
        return batch

    def _event(self, table: PollTable, row: dict[str, Any], now_ms: int) -> Change:
        event_id, aggregate_type = _text(row["id"]), _text(row["aggregatetype"])
        aggregate_id = _text(row["aggregateid"])
        stamp = table.timestamp or ("timestamp" if "timestamp" in table.columns else None)
        ts_ms = epoch_ms(row[stamp]) if stamp else None
        datum = {
            "event_id": event_id,
            "aggregate_type": aggregate_type,
            "aggregate_id": aggregate_id,
            "type": _text(row["type"]),
            "payload": _json_text(row["payload"]),
            "ts_ms": ts_ms,
        }
        return Change(
            table.name,
            "c",
            None,
            datum,
            json.dumps([encode_value(row[c]) for c in table.cursor_columns], default=str),
            ts_ms or now_ms,
            topic=outbox_topic(aggregate_type) if aggregate_type else "",  # no type: dead-lettered
            key=aggregate_id,
            value_schema=OUTBOX_EVENT_SCHEMA,
            headers=((EVENT_ID_HEADER, event_id.encode("utf-8")),) if event_id else (),
        )

    def committed(self, position: Position) -> None:
        """Delete the rows published up to ``position`` (with ``outbox_delete_after_publish``)."""
        super().committed(position)
        due = [entry for entry in self._published if entry[0] <= position["seq"]]
        if not due:
            return
        self._published = [entry for entry in self._published if entry[0] > position["seq"]]
        try:
            with self._require().begin() as conn:
                for _, name, ids in due:
                    table = self._tables[name]
                    for start in range(0, len(ids), _DELETE_CHUNK):
                        chunk = ids[start : start + _DELETE_CHUNK]
                        conn.execute(sa.delete(table.clause).where(table.col("id").in_(chunk)))
        except SQLAlchemyError as exc:  # keep them for the next commit
            self._published = due + self._published
            log.warning("outbox_delete_deferred", source=self.name, error=type(exc).__name__)


def _text(value: Any) -> str | None:
    """An id or name as text (16-byte binary ids as UUIDs)."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return str(uuid.UUID(bytes=raw)) if len(raw) == 16 else raw.decode("utf-8", errors="replace")
    return str(value)


def _json_text(value: Any) -> str | None:
    """The payload as JSON text (a JSON column the driver already parsed is serialized again)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    return json.dumps(value, default=str)
