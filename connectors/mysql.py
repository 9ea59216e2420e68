"""MariaDB/MySQL capture from the row-based binlog, read with pymysqlreplication.

**Position.** A transaction start in the binlog (``file``, ``pos``), how many row events of
that transaction were already handed out (``skip``: a batch may end inside a large one), and
the GTID state before it (``gtid``, MariaDB). The binlog is re-read from ``file``:``pos``
(the server seeks there directly); when that file is gone (purged, or a failover to another
server) a MariaDB position resumes from its GTID state instead. Each change's ``position``
string sorts: zero-padded binlog file index, event offset, row index within the event;
``ts_ms`` is the commit (XID) time, ``txid`` the GTID sequence number.

**Snapshot** (DBLog, no locks): each primary-key chunk is one SELECT; the binlog head is read
right after it, and the chunk is published only once the binlog has been published up to
that head. Chunk rows whose key a binlog event touched since the chunk was read are left
out, as that event carries the newer row. A crash mid-snapshot resumes after the last key.

**DDL.** A DDL QueryEvent re-reads information_schema at that point in the stream, so later
rows map onto the new columns and earlier ones stayed on the old. Rows are mapped by column
ordinal onto our own layout (pymysqlreplication's own names are ``UNKNOWN_COLn`` or stale
without ``binlog_row_metadata=FULL``); every TableMap is checked against the layout, and a
table that changed again later is taken from the TableMap's names when the binlog has them.
The layouts travel in the position, so a restart maps old events with the old columns.
"""

from __future__ import annotations

import json
import logging
import re
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import pymysql  # type: ignore[import-untyped]
import structlog
from pymysqlreplication import BinLogStreamReader  # type: ignore[import-untyped]
from pymysqlreplication import event as events
from pymysqlreplication import row_event as row_events

from connectors import mysql_server as server
from connectors.base import Batch, Change, Position, Problem, add_pending_snapshot
from connectors.mysql_schema import Layout, decode_key, encode_key, key_after, quote, refit, truncated_table
from connectors.mysql_server import MysqlServer
from hub.config import SourceSettings
from hub.envelope import Op, TableSchema
from hub.errors import ConfigError, SourceUnavailableError, UnsiloError

log = structlog.get_logger(__name__)
# pymysqlreplication warns on every connection that binlog_row_metadata is not FULL; we map
# columns ourselves (see the module docstring), so that warning is noise here.
logging.getLogger("pymysqlreplication").setLevel(logging.ERROR)

_DDL = re.compile(r"^\s*(?:/\*.*?\*/\s*)*(ALTER|CREATE|DROP|RENAME|TRUNCATE)\b", re.I | re.S)
_IDLE_ADVANCE_S = 5.0  # publish a position-only batch when only other tables moved the binlog
_HEARTBEAT_S = 0.1  # the server sends a heartbeat after this long with nothing to send
_IDLE_WAIT_S = 0.25  # a poll with nothing new waits this long for a change before returning None
_READ_TIMEOUT_S = 30.0  # not a byte (nor a heartbeat) for this long: the server is gone


class _LayoutChange(Exception):
    """A table's layout changes at this event, and the batch already holds changes."""


@dataclass
class _Cursor:
    file: str
    pos: int
    skip: int = 0
    gtid: str | None = None

    def at(self) -> tuple[int, int]:
        return (server.file_index(self.file), self.pos)


@dataclass
class _Txn:
    file: str
    pos: int
    gtid_before: str | None
    gtid: str | None
    domain: str | None
    txid: int | None
    skip: int
    ts_ms: int
    seen: int = 0  # row events of captured tables read so far
    pending: list[tuple[str, Op, Any, Any, str]] = field(default_factory=list)


@dataclass
class _Chunk:
    table: str
    layout: Layout
    rows: list[dict[str, Any]]
    last_key: list[Any] | None
    hi: tuple[int, int]
    label: str
    full: bool
    touched: set[tuple[Any, ...]] = field(default_factory=set)


