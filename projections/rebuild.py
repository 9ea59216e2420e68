"""``unsilo rebuild <read model>``: replay the log into fresh tables, swap them in atomically.

The live tables keep serving (and the live worker keeps applying) while shadow tables
(``<table>__rebuild``) are filled from the log by a second builder of the same read model.
The swap renames the tables and moves the shadow's consumed offsets to the live projection
in one SQL transaction (``BEGIN IMMEDIATE`` on SQLite, see projections/store.py), and only
once the shadow has applied at least everything the live tables have: nothing is skipped
or applied twice, and afterwards the live worker skips what the rebuild already applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog
from sqlalchemy import Connection, Engine, delete, inspect, text, update

from hub.config import Settings
from hub.errors import ReadModelError
from projections import tracking
from projections.events import Builder
from projections.replay import Progress, end_offsets, replay
from projections.store import create_read_store

log = structlog.get_logger(__name__)

SUFFIX = "__rebuild"


class RebuildableBuilder(Builder, Protocol):
    def table_names(self) -> list[str]:
        """The live (unsuffixed) names of the tables this builder writes."""
        ...


BuilderFactory = Callable[[Engine, str, str], RebuildableBuilder]  # (engine, projection, suffix)


@dataclass(frozen=True)
class RebuildResult:
    events: int
    tables: list[str]


def rebuild(
    settings: Settings,
    projection: str,
    topics: list[str],
    make_builder: BuilderFactory,
    *,
    progress: Progress | None = None,
) -> RebuildResult:
    """Rebuild ``projection`` from ``topics`` and swap the rebuilt tables in."""
    shadow_name = projection + SUFFIX
    engine = create_read_store(settings.read_store.url)
    try:
        _drop_shadow(engine, make_builder(engine, projection, "").table_names(), shadow_name)
        shadow = make_builder(engine, shadow_name, SUFFIX)
        events = replay(settings, topics, shadow, progress=progress)
        for _ in range(20):
            shadow_done = shadow.applied_offsets()
            with engine.begin() as conn:
                live = tracking.applied_offsets(conn, projection)
                behind = {tp: o for tp, o in live.items() if o > shadow_done.get(tp, -1)}
                if not behind:
                    names = [n for n in shadow.table_names() if _exists(conn, n + SUFFIX)]
                    hook = getattr(shadow, "before_swap", None)
                    if hook is not None:
                        hook(conn)
                    _swap(conn, names, projection, shadow_name)
                    hook = getattr(shadow, "after_swap", None)
                    if hook is not None:
                        hook(conn)
                    break
            # the live worker moved on during the replay: catch up, then try again
            until = {**end_offsets(settings, topics), **{tp: o + 1 for tp, o in behind.items()}}
            events += replay(settings, topics, shadow, until=until)
        else:
            raise ReadModelError(f"the live {projection} kept moving ahead of the rebuild; try again")
        log.info("read_model_rebuilt", projection=projection, events=events, tables=len(names))
        return RebuildResult(events, names)
    finally:
        engine.dispose()


def _exists(conn: Connection, name: str) -> bool:
    return bool(inspect(conn).has_table(name))


def _drop_shadow(engine: Engine, names: list[str], shadow_name: str) -> None:
    with engine.begin() as conn, tracking.schema_lock(conn):
        for name in names:
            conn.execute(text(f"DROP TABLE IF EXISTS {_quote(conn, name + SUFFIX)}"))
        tracking.metadata.create_all(conn)
        conn.execute(delete(tracking.positions).where(tracking.positions.c.projection == shadow_name))


def _swap(conn: Connection, names: list[str], projection: str, shadow_name: str) -> None:
    for name in names:
        live, shadow, old = (_quote(conn, n) for n in (name, name + SUFFIX, name + "__old"))
        if _exists(conn, name):
            conn.execute(text(f"ALTER TABLE {live} RENAME TO {old}"))
        conn.execute(text(f"ALTER TABLE {shadow} RENAME TO {live}"))
        conn.execute(text(f"DROP TABLE IF EXISTS {old}"))
    positions = tracking.positions
    conn.execute(delete(positions).where(positions.c.projection == projection))
    conn.execute(update(positions).where(positions.c.projection == shadow_name).values(projection=projection))


def _quote(conn: Connection, name: str) -> str:
    return str(conn.dialect.identifier_preparer.quote(name))
