"""Applies raw change events to mirror tables, rows and consumed offsets in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, MetaData, Table, and_, bindparam, delete, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from hub.errors import ReadModelError
from projections import tracking
from projections.events import RawEvent
from projections.table_mirror.tables import MirrorColumn, mirror_columns, mirror_table, mirror_table_name

log = structlog.get_logger(__name__)


class MirrorBuilder(tracking.TrackedBuilder):
    """Keeps one SQL table per raw topic equal to the latest state of each source row."""

    def __init__(self, engine: Engine, projection: str = "mirror", table_suffix: str = "") -> None:
        super().__init__(engine, projection)
        self.table_suffix = table_suffix
        self.metadata = MetaData()
        self._tables: dict[str, tuple[Table, list[MirrorColumn]]] = {}
        try:
            with engine.begin() as conn, tracking.schema_lock(conn):
                tracking.metadata.create_all(conn)
        except SQLAlchemyError as exc:
            raise ReadModelError(f"cannot prepare the read store: {exc}") from exc

    def apply_new(self, conn: Connection, events: Sequence[RawEvent]) -> int:
        """Upsert or delete each event's row; a TRUNCATE empties the table."""
        pending: dict[str, dict[tuple[Any, ...], dict[str, Any] | None]] = {}
        applied = 0
        for event in events:
            if event.value is None:
                continue  # tombstone: the delete before it did the work
            table, columns = self._table(conn, event)
            applied += 1
            op = event.value["op"]
            if op == "t" or event.key is None:  # TRUNCATE has no key
                self._flush(conn, pending)
                conn.execute(delete(table))
                continue
            key = tuple(event.key[c.field] for c in columns if c.key)
            row = event.value["after"] if op != "d" else None
            pending.setdefault(event.topic, {})[key] = (
                None if row is None else {c.name: row.get(c.field) for c in columns}
            )
        self._flush(conn, pending)
        return applied

    def table_names(self) -> list[str]:
        """The live (unsuffixed) names of the mirror tables this builder has written."""
        return [mirror_table_name(topic) for topic in self._tables]

    def table_for(self, topic: str) -> Table | None:
        found = self._tables.get(topic)
        return found[0] if found else None

    def _flush(self, conn: Any, pending: dict[str, dict[tuple[Any, ...], dict[str, Any] | None]]) -> None:
        for topic, rows in pending.items():
            table, columns = self._tables[topic]
            keys = [c for c in columns if c.key]
            condition = and_(*(table.c[c.name] == bindparam(f"k_{i}") for i, c in enumerate(keys)))
            params = [{f"k_{i}": value for i, value in enumerate(key)} for key in rows]
            conn.execute(delete(table).where(condition), params)
            upserts = [row for row in rows.values() if row is not None]
            if upserts:
                conn.execute(table.insert(), upserts)
        pending.clear()

    def _table(self, conn: Any, event: RawEvent) -> tuple[Table, list[MirrorColumn]]:
        found = self._tables.get(event.topic)
        if found is not None:
            return found
        if event.key_schema is None or event.value_schema is None:
            raise ReadModelError(f"no schema for {event.topic}")
        columns = mirror_columns(event.key_schema, event.value_schema)
        name = mirror_table_name(event.topic) + self.table_suffix
        table = mirror_table(self.metadata, name, columns)
        table.create(conn, checkfirst=True)
        existing = {c["name"] for c in inspect(conn).get_columns(name)}
        for column in columns:
            if column.name not in existing:  # a column added by a schema change
                type_sql = column.type.compile(dialect=conn.dialect)
                quoted = conn.dialect.identifier_preparer.quote(column.name)
                table_sql = conn.dialect.identifier_preparer.quote(name)
                conn.execute(text(f"ALTER TABLE {table_sql} ADD COLUMN {quoted} {type_sql}"))
        self._tables[event.topic] = (table, columns)
        log.info("mirror_table_ready", topic=event.topic, table=name)
        return table, columns