class MysqlConnector:
    """Binlog capture of one MariaDB/MySQL database (see module docstring)."""

    kind = "mysql"

    def __init__(self, settings: SourceSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.server = MysqlServer.of(settings)
        self.db = self.server.database
        self.server_id = settings.server_id or 100_000 + zlib.crc32(settings.name.encode()) % 2_000_000_000
        self._conn: Any = None
        self._mariadb = False
        self._layouts: dict[str, Layout] = {}
        self._cursor = _Cursor("", 0)
        self._snapshot: dict[str, Any] | None = None
        self._reader: Any = None
        self._dump: Any = None  # the reader's binlog connection, once it has connected
        self._file = ""
        self._txn: _Txn | None = None
        self._resume_skip = 0
        self._gtids: dict[str, str] = {}
        self._by_gtid = False
        self._ctl: server.KeptConnection | None = None  # pymysqlreplication's, kept between polls
        self._chunk: _Chunk | None = None
        self._streaming = False  # the last poll had no snapshot to read
        self._last_batch = time.monotonic()

    # -- lifecycle -------------------------------------------------------------------

    def open(self, position: Position | None) -> None:
        """Connect, check the server's binlog settings and grants, and rewind to ``position``."""
        self._drop_reader()
        self._chunk, self._txn, self._streaming = None, None, False
        try:
            if self._conn is None:
                self._conn = self.server.connect()
                self._preflight()
            current = self._read_layouts(missing_ok=False)
            if position is None:
                file, pos = self._head()
                gtid = server.gtid_at(self._conn, file, pos) if self._mariadb else None
                self._cursor = _Cursor(file, pos, 0, gtid)
                self._snapshot = {"pending": list(current), "last_pk": None}
                self._layouts = current
                log.info("snapshot_planned", source=self.name, tables=list(current), position=f"{file}:{pos}")
            else:
                self._cursor = _Cursor(
                    position["file"], int(position["pos"]), int(position.get("skip", 0)), position.get("gtid")
                )
                self._snapshot = json.loads(json.dumps(position.get("snapshot")))
                saved = position.get("layouts", {})
                self._layouts = {
                    t: Layout.from_json(self.settings, layout.settings, saved[t]) if t in saved else layout
                    for t, layout in current.items()
                }
                self._check_binlog_exists()
        except pymysql.err.MySQLError as exc:
            self.close()  # the next open connects (and checks) afresh
            raise self.server.translate(exc) from exc
        except UnsiloError:
            self.close()
            raise
        self._gtids = server.parse_gtids(self._cursor.gtid)

    def close(self) -> None:
        self._drop_reader()
        if self._ctl is not None:
            ctl, self._ctl = self._ctl, None
            ctl.close_really()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except pymysql.err.Error as exc:  # already broken: nothing to close
                log.debug("mysql_close_failed", source=self.name, error=str(exc))

    def tables(self) -> list[TableSchema]:
        return [layout.schema for layout in self._layouts.values()]

    def committed(self, position: Position) -> None:
        """Nothing to clean up: the server purges its binlog by its own retention."""

    def resnapshot(self, table: str) -> None:
        """Read ``table`` again (after what is pending), while streaming goes on."""
        self._snapshot = add_pending_snapshot(self._snapshot, table)
        log.info("snapshot_requested", source=self.name, table=table)

    # -- polling ---------------------------------------------------------------------

    def poll(self, max_changes: int) -> Batch | None:
        """The next changes after the current position, or None when there are none."""
        self._require()
        try:
            return self._poll(max_changes)
        except pymysql.err.MySQLError as exc:
            self.close()  # the runner rewinds with open(), which connects afresh
            raise self.server.translate(exc) from exc
        except UnsiloError:
            self._drop_reader()
            raise

    def _poll(self, max_changes: int) -> Batch | None:
        started_at = self._cursor.at()
        snapshot = self._snapshot
        snapshotting = bool(snapshot and snapshot["pending"])
        # a poll waits for changes only once streaming: the first one after open() or after the
        # snapshot's last chunk returns at once, so whoever drives a snapshot sees it end promptly
        changes = self._stream(max_changes, wait=self._streaming and not snapshotting)
        self._streaming = not snapshotting
        progress: dict[str, Any] = {}
        if snapshot and snapshotting and len(changes) < max_changes:
            if self._chunk is None:
                table = snapshot["pending"][0]
                if snapshot["last_pk"] is None:  # first chunk: count once, for progress
                    snapshot["total"] = self._count(table)
                self._chunk = self._read_chunk(table, snapshot["last_pk"], self.settings.snapshot_chunk_size)
                changes += self._stream(max_changes, head=self._chunk.hi)
            if self._txn is None and self._cursor.at() >= self._chunk.hi:
                progress = self._publish_chunk(self._chunk, snapshot, changes)
        if not changes and not progress:
            moved = self._cursor.at() != started_at
            if not (moved and time.monotonic() - self._last_batch > _IDLE_ADVANCE_S):
                return None
        self._last_batch = time.monotonic()
        return Batch(changes, self._position(), progress)

    def _publish_chunk(self, chunk: _Chunk, snapshot: dict[str, Any], out: list[Change]) -> dict[str, Any]:
        self._chunk = None
        if self._layouts.get(chunk.table) is not chunk.layout:  # the table changed meanwhile: re-read
            return {}
        ts_ms = int(time.time() * 1000)
        rows = chunk.rows
        if chunk.touched:
            rows = [row for row in rows if chunk.layout.key_of(row) not in chunk.touched]
        out += Change.snapshot_reads(chunk.table, rows, chunk.label, ts_ms)
        if chunk.full:
            snapshot["last_pk"] = encode_key(chunk.last_key or [])
        else:
            snapshot["pending"].pop(0)
            snapshot["last_pk"] = None
            log.info("snapshot_table_done", source=self.name, table=chunk.table)
        total = snapshot.get("total")
        return {"table": chunk.table, "rows": len(rows), "total": total, "done": not chunk.full}

    def _count(self, table: str) -> int:
        with self._conn.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {quote(self.db)}.{quote(table)}")
            return int(cursor.fetchone()[0])

    def _read_chunk(self, table: str, last_pk: list[Any] | None, limit: int) -> _Chunk:
        layout = self._layouts[table]
        query = f"SELECT {', '.join(quote(n) for n in layout.names)} FROM {quote(self.db)}.{quote(table)}"
        params: list[Any] = []
        if last_pk is not None:
            where, params = key_after(layout.key, decode_key(last_pk))
            query += f" WHERE {where}"
        query += f" ORDER BY {', '.join(quote(k) for k in layout.key)} LIMIT %s"
        with self._conn.cursor() as cursor:
            cursor.execute(query, [*params, limit])
            raw = cursor.fetchall()
        file, pos = self._head()  # the high watermark: publish the binlog up to here first
        last_key = [raw[-1][i] for i in layout.key_index] if raw else None
        rows = [layout.snapshot_row(values) for values in raw]
        hi = (server.file_index(file), pos)
        return _Chunk(table, layout, rows, last_key, hi, server.label(file, pos, 0), len(raw) >= limit)

    # -- the binlog ------------------------------------------------------------------

    def _stream(self, limit: int, *, wait: bool = False, head: tuple[int, int] | None = None) -> list[Change]:
        """Changes from the binlog, until ``limit`` or until caught up with its head.

        The reader stays open between polls: one binlog dump, blocking, with heartbeats. It
        reads what has arrived; when nothing has, it reads on (blocking) only inside a
        transaction or up to the binlog's head as of then (``head``, else asked once), so a
        poll hands out everything committed before it. With ``wait`` and nothing new yet, it
        waits up to ``_IDLE_WAIT_S`` for the next change: a change committed meanwhile is read
        the moment it arrives. A blocking read returns within a heartbeat period: a heartbeat
        means the server had nothing left to send, and two in a row with nothing after them
        end the poll even short of the head (a transaction the binlog never ends).
        """
        out: list[Change] = []
        if self._reader is None:
            self._reader = self._open_reader()
        until = time.monotonic() + (_IDLE_WAIT_S if wait else 0.0)
        beats = 0
        while len(out) + (len(self._txn.pending) if self._txn else 0) < limit:
            if self._txn is None and not self._arrived():
                if head is None:
                    head = self._head_at()
                if self._cursor.at() >= head and (out or time.monotonic() >= until):
                    break
            event = self._reader.fetchone()
            if event is None:  # the server ended the dump: the next poll reads again from the cursor
                self._reader = self._dump = None
                break
            if isinstance(event, events.HeartbeatLogEvent):  # carries no event: the position stays
                beats += 1
                if beats >= 2 and (out or time.monotonic() >= until) and not self._arrived():
                    break
                continue
            beats = 0
            try:
                self._handle(event, out)
            except _LayoutChange:  # end the batch before it; the next poll reads it first thing
                self._drop_reader()
                self._txn = None
                break
        if self._txn is not None and self._txn.pending:  # a large transaction: hand out what we have
            txn = self._txn
            self._flush(txn, txn.ts_ms, out)
            self._cursor = _Cursor(txn.file, txn.pos, txn.seen, txn.gtid_before)
        return out

    def _handle(self, event: Any, out: list[Change]) -> None:
        end = event.packet.log_pos
        start = end - event.packet.event_size
        txn = self._txn
        if isinstance(event, events.RotateEvent):
            self._file = event.next_binlog
            if txn is None and self._file != self._cursor.file:
                self._cursor = _Cursor(self._file, event.position, self._resume_skip, self._cursor.gtid)
        elif isinstance(event, events.MariadbGtidEvent):
            domain = str(event.domain_id)
            self._begin(start, event.gtid, domain, event.gtid_seq_no, event.timestamp)
        elif isinstance(event, events.GtidEvent):
            self._begin(start, None, None, event.gno, event.timestamp)
        elif isinstance(event, events.QueryEvent):
            self._on_query(event, start, end, out)
        elif isinstance(event, events.XidEvent):
            self._end(end, event.timestamp, out)
        elif isinstance(event, row_events.TableMapEvent):
            self._on_table_map(event, out)
        elif isinstance(event, row_events.RowsEvent):
            if txn is None:  # a row event outside BEGIN..COMMIT cannot happen in a sane binlog
                self._begin(start, None, None, None, event.timestamp)
            self._on_rows(event, start)
        elif txn is None and end > 0:
            if self._file != self._cursor.file:
                self._cursor = _Cursor(self._file, end, self._resume_skip, self._cursor.gtid)
            elif end > self._cursor.pos:
                self._cursor.pos = end

    def _begin(self, start: int, gtid: str | None, domain: str | None, txid: int | None, ts: int) -> None:
        if self._txn is not None and self._txn.gtid is None and gtid is None:
            return  # BEGIN after MySQL's GTID event: the same transaction
        self._txn = _Txn(
            self._file, start, self._cursor.gtid, gtid, domain, txid, self._resume_skip, ts * 1000
        )
        self._resume_skip = 0

    def _end(self, end: int, ts: int, out: list[Change]) -> None:
        txn = self._txn
        if txn is None:
            return
        if txn.gtid is not None and txn.domain is not None:
            self._gtids[txn.domain] = txn.gtid
        self._flush(txn, ts * 1000, out)
        self._txn = None
        self._cursor = _Cursor(self._file, end, 0, ",".join(self._gtids.values()) or self._cursor.gtid)

    def _flush(self, txn: _Txn, ts_ms: int, out: list[Change]) -> None:
        for table, op, before, after, position in txn.pending:
            out.append(Change(table, op, before, after, position, ts_ms, txid=txn.txid))
        txn.pending.clear()

    def _on_query(self, event: Any, start: int, end: int, out: list[Change]) -> None:
        query = event.query.strip()
        word = query.split(None, 1)[0].upper() if query else ""
        if word == "BEGIN":
            self._begin(start, None, None, None, event.timestamp)
        elif word in ("COMMIT", "ROLLBACK") or (word == "XA" and "COMMIT" in query.upper()):
            self._end(end, event.timestamp, out)
        elif _DDL.match(query):
            schema = event.schema.decode() if isinstance(event.schema, bytes) else str(event.schema)
            if schema == self.db or self.db in query:
                self._on_ddl(query, server.label(self._file, start, 0), out)
                table = truncated_table(query, schema, self.db)
                if table in self._layouts:  # published as 't' (no row, no key), as Debezium does
                    if self._txn is None:
                        self._begin(start, None, None, None, event.timestamp)
                    assert self._txn is not None
                    self._txn.pending.append((table, "t", None, None, server.label(self._file, start, 0)))
            self._end(end, event.timestamp, out)  # DDL commits implicitly; a no-op outside a txn
        if self._txn is None and self._file == self._cursor.file and end > self._cursor.pos:
            self._cursor.pos = end

    def _tables_in_batch(self, out: list[Change]) -> set[str]:
        return {c.table for c in out} | {p[0] for p in (self._txn.pending if self._txn else [])}

    def _on_ddl(self, query: str, position: str, out: list[Change]) -> None:
        """Re-read information_schema here: later rows map onto the table as it is now.

        A batch holds one layout per table (the runner encodes it with ``tables()`` after the
        poll), so a batch that already has changes ends before a DDL that changes a layout.
        """
        fresh = self._read_layouts(missing_ok=True)
        changed = {t: layout for t, layout in fresh.items() if not self._layouts[t].same_columns(layout)}
        if changed and self._tables_in_batch(out) & changed.keys():
            raise _LayoutChange
        for table, layout in changed.items():
            self._layouts[table] = layout
            log.info("mysql_table_schema_changed", source=self.name, table=table, position=position)

    def _on_table_map(self, event: Any, out: list[Change]) -> None:
        layout = self._layouts.get(event.table)
        if layout is None or event.schema != self.db:
            return
        if not layout.fits(event.columns):
            if event.table in self._tables_in_batch(out):
                raise _LayoutChange
            fresh = self._read_layouts(missing_ok=True).get(event.table)
            layout = refit(event.columns, layout, fresh)
            if layout is None:
                raise ConfigError(
                    f"source {self.name}: the binlog's columns of {self.db}.{event.table} at "
                    f"{self._file}:{event.packet.log_pos} match neither the last known layout nor "
                    "information_schema (the table was altered again later) and the binlog does not "
                    "name its columns",
                    hint="SET GLOBAL binlog_row_metadata = 'FULL' (MariaDB 10.5+, MySQL 8.0.14+) for the "
                    "future, and snapshot this source again",
                )
            self._layouts[event.table] = layout
            log.info(
                "mysql_table_layout_from_binlog", source=self.name, table=event.table, columns=layout.names
            )
        layout.patch(event.columns)

    def _on_rows(self, event: Any, start: int) -> None:
        txn = self._txn
        layout = self._layouts.get(event.table)
        if txn is None or layout is None or event.schema != self.db:
            return
        txn.seen += 1
        if txn.seen <= txn.skip:  # handed out before a restart
            return
        label = f"{server.file_index(self._file):06d}:{start:012d}"
        chunk = self._chunk if self._chunk is not None and self._chunk.table == event.table else None
        for index, row in enumerate(event.rows):
            before = after = None
            if isinstance(event, row_events.WriteRowsEvent):
                op: Op = "c"
                after = layout.binlog_row(row["values"], row["none_sources"])
            elif isinstance(event, row_events.DeleteRowsEvent):
                op = "d"
                before = layout.binlog_row(row["values"], row["none_sources"])
            else:
                op = "u"
                before = layout.binlog_row(row["before_values"], row["before_none_sources"])
                after = layout.binlog_row(row["after_values"], row["after_none_sources"])
            if chunk is not None:
                chunk.touched.update(layout.key_of(image) for image in (before, after) if image)
            txn.pending.append((event.table, op, before, after, f"{label}:{index:06d}"))

    def _open_reader(self) -> Any:
        cursor = self._cursor
        self._resume_skip, self._file, self._txn, self._dump = cursor.skip, cursor.file, None, None
        stream_connections = 0

        def connect(**kwargs: Any) -> Any:
            nonlocal stream_connections
            if kwargs.get("db") == "information_schema":  # its control connection: ours, kept open
                if self._ctl is None:
                    self._ctl = server.KeptConnection(server.open_connection(**kwargs))
                else:
                    self._ctl.conn.ping(reconnect=True)  # idle since the last poll: may have timed out
                return self._ctl
            stream_connections += 1
            if stream_connections > 1:  # pymysqlreplication reconnects from its start: refuse
                raise SourceUnavailableError(f"lost the binlog connection to {self.server.where}")
            self._dump = server.open_connection(**kwargs)
            return self._dump

        settings = {**self.server.connect_args(), "connect_timeout": 10, "read_timeout": _READ_TIMEOUT_S}
        where: dict[str, Any] = {"resume_stream": True, "log_file": cursor.file, "log_pos": cursor.pos}
        if self._by_gtid and cursor.gtid:  # the file is gone: find the transaction by its GTID
            where = {"is_mariadb": True, "auto_position": cursor.gtid}
            self._by_gtid = False  # the events read now give file:offset on this server
        return BinLogStreamReader(
            settings,
            self.server_id,
            blocking=True,  # kept open between polls: no new binlog dump (and its set-up) per poll
            slave_heartbeat=_HEARTBEAT_S,  # so a blocking read returns when there is nothing new
            only_schemas=[self.db],
            only_tables=list(self._layouts),
            filter_non_implemented_events=False,
            enable_logging=False,
            pymysql_wrapper=connect,
            **where,
        )

    def _drop_reader(self) -> None:
        self._dump = None
        if self._reader is not None:
            reader, self._reader = self._reader, None
            try:
                reader.close()
            except Exception as exc:  # closing a broken connection must not hide the real error
                log.debug("mysql_reader_close_failed", source=self.name, error=str(exc))

    # -- setup -----------------------------------------------------------------------

    def check(self) -> list[Problem]:
        """What would stop capture (binlog settings, grants, tables, keys), without changing anything."""
        conn = self.server.connect()
        try:
            return [
                *server.problems(conn, self.server, self.server_id),
                *server.table_problems(server.read_columns(conn, self.db), self.settings, self.db),
            ]
        except pymysql.err.MySQLError as exc:
            raise self.server.translate(exc) from exc
        finally:
            conn.close()

    def _preflight(self) -> None:
        """Refuse settings that would lose changes, naming the setting or GRANT to fix it."""
        self._mariadb = server.is_mariadb(self._conn)
        found = server.problems(self._conn, self.server, self.server_id)
        if found:
            raise ConfigError(f"source {self.name}: {found[0].what}", hint=found[0].fix)

    def _read_layouts(self, *, missing_ok: bool) -> dict[str, Layout]:
        return server.read_layouts(self._conn, self.server, self.settings, missing_ok=missing_ok)

    def _head(self) -> tuple[str, int]:
        return server.head(self._conn, self.server)

    def _head_at(self) -> tuple[int, int]:
        file, pos = self._head()
        return (server.file_index(file), pos)

    def _arrived(self) -> bool:
        """Whether a read of the binlog would not wait (also before the reader has connected)."""
        return self._dump is None or server.has_data(self._dump)

    def _check_binlog_exists(self) -> None:
        self._by_gtid = False
        if self._cursor.file in server.binlog_files(self._conn):
            return
        if self._mariadb and self._cursor.gtid:  # purged, or another server (failover)
            self._by_gtid = True
            log.info("mysql_resume_by_gtid", source=self.name, file=self._cursor.file, gtid=self._cursor.gtid)
        else:
            raise ConfigError(
                f"source {self.name}: binlog file {self._cursor.file} to resume from is no longer on "
                f"{self.server.where} (purged)",
                hint="raise binlog retention (expire_logs_days / binlog_expire_logs_seconds) and "
                "snapshot this source again",
            )

    # -- helpers ---------------------------------------------------------------------

    def _position(self) -> Position:
        cursor = self._cursor
        position: Position = {
            "file": cursor.file,
            "pos": cursor.pos,
            "skip": cursor.skip,
            "gtid": cursor.gtid,
            "snapshot": self._snapshot if self._snapshot and self._snapshot["pending"] else None,
            "layouts": {table: layout.to_json() for table, layout in self._layouts.items()},
        }
        copied: Position = json.loads(json.dumps(position))
        return copied

    def _require(self) -> None:
        if self._conn is None:
            raise SourceUnavailableError(f"source {self.name} is not open")
