"""The read store engine: any SQLAlchemy URL, with real transactions on SQLite too.

pysqlite opens a transaction only before INSERT/UPDATE/DELETE, so a SELECT or DDL at the
start of a unit of work would run outside it. For SQLite the engine here lets SQLAlchemy
emit ``BEGIN IMMEDIATE`` itself: reads, DDL and writes of one ``engine.begin()`` block are
one transaction holding the write lock (a rebuild's table swap depends on it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event

from hub.sql_urls import engine_url


def create_read_store(url: str) -> Engine:
    """An engine for the read store at ``url`` (``postgresql://`` and ``mysql://`` URLs use
    the psycopg2 and PyMySQL drivers Unsilo depends on)."""
    engine = create_engine(engine_url(url))
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA busy_timeout = 30000")

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
