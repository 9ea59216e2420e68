"""Consumed positions of each projection, written in the same SQL transaction as its rows.

An event whose offset is at or below the recorded one was already applied and is skipped,
so a redelivery after a crash changes nothing: every event is applied exactly once.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import BigInteger, Column, Connection, Engine, Integer, MetaData, String, Table, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from hub.errors import ReadModelError
from projections.events import RawEvent

metadata = MetaData()

positions = Table(
    "unsilo_projection_positions",
    metadata,
    Column("projection", String(200), primary_key=True),
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("offset", BigInteger, nullable=False),
)


SCHEMA_LOCK = 0x756E73696C6F  # "unsilo": the advisory lock id read models take to create tables


@contextmanager
def schema_lock(conn: Connection) -> Iterator[None]:
    """Serialise table and view creation in one read store across processes.

    Projections started together (``unsilo demo``, a restart) would otherwise create the
    shared positions table, or their own tables, at the same moment, and one fails with a
    duplicate: SQLAlchemy's ``checkfirst`` looks, then creates. PostgreSQL takes an advisory
    lock for the transaction, MySQL/MariaDB a named lock for the session; SQLite already
    serialises writers.
    """
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": SCHEMA_LOCK})
    elif dialect in ("mysql", "mariadb"):
        conn.execute(text("SELECT GET_LOCK('unsilo_schema', 120)"))
    try:
        yield
    finally:
        if dialect in ("mysql", "mariadb"):
            conn.execute(text("SELECT RELEASE_LOCK('unsilo_schema')"))


def applied_offsets(conn: Connection, projection: str) -> dict[tuple[str, int], int]:
    """The last applied offset per (topic, partition) of ``projection``."""
    rows = conn.execute(
        select(positions.c.topic, positions.c.partition, positions.c.offset).where(
            positions.c.projection == projection
        )
    )
    return {(topic, partition): offset for topic, partition, offset in rows}


def record_offsets(conn: Connection, projection: str, offsets: dict[tuple[str, int], int]) -> None:
    """Upsert the last applied offsets (call inside the read model's transaction)."""
    for (topic, partition), offset in offsets.items():
        values = {"projection": projection, "topic": topic, "partition": partition, "offset": offset}
        if conn.dialect.name == "sqlite":
            stmt = sqlite_insert(positions).values(**values)
            conn.execute(stmt.on_conflict_do_update(index_elements=list(values)[:3], set_={"offset": offset}))
            continue
        updated = conn.execute(
            positions.update()
            .where(positions.c.projection == projection)
            .where(positions.c.topic == topic)
            .where(positions.c.partition == partition)
            .values(offset=offset)
        )
        if updated.rowcount == 0:
            conn.execute(positions.insert().values(**values))


class TrackedBuilder(abc.ABC):
    """Base of every read-model builder: events apply exactly once, with their offsets.

    ``apply`` opens one SQL transaction, drops the events at or below the recorded offset
    of their partition, hands the rest to :meth:`apply_new`, and records the newest offsets
    in the same transaction. Subclasses implement ``apply_new`` only.
    """

    def __init__(self, engine: Engine, projection: str) -> None:
        self.engine = engine
        self.projection = projection

    def applied_offsets(self) -> dict[tuple[str, int], int]:
        """The last applied offset per (topic, partition), read from the read store."""
        with self.engine.connect() as conn:
            return applied_offsets(conn, self.projection)

    def apply(self, events: Sequence[RawEvent]) -> int:
        """Apply the events not applied yet; returns how many changed the read model."""
        if not events:
            return 0
        try:
            with self.engine.begin() as conn:
                done = applied_offsets(conn, self.projection)
                newest: dict[tuple[str, int], int] = {}
                fresh = []
                for event in events:
                    where = (event.topic, event.partition)
                    if event.offset > done.get(where, -1):
                        fresh.append(event)
                        newest[where] = max(event.offset, newest.get(where, -1))
                applied = self.apply_new(conn, fresh)
                record_offsets(conn, self.projection, newest)
                return applied
        except SQLAlchemyError as exc:
            raise ReadModelError(f"read model {self.projection}: {exc}") from exc

    @abc.abstractmethod
    def apply_new(self, conn: Connection, events: Sequence[RawEvent]) -> int:
        """Apply events seen for the first time, inside the open transaction."""
