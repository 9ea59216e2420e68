"""SQL building blocks of the query-based connectors (``sql_poll``, ``outbox``).

Every name is quoted by SQLAlchemy: tables and columns are ``sa.table``/``sa.column``
constructs, never text. The columns are untyped on purpose, so values come back exactly
as the DB-API returns them and a cursor value binds back unchanged: comparisons happen in
the database's own terms (a SQLite timestamp stays the text it was stored as).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, CompileError, DBAPIError, NoSuchTableError, SQLAlchemyError

from connectors.poll_state import key_text
from hub.avro_types import Column, converter_for
from hub.config import PollMode, SourceSettings
from hub.envelope import TableSchema
from hub.errors import ConfigError, SourceDataError, SourceError, SourceUnavailableError, UnsiloError
from hub.sql_urls import engine_url as with_driver

KEY_CHUNK = 1000  # keys per query when walking a table's keys
_to_timestamp = converter_for(Column("ts", "TIMESTAMP"))


@dataclass
class PollTable:
    """One table as it is polled: mode, cursor columns, key and (raw-valued) SQL construct."""

    name: str
    mode: PollMode
    incrementing: str | None
    timestamp: str | None
    columns: list[str]
    key: list[str]
    clause: sa.TableClause
    schema: TableSchema | None
    tracked: bool
    ts_aware: bool = False
    ts_sample: Any = None  # a stored timestamp, to write the lag bound in the same format

    def col(self, name: str) -> sa.ColumnClause[Any]:
        column: sa.ColumnClause[Any] = self.clause.c[name]
        return column

    @property
    def cursor_columns(self) -> list[str]:
        by_mode: dict[str, list[str | None]] = {
            "bulk": list(self.key),
            "incrementing": [self.incrementing],
            "timestamp": [self.timestamp],
            "timestamp+incrementing": [self.timestamp, self.incrementing],
        }
        return [c for c in by_mode[self.mode] if c is not None]


def after(columns: list[sa.ColumnClause[Any]], values: list[Any]) -> sa.ColumnElement[bool]:
    """Rows after ``values`` in the order of ``columns`` (a row-value ``>`` in plain SQL)."""
    terms = [
        sa.and_(*[columns[j] == values[j] for j in range(i)], columns[i] > values[i])
        for i in range(len(columns))
    ]
    return sa.or_(*terms)


def fetch(conn: Connection, query: sa.Select[Any], names: list[str]) -> list[dict[str, Any]]:
    return [dict(zip(names, (plain(v) for v in row), strict=True)) for row in conn.execute(query)]


def plain(value: Any) -> Any:
    """DB-API values the Avro converters understand (JSON documents as text, buffers as bytes)."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def whole_groups(
    conn: Connection, table: PollTable, query: sa.Select[Any], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """A full batch cut at a timestamp boundary: a trailing tie group waits for the next poll,
    and a batch that is one tie group is completed beyond the batch size."""
    column = table.timestamp or ""
    last = rows[-1][column]
    if rows[0][column] != last:
        return [row for row in rows if row[column] != last]
    group = query.where(table.col(column) == last).order_by(*[table.col(k) for k in table.key])
    return fetch(conn, group, table.columns)


def walk_keys(
    conn: Connection, table: PollTable, where: sa.ColumnElement[bool] | None
) -> Iterator[list[str]]:
    """The key texts of the table's rows (matching ``where``), a chunk at a time, in key order."""
    keys = [table.col(k) for k in table.key]
    last: list[Any] | None = None
    while True:
        query = sa.select(*keys).select_from(table.clause)
        if where is not None:
            query = query.where(where)
        if last is not None:
            query = query.where(after(keys, last))
        rows = conn.execute(query.order_by(*keys).limit(KEY_CHUNK)).all()
        if rows:
            yield [key_text([plain(v) for v in row]) for row in rows]
            last = list(rows[-1])
        if len(rows) < KEY_CHUNK:
            return


def epoch_ms(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value if abs(value) > 1e11 else value * 1000)
    try:
        return int(_to_timestamp(value).timestamp() * 1000)
    except SourceDataError:
        return None


def type_name(sql_type: Any, engine: Engine) -> str:
    try:
        return str(sql_type.compile(dialect=engine.dialect))
    except CompileError:  # a column without a declared type (SQLite)
        return "TEXT"


