"""``unsilo rebuild mirror``: replay the log into fresh tables, then swap them in atomically.

The live tables keep serving (and the live worker keeps applying) while the shadow tables
(``<table>__rebuild``) are filled from the log. The swap renames tables and moves the
shadow's consumed offsets to the live projection in one SQL transaction, and only when the
shadow has applied at least everything the live tables have, so nothing is skipped or
applied twice: afterwards the live worker skips what the rebuild already applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy import Connection, Engine, create_engine, delete, inspect, text, update

from hub.config import Settings
from projections import tracking
from projections.replay import Progress, end_offsets, replay
from projections.table_mirror.app import raw_topics
from projections.table_mirror.builder import MirrorBuilder
from projections.table_mirror.tables import mirror_table_name

log = structlog.get_logger(__name__)

SUFFIX = "__rebuild"
LIVE = "mirror"
SHADOW = LIVE + SUFFIX


@dataclass(frozen=True)
class RebuildResult:
    events: int
    tables: list[str]


def rebuild_mirror(
    settings: Settings, *, prefix: str = "unsilo.raw.", progress: Progress | None = None
) -> RebuildResult:
    """Rebuild every mirror table from the log and swap the rebuilt ones in."""
    topics = raw_topics(settings, prefix, wait_s=0)
    engine = create_engine(settings.read_store.url)
    try:
        names = [mirror_table_name(t) for t in topics]
        _drop_shadow(engine, names)
        shadow = MirrorBuilder(engine, SHADOW, table_suffix=SUFFIX)
        events = replay(settings, topics, shadow, progress=progress)
        for _ in range(20):
            with engine.begin() as conn:
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("SELECT 1")  # pysqlite opens the transaction lazily
                live = tracking.applied_offsets(conn, LIVE)
                behind = {tp: o for tp, o in live.items() if o > shadow.applied_offsets().get(tp, -1)}
                if not behind:
                    _swap(conn, [n for n in names if _exists(conn, n + SUFFIX)])
                    break
            # the live worker moved on during the replay: catch up, then try again
            until = {tp: o + 1 for tp, o in behind.items()}
            events += replay(settings, topics, shadow, until={**end_offsets(settings, topics), **until})
        else:
            raise RuntimeError("the live mirror kept moving ahead of the rebuild")
        log.info("mirror_rebuilt", events=events, tables=len(names))
        return RebuildResult(events, names)
    finally:
        engine.dispose()


def _exists(conn: Connection, name: str) -> bool:
    return bool(inspect(conn).has_table(name))


def _drop_shadow(engine: Engine, names: list[str]) -> None:
    with engine.begin() as conn:
        for name in names:
            conn.execute(text(f"DROP TABLE IF EXISTS {_quote(conn, name + SUFFIX)}"))
        tracking.metadata.create_all(conn)
        conn.execute(delete(tracking.positions).where(tracking.positions.c.projection == SHADOW))


def _swap(conn: Connection, names: list[str]) -> None:
    for name in names:
        live, shadow, old = (_quote(conn, n) for n in (name, name + SUFFIX, name + "__old"))
        if _exists(conn, name):
            conn.execute(text(f"ALTER TABLE {live} RENAME TO {old}"))
        conn.execute(text(f"ALTER TABLE {shadow} RENAME TO {live}"))
        conn.execute(text(f"DROP TABLE IF EXISTS {old}"))
    positions = tracking.positions
    conn.execute(delete(positions).where(positions.c.projection == LIVE))
    conn.execute(update(positions).where(positions.c.projection == SHADOW).values(projection=LIVE))


def _quote(conn: Connection, name: str) -> str:
    return str(conn.dialect.identifier_preparer.quote(name))
