"""PostgreSQL capture by logical replication with the built-in ``pgoutput`` plugin.

``open`` checks the server (``wal_level = logical``, REPLICATION privilege), creates or
reuses the publication (default ``unsilo_<source>``, FOR TABLE the captured tables) and the
logical replication slot (default ``unsilo_<source>``; created before anything is read, so
its consistent point is where streaming starts), then streams from the position's LSN.

**Positions.** A batch's position is ``{"lsn", "txn", "snapshot"}``: ``lsn`` is the end LSN
of the last transaction published whole (streaming again from there skips it), ``txn``
says how many changes of a transaction published only in part are already in Kafka
(``{"commit": <its commit LSN>, "done": n}``), ``snapshot`` which tables are still to read
and the last key read. A change's own position is ``<commit LSN>:<index in transaction>``
(:func:`position_order` sorts them). The slot's confirmed LSN only moves to positions
committed to Kafka (``committed``), so the server keeps everything not yet published.

**Snapshot** (DBLog-style watermarks, as in connectors/sqlite.py): each chunk of at most
``max_changes`` rows, in key order after the last key read, is selected in a REPEATABLE
READ transaction that first notes its snapshot (``pg_current_snapshot()``) and writes a
watermark into the WAL (a transactional ``pg_logical_emit_message``). The stream is then
published up to that watermark's commit, and the chunk's rows after it: every transaction
the chunk saw committed before the watermark. One that committed before it but was not yet
visible to the chunk (a commit racing the snapshot) is detected by its xid and the chunk is
read again, so each row's read reflects exactly the changes published before it.

**Heartbeat.** Every ``heartbeat_interval_s`` with nothing handed out but uncommitted, the
connector confirms everything it has read and asks for a keepalive; psycopg2 confirms the
keepalive's WAL end when no change is pending, so WAL written only for other tables or
databases never stays pinned by the slot.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import select
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.errors
import structlog

from connectors import pgcatalog
from connectors.base import Batch, Change, Position, add_pending_snapshot
from connectors.pgcatalog import CapturedTable, PostgresSettings
from connectors.pgoutput import ProtocolError, decode, format_lsn, parse_lsn
from connectors.pgstream import WATERMARK_PREFIX, ChangeDecoder, format_position, position_order
from hub.config import SourceSettings
from hub.envelope import TableSchema
from hub.errors import SourceError, SourceUnavailableError

__all__ = ["PostgresConnector", "format_position", "position_order"]

log = structlog.get_logger(__name__)

WATERMARK_TIMEOUT_S = 60.0  # a chunk's watermark must come back through the stream by then
CATCH_UP_TIMEOUT_S = 2.0  # an idle poll waits at most this long to reach the server's WAL end


@dataclass(frozen=True)
class _Visibility:
    """Which transactions a snapshot sees (``pg_current_snapshot()``: ``xmin:xmax:xip,...``)."""

    xmin: int
    xmax: int
    in_progress: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> _Visibility:
        xmin, xmax, xip = text.split(":")
        running = frozenset(int(x) & 0xFFFFFFFF for x in xip.split(",") if x)
        return cls(int(xmin) & 0xFFFFFFFF, int(xmax) & 0xFFFFFFFF, running)

    def sees(self, xid: int) -> bool:
        """Whether a committed transaction's changes are visible (32-bit xids, wrap-around)."""
        if _precedes(xid, self.xmin):
            return True
        return _precedes(xid, self.xmax) and xid not in self.in_progress


def _precedes(a: int, b: int) -> bool:
    return ((a - b) & 0xFFFFFFFF) >= 0x80000000


@dataclass
class _Chunk:
    table: str
    token: str
    visibility: _Visibility
    rows: list[dict[str, Any]]
    cursor: list[Any] | None  # the chunk order values of the last row read
    read_ms: int