def engine_url(settings: SourceSettings) -> URL:
    try:
        url = sa.make_url(settings.url)
    except ArgumentError as exc:
        raise ConfigError(
            f"source {settings.name}: url is not a SQLAlchemy database URL",
            hint="e.g. postgresql+psycopg2://user@host/db, mysql+pymysql://user@host/db, sqlite:///shop.db",
        ) from exc
    if settings.password is not None:
        url = url.set(password=settings.password.get_secret_value())
    return url


# What drivers say when the server refuses the login: retrying cannot help (psycopg2, PyMySQL).
_REFUSED = ("password authentication failed", "no password supplied", "Access denied for user")


def translate(exc: SQLAlchemyError, source: str) -> UnsiloError:
    """A database error as the hub's: unreachable or locked is retriable, anything else is not."""
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError)):
        reason = exc.orig if isinstance(exc, DBAPIError) else exc
        if any(words in str(reason) for words in _REFUSED):
            return ConfigError(
                f"source {source}: the database refused the login: {str(reason).strip()}",
                hint="check the user in the source's url and its password (the source's password setting)",
            )
        return SourceUnavailableError(f"source {source}: the database did not answer: {reason}")
    if isinstance(exc, DBAPIError):
        return SourceError(f"source {source}: query failed: {type(exc.orig).__name__}: {exc.orig}")
    return SourceError(f"source {source}: {exc}")


def lag_bound(conn: Connection, table: PollTable, moment: dt.datetime, cursor_ts: Any) -> Any:
    """``moment`` (now - lag) as a value the table's timestamp column compares with correctly."""
    moment = moment.astimezone(dt.UTC)
    if conn.dialect.name != "sqlite":
        return moment if table.ts_aware else moment.replace(tzinfo=None)
    sample = cursor_ts if cursor_ts is not None else table.ts_sample
    if sample is None:  # SQLite stores text or numbers: look at one stored value
        column = table.col(table.timestamp or "")
        sample = conn.execute(sa.select(column).where(column.is_not(None)).limit(1)).scalar()
        table.ts_sample = sample
    if isinstance(sample, (int, float)):  # epoch seconds or milliseconds
        return moment.timestamp() * (1000 if abs(sample) > 1e11 else 1)
    separator = "T" if isinstance(sample, str) and sample[10:11] == "T" else " "
    return moment.replace(tzinfo=None).isoformat(sep=separator, timespec="microseconds")


def connect(url: URL, source: str) -> Engine:
    """An engine for ``url``; a SQLite file that does not exist is not created but reported."""
    database = url.database
    local = url.get_backend_name() == "sqlite" and database not in (None, "", ":memory:")
    if local and not Path(database or "").exists():
        raise SourceUnavailableError(
            f"source {source}: SQLite database {database} does not exist",
            hint="check the source's url in unsilo.yaml",
        )
    try:
        return sa.create_engine(with_driver(url), pool_pre_ping=True)
    except ImportError as exc:
        raise ConfigError(
            f"source {source}: the database driver for {url.drivername} is not installed ({exc.name})",
            hint="install it, or name an installed driver in the url (e.g. postgresql+psycopg2://...)",
        ) from exc


def reflect(inspector: sa.Inspector, table: str, where: str, db: str) -> tuple[list[Any], list[str]]:
    """The reflected columns and primary key of ``table``; ConfigError naming it if it is missing."""
    try:
        reflected: list[Any] = list(inspector.get_columns(table))
    except NoSuchTableError:
        reflected = []
    if not reflected:
        raise ConfigError(
            f"{where}: table {table!r} not found in {db or 'the database'}",
            hint="check the table names listed under the source in unsilo.yaml",
        )
    return reflected, list(inspector.get_pk_constraint(table).get("constrained_columns") or [])


def columns_of(reflected: list[Any], key: list[str], engine: Engine) -> list[Column]:
    """The hub's columns of a polled table: every non-key column nullable (a detected delete
    knows only the key)."""
    return [
        Column(
            name=c["name"],
            sql_type=type_name(c["type"], engine),
            nullable=c["name"] not in key,
            primary_key=c["name"] in key,
        )
        for c in reflected
    ]
