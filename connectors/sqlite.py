"""SQLite capture by triggers into a changelog table.

``open`` installs AFTER INSERT/UPDATE/DELETE triggers on every captured table; they write
the old and new row as JSON into ``_unsilo_changelog`` (AUTOINCREMENT id = the position).
The snapshot is read in primary-key chunks, each in one read transaction together with
the changelog's high watermark, and the changelog up to that watermark is published
first: every snapshot read then reflects exactly the changes published before it.
Changelog rows are pruned once their position is committed to Kafka.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import structlog

from connectors.base import Batch, Change, Position, Problem, add_pending_snapshot
from hub.avro_types import Column
from hub.config import SourceSettings
from hub.envelope import TableSchema, table_schema
from hub.errors import ConfigError, SourceDataError, SourceUnavailableError

log = structlog.get_logger(__name__)

CHANGELOG = "_unsilo_changelog"
_CHUNK_CURSOR = "\x00cursor"  # where a snapshot row carries its chunk cursor until published
_OPS = {"I": "c", "U": "u", "D": "d"}


def quote(identifier: str) -> str:
    """``identifier`` as a quoted SQL identifier (never interpolated raw)."""
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sqlite_path(url: str) -> Path:
    """The database file of a ``sqlite:///path`` URL or a plain path."""
    for prefix in ("sqlite:///", "sqlite://"):
        if url.startswith(prefix):
            return Path(url[len(prefix) :])
    return Path(url)


