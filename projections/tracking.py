"""Consumed positions of each projection, written in the same SQL transaction as its rows.

An event whose offset is at or below the recorded one was already applied and is skipped,
so a redelivery after a crash changes nothing: every event is applied exactly once.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, Integer, MetaData, String, Table, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

metadata = MetaData()

positions = Table(
    "unsilo_projection_positions",
    metadata,
    Column("projection", String(200), primary_key=True),
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("offset", BigInteger, nullable=False),
)


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
