"""Read models made of canonical records kept per key, with a SQL view doing the joins.

Each record of the read model's topics is upserted into its entity's table (a tombstone
deletes it), with the consumed offsets, in one SQL transaction. The read model itself is
a view, so anything that changes how records relate (an identity link, a manager change)
shows the moment it is applied. Rebuilds drop and recreate the view around the swap.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, text
from sqlalchemy.exc import SQLAlchemyError

from hub.errors import ReadModelError
from projections import tracking
from projections.events import RawEvent

RowFn = Callable[[dict[str, Any]], dict[str, Any]]


class EntityTablesBuilder(tracking.TrackedBuilder):
    """Upserts records of ``topics`` (topic -> (entity table, row function)) and keeps a view."""

    def __init__(
        self,
        engine: Engine,
        projection: str,
        suffix: str,
        topics: dict[str, tuple[Table, RowFn]],
        view_name: str,
        view_sql: Callable[[str, str], str],  # (table suffix, SQLAlchemy dialect name) -> CREATE VIEW
    ) -> None:
        super().__init__(engine, projection)
        self.suffix = suffix
        self.topics = topics
        self.view_name = view_name
        self.view_sql = view_sql
        try:
            with engine.begin() as conn, tracking.schema_lock(conn):
                for table, _ in topics.values():
                    table.create(conn, checkfirst=True)
                tracking.metadata.create_all(conn)
                self._create_view(conn, suffix)
        except SQLAlchemyError as exc:
            raise ReadModelError(f"cannot prepare read model {projection}: {exc}") from exc

    def _create_view(self, conn: Connection, suffix: str) -> None:
        conn.execute(text(f"DROP VIEW IF EXISTS {self.view_name}{suffix}"))
        conn.execute(text(self.view_sql(suffix, conn.dialect.name)))

    def before_swap(self, conn: Connection) -> None:
        """Views must not point at tables being renamed (SQLite rewrites or rejects them)."""
        conn.execute(text(f"DROP VIEW IF EXISTS {self.view_name}"))
        conn.execute(text(f"DROP VIEW IF EXISTS {self.view_name}{self.suffix}"))

    def after_swap(self, conn: Connection) -> None:
        self._create_view(conn, "")

    def table_names(self) -> list[str]:
        return [table.name.removesuffix(self.suffix) for table, _ in self.topics.values()]

    def apply_new(self, conn: Connection, events: Sequence[RawEvent]) -> int:
        """Replace each record's row by its new version (a tombstone deletes it)."""
        latest: dict[str, dict[str, dict[str, Any] | None]] = defaultdict(dict)  # topic -> key -> row
        applied = 0
        for event in events:
            target = self.topics.get(event.topic)
            if target is None or event.key is None:
                continue
            _, row = target
            latest[event.topic][event.key["key"]] = None if event.value is None else row(event.value)
            applied += 1
        for topic, rows in latest.items():  # the last version of each key wins, in bulk
            table = self.topics[topic][0]
            key_column = next(iter(table.primary_key.columns))
            conn.execute(table.delete().where(key_column == bindparam("k")), [{"k": key} for key in rows])
            kept = [value for value in rows.values() if value is not None]
            if kept:
                conn.execute(table.insert(), kept)
        return applied