class SqliteConnector:
    """Trigger-based capture of a SQLite database (see module docstring)."""

    kind = "sqlite"

    def __init__(self, settings: SourceSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.path = sqlite_path(settings.url)
        self.db = self.path.name
        self._conn: sqlite3.Connection | None = None
        self._schemas: dict[str, TableSchema] = {}
        self._blob_columns: dict[str, set[str]] = {}
        self._position: Position = {}
        self._schema_version: int | None = None

    # -- lifecycle -------------------------------------------------------------------

    def open(self, position: Position | None) -> None:
        """Connect, install changelog and triggers, and rewind to ``position``."""
        if not self.path.exists():
            raise SourceUnavailableError(
                f"SQLite database {self.path} does not exist",
                hint="check the source's url in unsilo.yaml",
            )
        if self._conn is None:
            self._conn = self._connect()
            self._introspect()
            self._install()
            self._schema_version = int(self._conn.execute("PRAGMA schema_version").fetchone()[0])
        if position is None:
            position = {
                "changelog_id": self._high_watermark(),
                "snapshot": {"pending": list(self._schemas), "last_pk": None},
            }
            log.info("snapshot_planned", source=self.name, tables=list(self._schemas))
        self._position = json.loads(json.dumps(position))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def tables(self) -> list[TableSchema]:
        return list(self._schemas.values())

    def committed(self, position: Position) -> None:
        """Prune changelog rows that are safely in Kafka."""
        conn = self._require()
        try:
            conn.execute(f"DELETE FROM {CHANGELOG} WHERE id <= ?", (int(position["changelog_id"]),))
        except sqlite3.OperationalError as exc:  # busy: prune next time
            log.warning("changelog_prune_deferred", source=self.name, error=str(exc))

    def check(self) -> list[Problem]:
        """What would stop capture, found without changing the database."""
        if not self.path.exists():
            return [Problem(None, f"database file {self.path} does not exist", "check the source's url")]
        problems = []
        if not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK):
            problems.append(
                Problem(
                    None,
                    f"{self.path} or its directory is not writable (triggers, changelog and WAL need it)",
                    f"grant write access: chmod u+w {self.path} {self.path.parent}",
                )
            )
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            for table in self.settings.tables:
                info = conn.execute(f"PRAGMA table_info({quote(table.name)})").fetchall()
                if not info:
                    problems.append(
                        Problem(table.name, "table not found", "fix the table name in unsilo.yaml")
                    )
                    continue
                columns = {row[1] for row in info}
                has_key = any(row[5] for row in info) or table.key or table.row_hash_key
                if not has_key:
                    problems.append(
                        Problem(
                            table.name,
                            "no primary key",
                            f"declare one: tables: [{{name: {table.name}, key: [...]}}]"
                            " or row_hash_key: true",
                        )
                    )
                unknown = [c for c in [*(table.key or []), *table.mask] if c not in columns]
                if unknown:
                    problems.append(
                        Problem(
                            table.name, f"unknown column(s) {unknown}", "fix the column names in unsilo.yaml"
                        )
                    )
        finally:
            conn.close()
        return problems

    def resnapshot(self, table: str) -> None:
        """Read ``table`` again (after what is pending), while streaming goes on."""
        self._position["snapshot"] = add_pending_snapshot(self._position.get("snapshot"), table)
        log.info("snapshot_requested", source=self.name, table=table)

    def uninstall(self) -> None:
        """Remove the triggers and the changelog table."""
        conn = self._require()
        with conn:
            for table in self._schemas:
                for suffix in ("ins", "upd", "del"):
                    conn.execute(f"DROP TRIGGER IF EXISTS {quote(_trigger(table, suffix))}")
            conn.execute(f"DROP TABLE IF EXISTS {CHANGELOG}")

    # -- polling ---------------------------------------------------------------------

    def poll(self, max_changes: int) -> Batch | None:
        """The next changes after the current position, or None when there are none."""
        conn = self._require()
        try:
            self._follow_schema_changes(conn)
            conn.execute("BEGIN")
            try:
                return self._poll_in_transaction(conn, max_changes)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise SourceUnavailableError(f"reading {self.path} failed: {exc}") from exc

    def _poll_in_transaction(self, conn: sqlite3.Connection, max_changes: int) -> Batch | None:
        after_id = int(self._position["changelog_id"])
        snapshot = self._position.get("snapshot")
        if not snapshot or not snapshot["pending"]:
            changes, last_id = self._stream(conn, after_id, None, max_changes)
            if not changes and last_id == after_id:
                return None
            self._position = {"changelog_id": last_id, "snapshot": None}
            return Batch(changes, self._copy_position())
        watermark = self._high_watermark(conn)
        changes, last_id = self._stream(conn, after_id, watermark, max_changes)
        if last_id < watermark:  # more log to publish before the next chunk
            self._position["changelog_id"] = last_id
            return Batch(changes, self._copy_position())
        table = snapshot["pending"][0]
        if snapshot["last_pk"] is None:  # first chunk: count once, for progress
            snapshot["total"] = conn.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0]
        rows = self._chunk(conn, table, snapshot["last_pk"], max_changes)
        ts_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        cursor: list[Any] | None = None
        for row in rows:
            cursor = row.pop(_CHUNK_CURSOR)
            changes.append(Change(table, "r", None, row, str(watermark), ts_ms, snapshot=True))
        self._position["changelog_id"] = watermark
        if len(rows) < max_changes:
            snapshot["pending"].pop(0)
            snapshot["last_pk"] = None
            log.info("snapshot_table_done", source=self.name, table=table)
        else:
            snapshot["last_pk"] = cursor
        progress = {
            "table": table,
            "rows": len(rows),
            "total": snapshot.get("total"),
            "done": len(rows) < max_changes,
        }
        return Batch(changes, self._copy_position(), progress)

    def _stream(
        self, conn: sqlite3.Connection, after_id: int, upto: int | None, limit: int
    ) -> tuple[list[Change], int]:
        query = f"SELECT id, tbl, op, before, after, ts FROM {CHANGELOG} WHERE id > ?"
        params: list[Any] = [after_id]
        if upto is not None:
            query += " AND id <= ?"
            params.append(upto)
        query += " ORDER BY id LIMIT ?"
        params.append(limit)
        changes: list[Change] = []
        last_id = after_id
        for change_id, table, op, before, after, ts in conn.execute(query, params):
            last_id = change_id
            if table not in self._schemas:
                continue
            changes.append(
                Change(
                    table,
                    _OPS[op],  # type: ignore[arg-type]
                    self._decode_row(table, before),
                    self._decode_row(table, after),
                    str(change_id),
                    _epoch_ms(ts),
                )
            )
        return changes, last_id

    def _chunk(
        self, conn: sqlite3.Connection, table: str, last_pk: list[Any] | None, limit: int
    ) -> list[dict[str, Any]]:
        schema = self._schemas[table]
        columns = ", ".join(quote(c.name) for c in schema.columns)
        order = self._chunk_order(schema)
        key = ", ".join(order)
        query = f"SELECT {columns}, {key} FROM {quote(table)}"
        params: list[Any] = []
        if last_pk is not None:
            query += f" WHERE ({key}) > ({', '.join('?' for _ in order)})"
            params.extend(last_pk)
        query += f" ORDER BY {key} LIMIT ?"
        params.append(limit)
        names = [c.name for c in schema.columns]
        width = len(names)
        rows = []
        for row in conn.execute(query, params):
            values = dict(zip(names, row[:width], strict=True))
            values[_CHUNK_CURSOR] = list(row[width:])
            rows.append(values)
        return rows

    @staticmethod
    def _chunk_order(schema: TableSchema) -> list[str]:
        """Snapshot chunks follow the key; a row-hash table (no key) follows its rowid."""
        return [quote(k) for k in schema.key] if schema.key else ["rowid"]

    # -- setup -----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 10000")
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
                log.info("sqlite_wal_enabled", source=self.name, previous=mode)
        except sqlite3.Error as exc:
            raise SourceUnavailableError(f"cannot open SQLite database {self.path}: {exc}") from exc
        return conn

    def _follow_schema_changes(self, conn: sqlite3.Connection) -> None:
        """After DDL (``PRAGMA schema_version`` moved), re-read the tables and reinstall triggers.

        Rows written between the DDL and this poll were logged by the old triggers, so a
        column added in that window reads as null in those few events.
        """
        version = int(conn.execute("PRAGMA schema_version").fetchone()[0])
        if version == self._schema_version:
            return
        log.info("sqlite_schema_changed", source=self.name)
        self._introspect()
        self._install()
        self._schema_version = int(conn.execute("PRAGMA schema_version").fetchone()[0])

    def _introspect(self) -> None:
        conn = self._require()
        for table in self.settings.tables:
            info = conn.execute(f"PRAGMA table_info({quote(table.name)})").fetchall()
            if not info:
                raise ConfigError(
                    f"source {self.name}: table {table.name!r} not found in {self.path}",
                    hint="check the table names listed under the source in unsilo.yaml",
                )
            pk = [name for _, name in sorted((row[5], row[1]) for row in info if row[5])]
            key = table.key or pk
            columns = [
                Column(
                    name=row[1],
                    sql_type=row[2] or "BLOB",
                    nullable=not row[3] and not row[5] and row[1] not in key,
                    primary_key=row[1] in key,
                )
                for row in info
            ]
            self._schemas[table.name] = table_schema(self.settings, table, columns, pk)
            self._blob_columns[table.name] = {
                c.name for c in columns if "BLOB" in c.sql_type.upper() or not c.sql_type
            }

    def _install(self) -> None:
        """Create the changelog and (re)create the triggers in one write transaction.

        Triggers are replaced on every open so that their row images match the columns
        just introspected (a column added since the last run is captured too); doing it
        in one IMMEDIATE transaction leaves no moment in which a write goes uncaptured.
        """
        conn = self._require()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {CHANGELOG} ("
                "id INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, op TEXT NOT NULL, "
                "before TEXT, after TEXT, "
                "ts TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')))"
            )
            for table, schema in self._schemas.items():
                self._install_triggers(conn, table, schema)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        log.info("sqlite_triggers_installed", source=self.name, tables=list(self._schemas))

    def _install_triggers(self, conn: sqlite3.Connection, table: str, schema: TableSchema) -> None:
        blobs = self._blob_columns[table]

        def image(alias: str) -> str:
            parts = []
            for column in schema.columns:
                ref = f"{alias}.{quote(column.name)}"
                value = ref
                if column.name in blobs:  # hex(NULL) is '': keep a NULL blob NULL, not empty
                    value = f"CASE WHEN {ref} IS NULL THEN NULL ELSE hex({ref}) END"
                parts.append(f"{_literal(column.name)}, {value}")
            return f"json_object({', '.join(parts)})"

        name = _literal(table)
        bodies = {
            "ins": ("INSERT", f"VALUES ({name}, 'I', NULL, {image('NEW')})"),
            "upd": ("UPDATE", f"VALUES ({name}, 'U', {image('OLD')}, {image('NEW')})"),
            "del": ("DELETE", f"VALUES ({name}, 'D', {image('OLD')}, NULL)"),
        }
        for suffix, (event, values) in bodies.items():
            conn.execute(f"DROP TRIGGER IF EXISTS {quote(_trigger(table, suffix))}")
            conn.execute(
                f"CREATE TRIGGER {quote(_trigger(table, suffix))} "
                f"AFTER {event} ON {quote(table)} FOR EACH ROW BEGIN "
                f"INSERT INTO {CHANGELOG} (tbl, op, before, after) {values}; END"
            )

    # -- helpers ---------------------------------------------------------------------

    def _high_watermark(self, conn: sqlite3.Connection | None = None) -> int:
        conn = conn or self._require()
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (CHANGELOG,)).fetchone()
        return int(row[0]) if row else 0

    def _decode_row(self, table: str, text: str | None) -> dict[str, Any] | None:
        if text is None:
            return None
        try:
            row: dict[str, Any] = json.loads(text, parse_float=decimal.Decimal)
        except json.JSONDecodeError as exc:
            raise SourceDataError(f"changelog row for {table} is not JSON") from exc
        for column in self._blob_columns[table]:
            if row.get(column) is not None:
                row[column] = bytes.fromhex(row[column])
        return row

    def _copy_position(self) -> Position:
        copied: Position = json.loads(json.dumps(self._position))
        return copied

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SourceUnavailableError(f"source {self.name} is not open")
        return self._conn


def _trigger(table: str, suffix: str) -> str:
    return f"_unsilo_{table}_{suffix}"


def _epoch_ms(text: str) -> int:
    moment = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)