class PostgresConnector:
    """Logical replication capture of PostgreSQL tables (see module docstring)."""

    kind = "postgres"

    def __init__(self, settings: SourceSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.pg = PostgresSettings.from_source(settings)
        self.db = self.pg.dbname
        self._conn: Any = None
        self._repl: Any = None
        self._cursor: Any = None
        self._tables: dict[str, CapturedTable] = {}
        self._position: Position = {}
        self._stream = ChangeDecoder(self._tables, self._refresh, 0, None)
        self._chunk: _Chunk | None = None
        self._seen = 0  # highest WAL position the server said it has sent
        self._handed: str = ""
        self._committed: str = ""
        self._next_heartbeat = 0.0

    # -- lifecycle -------------------------------------------------------------------

    def open(self, position: Position | None) -> None:
        """Connect, check, set up publication and slot, and stream from ``position``."""
        self._close_stream()
        if self._conn is None or self._conn.closed:
            self._conn = pgcatalog.connect(self.pg)
        try:
            pgcatalog.check_server(self._conn, self.pg)
            if not self._tables:
                for table in self.settings.tables:
                    self._tables[table.name] = pgcatalog.introspect(self._conn, self.settings, table)
            pgcatalog.ensure_publication(self._conn, self.pg, list(self._tables.values()))
            slot_lsn = pgcatalog.ensure_slot(self._conn, self.pg, resuming=position is not None)
        except psycopg2.Error as exc:
            self.close()
            raise pgcatalog.translate(self.pg, exc, "setting up capture on") from exc
        if position is None:
            position = {
                "lsn": format_lsn(slot_lsn),
                "txn": None,
                "snapshot": {"pending": list(self._tables), "last_pk": None},
            }
            log.info("snapshot_planned", source=self.name, tables=list(self._tables), slot=self.pg.slot)
        self._position = json.loads(json.dumps(position))
        lsn = parse_lsn(self._position["lsn"])
        self._stream = ChangeDecoder(self._tables, self._refresh, lsn, self._position.get("txn"))
        self._seen, self._chunk = lsn, None
        self._handed = self._committed = _key(self._position)
        self._start_stream()

    def close(self) -> None:
        self._close_stream()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def tables(self) -> list[TableSchema]:
        return [table.schema for table in self._tables.values()]

    def describe_tables(self) -> list[TableSchema]:
        """The captured tables' schemas as they are now, without touching the slot or publication."""
        conn = pgcatalog.connect(self.pg)
        try:
            return [pgcatalog.introspect(conn, self.settings, table).schema for table in self.settings.tables]
        except psycopg2.Error as exc:
            raise pgcatalog.translate(self.pg, exc, "reading the tables of") from exc
        finally:
            conn.close()

    def committed(self, position: Position) -> None:
        """Let the slot release the WAL of everything published whole."""
        self._committed = _key(position)
        if self._cursor is not None:
            self._cursor.send_feedback(flush_lsn=parse_lsn(position["lsn"]))

    def resnapshot(self, table: str) -> None:
        """Read ``table`` again (after what is pending), while streaming goes on."""
        self._position["snapshot"] = add_pending_snapshot(self._position.get("snapshot"), table)
        log.info("snapshot_requested", source=self.name, table=table)

    def uninstall(self) -> None:
        """Drop the slot and the publication (the server then keeps no WAL for this source)."""
        self._close_stream()
        if self._conn is None:
            self._conn = pgcatalog.connect(self.pg)
        pgcatalog.drop_slot_and_publication(self._conn, self.pg)

    def _start_stream(self) -> None:
        self._repl = pgcatalog.connect(self.pg, replication=True)
        cursor = self._repl.cursor()
        try:
            cursor.start_replication(
                slot_name=self.pg.slot,
                decode=False,
                start_lsn=self._stream.lsn,
                status_interval=max(1.0, self.pg.heartbeat_interval_s),  # psycopg2: at least 1 s
                options={
                    "proto_version": "1",
                    "publication_names": json.dumps(self.pg.publication),  # a quoted identifier
                    "messages": "true",
                },
            )
        except psycopg2.errors.ObjectInUse as exc:
            self._close_stream()
            raise SourceUnavailableError(
                f"replication slot {self.pg.slot!r} on {self.pg.where} is in use by another connection",
                hint="is another connector for this source still running? it frees the slot when it stops",
            ) from exc
        except psycopg2.Error as exc:
            self._close_stream()
            raise pgcatalog.translate(self.pg, exc, "starting replication from") from exc
        self._cursor = cursor
        self._next_heartbeat = time.monotonic() + self.pg.heartbeat_interval_s

    def _close_stream(self) -> None:
        if self._repl is not None:
            with contextlib.suppress(psycopg2.Error):
                self._repl.close()
        self._repl = self._cursor = None

    # -- polling ---------------------------------------------------------------------

    def poll(self, max_changes: int) -> Batch | None:
        """The next changes (snapshot chunks first), or None when there are none."""
        if self._cursor is None:
            raise SourceUnavailableError(f"source {self.name} is not open")
        try:
            self._heartbeat()
            snapshot = self._position.get("snapshot")
            if snapshot and snapshot["pending"]:
                batch = self._poll_snapshot(max_changes)
            else:
                batch = self._poll_stream(max_changes)
        except psycopg2.Error as exc:
            self.close()  # the next open() connects afresh
            raise pgcatalog.translate(self.pg, exc, "reading changes from") from exc
        except ProtocolError as exc:
            self.close()
            raise SourceError(f"replication stream of {self.pg.where}: {exc}") from exc
        if batch is not None:
            self._handed = _key(batch.position)
        return batch

    def _poll_stream(self, limit: int) -> Batch | None:
        changes: list[Change] = []
        self._read(changes, limit)
        if not changes:
            self._catch_up(changes, limit)
        if not changes:
            return None
        return Batch(changes, self._current_position())

    def _catch_up(self, changes: list[Change], limit: int) -> None:
        """Wait (briefly) until the stream has reached the WAL the server has flushed.

        So that a change committed before ``poll`` is in its batch: without this, a commit
        the server has not yet sent would look like nothing new.
        """
        with self._conn.cursor() as cur:
            cur.execute("SELECT pg_current_wal_flush_lsn()::text")
            target = parse_lsn(cur.fetchone()[0])
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while not changes and self._seen < target and time.monotonic() < deadline:
            self._cursor.send_feedback(reply=True)  # the server answers with its WAL end
            self._wait(0.05)
            self._read(changes, limit)

    def _poll_snapshot(self, limit: int) -> Batch | None:
        snapshot = self._position["snapshot"]
        table = snapshot["pending"][0]
        changes: list[Change] = []
        stream = self._stream
        while True:
            if self._chunk is None:
                self._chunk = self._read_chunk(table, snapshot["last_pk"], self.settings.snapshot_chunk_size)
                stream.expect_watermark(self._chunk.token)
            chunk = self._chunk
            deadline = time.monotonic() + WATERMARK_TIMEOUT_S
            while stream.watermark is None:
                if len(changes) >= limit:  # the stream before the watermark comes first
                    return Batch(changes, self._current_position())
                if not self._read(changes, limit):
                    if time.monotonic() > deadline:
                        raise SourceUnavailableError(
                            f"the snapshot watermark of {table!r} did not come back through the "
                            f"replication stream of {self.pg.where} within {WATERMARK_TIMEOUT_S:.0f}s"
                        )
                    self._wait(0.5)
            watermark, _ = stream.watermark
            self._chunk, stream.watermark = None, None
            if self._consistent(chunk, watermark):
                break
            log.warning("snapshot_chunk_reread", source=self.name, table=table, reason="commit raced it")
        position = format_position(watermark, 0)
        changes += Change.snapshot_reads(table, chunk.rows, position, chunk.read_ms)
        done = len(chunk.rows) < self.settings.snapshot_chunk_size
        if snapshot["last_pk"] is None:
            snapshot["total"] = self._estimate_rows(table)
        if done:
            snapshot["pending"].pop(0)
            snapshot["last_pk"] = None
            log.info("snapshot_table_done", source=self.name, table=table)
        else:
            snapshot["last_pk"] = chunk.cursor
        progress = {"table": table, "rows": len(chunk.rows), "total": snapshot.get("total"), "done": done}
        if not snapshot["pending"]:
            self._position["snapshot"] = None
        return Batch(changes, self._current_position(), progress)

    def _read_chunk(self, table: str, last_pk: list[Any] | None, limit: int) -> _Chunk:
        """One chunk of rows after ``last_pk``, with its snapshot and a watermark in the WAL."""
        captured = self._tables[table]
        token = uuid.uuid4().hex
        with self._conn.cursor() as cur:
            cur.execute(
                "BEGIN ISOLATION LEVEL REPEATABLE READ; SET LOCAL synchronous_commit = local;"
                " SELECT pg_current_snapshot()::text, pg_logical_emit_message(true, %s, %s)::text,"
                " (extract(epoch from statement_timestamp()) * 1000)::bigint",
                (WATERMARK_PREFIX, token),
            )
            try:
                visible, _, read_ms = cur.fetchone()
                if last_pk is None:
                    cur.execute(captured.first_sql, (limit,))
                else:
                    cur.execute(captured.after_sql, (*last_pk, limit))
                rows = cur.fetchall()
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
        names = captured.columns
        width = len(names)
        values = [dict(zip(names, row, strict=False)) for row in rows]
        cursor: list[Any] | None = None
        if rows:
            last = rows[-1]
            if captured.order == ["ctid"]:
                cursor = [last[width]]
            else:
                cursor = [_json_safe(values[-1][k]) for k in captured.order]
        return _Chunk(table, token, _Visibility.parse(visible), values, cursor, read_ms=int(read_ms))

    def _consistent(self, chunk: _Chunk, watermark: int) -> bool:
        """No transaction streamed before the watermark is invisible to the chunk's snapshot."""
        for xid, commit_lsn, tables in self._stream.recent:
            if commit_lsn < watermark and chunk.table in tables and not chunk.visibility.sees(xid):
                return False
        return True

    def _estimate_rows(self, table: str) -> int | None:
        with self._conn.cursor() as cur:
            cur.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s", (self._tables[table].oid,))
            found = cur.fetchone()
        return int(found[0]) if found and found[0] >= 0 else None

    # -- the replication stream ------------------------------------------------------

    def _read(self, changes: list[Change], limit: int) -> bool:
        """Read what the server has sent into ``changes``; False once nothing more is there.

        Stops early at ``limit`` changes and right after the awaited chunk watermark.
        """
        cursor, stream = self._cursor, self._stream
        while len(changes) < limit:
            message = cursor.read_message()
            if cursor.wal_end > self._seen:
                self._seen = cursor.wal_end
            if message is None:
                return False
            stream.handle(decode(message.payload), changes)
            if stream.watermark is not None:
                return True
        return True

    def _refresh(self, name: str) -> CapturedTable:
        """Read a table's schema again after DDL (see ChangeDecoder._follow)."""
        settings = next(t for t in self.settings.tables if t.name == name)
        table = pgcatalog.introspect(self._conn, self.settings, settings)
        self._tables[name] = table
        log.info("postgres_schema_changed", source=self.name, table=name, columns=table.columns)
        return table

    def _wait(self, timeout_s: float) -> None:
        select.select([self._cursor], [], [], timeout_s)

    def _heartbeat(self) -> None:
        """With nothing pending, confirm all that was read and ask the server for its WAL end."""
        now = time.monotonic()
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self.pg.heartbeat_interval_s
        if self._handed != self._committed or self._stream.in_transaction():
            return
        self._cursor.send_feedback(flush_lsn=self._stream.lsn, reply=True, force=True)
        log.debug("postgres_heartbeat", source=self.name, lsn=format_lsn(self._stream.lsn))

    def _current_position(self) -> Position:
        """The position after everything read so far (a copy, to hand out)."""
        self._position["lsn"] = format_lsn(self._stream.lsn)
        self._position["txn"] = self._stream.position_txn()
        position: Position = json.loads(json.dumps(self._position))
        return position


def _key(position: Position) -> str:
    return json.dumps([position.get("lsn"), position.get("txn")])


def _json_safe(value: Any) -> Any:
    """A key value as it can be stored in the position and compared again in SQL."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    return str(value)
