"""Query-based capture of any SQLAlchemy database: Kafka Connect JDBC source modes, fixed.

Modes, per table (``poll_mode``):

- ``bulk``: every pass publishes the whole table as 'r' reads, in key-order chunks, passes
  ``bulk_interval_s`` apart.
- ``incrementing``: rows whose strictly increasing ``incrementing_column`` is above the last
  one published.
- ``timestamp``: rows whose ``timestamp_column`` is above the last one published.
- ``timestamp+incrementing``: rows after the cursor (timestamp, id), in that order.

What the JDBC source loses, and what happens here instead:

- *Late commits.* A transaction that stamps its rows T but commits after a row stamped
  T+1 was polled is skipped for good. Here only rows with ``ts <= now - lag_s`` are read,
  so the cursor never passes a transaction shorter than ``lag_s``; in ``incrementing`` mode
  a gap in the ids waits up to ``lag_s`` for the missing id to commit (a rolled-back id
  costs one wait). Timestamps without a zone are UTC, as everywhere in the hub, and
  ``lag_s`` must exceed the clock skew between the writers and this host. SQLite keeps
  timestamps as text or numbers: text in its own format (``YYYY-MM-DD HH:MM:SS[.fff]``,
  ``T`` allowed) or epoch seconds/milliseconds.
- *Ties.* In ``timestamp`` mode a batch never ends inside a group of rows sharing a
  timestamp (the group is taken whole, even beyond the batch size);
  ``timestamp+incrementing`` orders ties by id.
- *Deletes.* With ``detect_deletes`` the published keys (:mod:`connectors.poll_state`, a
  local file: memory stays bounded by a chunk) are compared with the table's when the
  connector opens and every ``delete_check_interval_s``: the table's keys are walked in
  key order, a chunk at a time, and each key left unseen becomes a 'd' whose ``before``
  holds only the key (non-key columns are nullable in a polled table's schema for that
  reason). New rows wait while a check's deletes are handed out. Updates carry no ``before``.

Ops: 'c' for a key not published before, 'u' for a known one, 'r' in bulk mode. On first
start each table's catch-up is reported as its snapshot (batch progress). Rows with
a NULL timestamp are not captured by the timestamp modes (as in Kafka Connect). Names are
quoted by SQLAlchemy (``table``/``column`` constructs, never interpolated); values come as
the DB-API returns them, so the cursor compares in the database's own terms.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from connectors.base import Batch, Change, Position
from connectors.poll_query import (
    PollTable,
    after,
    columns_of,
    connect,
    engine_url,
    epoch_ms,
    fetch,
    lag_bound,
    reflect,
    translate,
    walk_keys,
    whole_groups,
)
from connectors.poll_state import KeyDelta, PublishedKeys, decode_value, encode_value, key_text, key_values
from hub.avro_types import Column
from hub.config import PollMode, SourceSettings, TableSettings
from hub.envelope import Op, TableSchema, table_schema
from hub.errors import ConfigError, SourceUnavailableError

log = structlog.get_logger(__name__)

_MODES_WITH_ID = ("incrementing", "timestamp+incrementing")
Clock = Callable[[], dt.datetime]


@dataclass
class _DeleteScan:
    """A delete check whose gone keys are being emitted, table by table."""

    scan: int
    table: int = 0
    after: str | None = None


class SqlPollConnector:
    """Polls tables of any SQLAlchemy database by query (see module docstring)."""

    kind = "sql_poll"
    reports_initial_load = True

    def __init__(
        self,
        settings: SourceSettings,
        *,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.url = engine_url(settings)
        database = self.url.database or ""
        self.db = Path(database).name if self.url.get_backend_name() == "sqlite" else database
        self._clock: Clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._monotonic = monotonic
        self._engine: Engine | None = None
        self._tables: dict[str, PollTable] = {}
        self._position: Position = {}
        self._keys = PublishedKeys(settings.state_dir / f"{settings.name}.keys.db")
        self._gaps: dict[tuple[str, int], float] = {}
        self._turn = 0
        self._next_delete_check = 0.0
        self._deleting: _DeleteScan | None = None
        for table in settings.tables:
            self._spec(table)  # a missing mode or column is a config error before any I/O

    # -- settings hooks (the outbox connector overrides these) -----------------------

    def _spec(self, table: TableSettings) -> tuple[PollMode, str | None, str | None]:
        """The table's mode, incrementing column and timestamp column."""
        mode = table.poll_mode or self.settings.poll_mode
        timestamp = table.timestamp_column or self.settings.timestamp_column
        if mode is None:
            raise ConfigError(
                f"source {self.name}: table {table.name!r} has no poll_mode",
                hint="set poll_mode (bulk, incrementing, timestamp or timestamp+incrementing) "
                "on the source or the table",
            )
        if mode.startswith("timestamp") and timestamp is None:
            raise ConfigError(
                f"source {self.name}: table {table.name!r} polls by {mode} but names no timestamp_column",
                hint="set timestamp_column to the column holding each row's last-modified time",
            )
        return mode, table.incrementing_column or self.settings.incrementing_column, timestamp

    def _schema(self, table: TableSettings, columns: list[Column], pk: list[str]) -> TableSchema | None:
        if not (table.key or pk):
            raise ConfigError(
                f"source {self.name}: table {table.name!r} has no primary key",
                hint=f"declare its key columns in unsilo.yaml: tables: [{{name: {table.name}, key: [...]}}]"
                " (polling needs a key to tell inserts, updates and deletes apart)",
            )
        return table_schema(self.settings, table, columns, pk)

    def _tracks(self, mode: PollMode) -> bool:
        """Whether the table's published keys are kept (for 'c' versus 'u', and deletes)."""
        return mode != "bulk" or self.settings.detect_deletes

    # -- lifecycle -------------------------------------------------------------------

    def open(self, position: Position | None) -> None:
        """Connect, read the tables' columns, and rewind to ``position``."""
        if position is None:  # first start: each table's first catch-up is reported as its snapshot
            loading = [t.name for t in self.settings.tables] if self.reports_initial_load else []
            position = {
                "epoch": uuid.uuid4().hex[:12],
                "seq": 0,
                "tables": {},
                "snapshot": {"pending": loading},
            }
        self._position = copy.deepcopy(position)
        self._keys.rewind()
        self._gaps.clear()
        self._deleting = None
        self._next_delete_check = self._monotonic()  # a first check finds deletes made while stopped
        try:
            if self._engine is None:
                self._engine = connect(self.url, self.name)
            self._introspect()
            for name in self._tables:
                self._position["tables"].setdefault(name, {"cursor": None, "done_at": None})
            if self._tracking:
                self._sync_keys()
        except SQLAlchemyError as exc:
            raise translate(exc, self.name) from exc
        except sqlite3.Error as exc:
            raise SourceUnavailableError(f"source {self.name}: key state: {exc}") from exc

    def tables(self) -> list[TableSchema]:
        return [t.schema for t in self._tables.values() if t.schema is not None]

    def describe_tables(self) -> list[TableSchema]:
        """The tables' schemas as they are now: connects and reflects, reads no row (validate, replay)."""
        try:
            if self._engine is None:
                self._engine = connect(self.url, self.name)
            self._introspect()
        except SQLAlchemyError as exc:
            raise translate(exc, self.name) from exc
        return self.tables()

    def committed(self, position: Position) -> None:
        """Record the keys of every batch up to ``position`` in the key state file."""
        if not self._tracking:
            return
        try:
            self._keys.commit(position["seq"], _position_id(position))
        except sqlite3.Error as exc:
            raise SourceUnavailableError(f"source {self.name}: key state: {exc}") from exc

    def close(self) -> None:
        self._keys.close()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- polling ---------------------------------------------------------------------

    def poll(self, max_changes: int) -> Batch | None:
        """Deletes found by a due check, else the next rows of the next table that has any."""
        engine = self._require()
        try:
            with engine.connect() as conn:
                return self._delete_batch(conn, max_changes) or self._row_batch(conn, max_changes)
        except SQLAlchemyError as exc:
            raise translate(exc, self.name) from exc
        except sqlite3.Error as exc:
            raise SourceUnavailableError(f"source {self.name}: key state: {exc}") from exc

    def _row_batch(self, conn: Connection, limit: int) -> Batch | None:
        names = list(self._tables)
        for step in range(len(names)):
            index = (self._turn + step) % len(names)
            table = self._tables[names[index]]
            rows = self._read(conn, table, self._position["tables"][table.name], limit)
            loading: list[str] = self._position.setdefault("snapshot", {"pending": []})["pending"]
            if rows or table.name in loading:
                self._turn = (index + 1) % len(names)
                progress: dict[str, Any] = {}
                if table.name in loading:  # status and CLI show the first catch-up as a snapshot
                    progress = {"table": table.name, "rows": len(rows), "done": len(rows) < limit}
                    if progress["done"]:
                        loading.remove(table.name)
                batch = self._rows_batch(table, rows)
                batch.progress = progress
                return batch
        return None

    def _read(
        self, conn: Connection, table: PollTable, state: dict[str, Any], limit: int
    ) -> list[dict[str, Any]]:
        """The table's rows after its cursor, by its mode; moves the cursor past them."""
        order = [table.col(c) for c in table.cursor_columns]
        query = sa.select(*[table.col(c) for c in table.columns]).select_from(table.clause)
        cursor = None if state["cursor"] is None else [decode_value(v) for v in state["cursor"]]
        if table.mode == "bulk" and state["done_at"] is not None:
            if self._clock().timestamp() - state["done_at"] < self.settings.bulk_interval_s:
                return []
            state["done_at"] = cursor = None  # the next pass starts
        if cursor is not None:
            query = query.where(after(order, cursor))
        if table.timestamp is not None:
            moment = self._clock() - dt.timedelta(seconds=self.settings.lag_s)
            upper = lag_bound(conn, table, moment, cursor[0] if cursor else None)
            query = query.where(table.col(table.timestamp) <= upper)
        keys = [table.col(k) for k in table.key if k not in table.cursor_columns]
        rows = fetch(conn, query.order_by(*order, *keys).limit(limit), table.columns)
        if table.mode == "incrementing":
            rows = self._until_gap(table, cursor, rows)
        elif table.mode == "timestamp" and len(rows) == limit:
            rows = whole_groups(conn, table, query, rows)
        if table.mode == "bulk" and len(rows) < limit:
            state["cursor"], state["done_at"] = None, self._clock().timestamp()
        elif rows:
            state["cursor"] = [encode_value(rows[-1][c]) for c in table.cursor_columns]
        return rows

    def _until_gap(
        self, table: PollTable, cursor: list[Any] | None, rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Rows up to the first gap in the ids that has not yet waited ``lag_s``."""
        if self.settings.lag_s <= 0 or cursor is None or not isinstance(cursor[0], int):
            return rows
        last, now, kept = cursor[0], self._monotonic(), []
        for row in rows:
            value = row[table.incrementing or ""]
            gap = isinstance(value, int) and value > last + 1
            if gap and now - self._gaps.setdefault((table.name, last + 1), now) < self.settings.lag_s:
                log.debug("poll_waiting_for_gap", source=self.name, table=table.name, missing=last + 1)
                break
            kept.append(row)
            last = value if isinstance(value, int) else last
        self._gaps = {k: v for k, v in self._gaps.items() if k[0] != table.name or k[1] > last}
        return kept

    def _rows_batch(self, table: PollTable, rows: list[dict[str, Any]]) -> Batch:
        texts = [key_text([row[k] for k in table.key]) for row in rows]
        known = self._keys.published(table.name, texts) if table.mode != "bulk" else set()
        now_ms = int(self._clock().timestamp() * 1000)
        changes = []
        for row, text in zip(rows, texts, strict=True):
            op: Op = "r" if table.mode == "bulk" else "u" if text in known else "c"
            where = json.dumps([encode_value(row[c]) for c in table.cursor_columns], default=str)
            ts_ms = epoch_ms(row[table.timestamp]) if table.timestamp else None
            changes.append(Change(table.name, op, None, row, where, ts_ms or now_ms, snapshot=op == "r"))
        return self._batch(changes, KeyDelta(added={table.name: set(texts)} if table.tracked else {}))

    def _batch(self, changes: list[Change], delta: KeyDelta) -> Batch:
        self._position["seq"] += 1
        delta.seq = self._position["seq"]
        if self._tracking:
            self._keys.handed_out(delta)
        return Batch(changes, copy.deepcopy(self._position))

    @property
    def _tracking(self) -> bool:
        return any(t.tracked for t in self._tables.values())

    # -- published keys and delete detection -----------------------------------------

    def _sync_keys(self) -> None:
        """Make the key state reflect the position opened at (rebuild it if it does not)."""
        self._keys.open()
        wanted = _position_id(self._position)
        if self._keys.position == wanted:
            return
        if self._position["seq"]:
            log.warning("poll_key_state_rebuilt", source=self.name, state=str(self._keys.path))
        self._keys.reset()
        engine = self._require()
        with engine.connect() as conn:
            for table in self._tables.values():
                passed = self._passed(table)
                if table.tracked and passed is not None:
                    for chunk in walk_keys(conn, table, passed):
                        self._keys.apply(None, [({table.name: set(chunk)}, {})])
        self._keys.apply(wanted, [])

    def _passed(self, table: PollTable) -> sa.ColumnElement[bool] | None:
        """Rows the table's cursor has passed (None: none yet)."""
        state = self._position["tables"][table.name]
        if state["cursor"] is None:
            return sa.true() if table.mode == "bulk" and state["done_at"] is not None else None
        cursor = [decode_value(v) for v in state["cursor"]]
        columns = [table.col(c) for c in table.cursor_columns]
        return sa.and_(*[c.is_not(None) for c in columns], sa.not_(after(columns, cursor)))

    def _delete_batch(self, conn: Connection, limit: int) -> Batch | None:
        """'d' for published keys a delete check did not find (the check runs when due)."""
        tracked = [t for t in self._tables.values() if t.tracked]
        if not self.settings.detect_deletes or not tracked:
            return None
        if self._deleting is None:
            if self._monotonic() < self._next_delete_check:
                return None
            scan = self._keys.start_scan()
            for table in tracked:
                for chunk in walk_keys(conn, table, None):
                    self._keys.mark_seen(table.name, chunk, scan)
            self._deleting = _DeleteScan(scan)
            self._next_delete_check = self._monotonic() + self.settings.delete_check_interval_s
        check, removed = self._deleting, KeyDelta()
        changes: list[Change] = []
        now_ms = int(self._clock().timestamp() * 1000)
        while check.table < len(tracked) and len(changes) < limit:
            table = tracked[check.table]
            gone = self._keys.unseen(table.name, check.scan, check.after, limit - len(changes))
            if not gone:
                check.table, check.after = check.table + 1, None
                continue
            check.after = gone[-1]
            for text in gone:
                if self._keys.removal_pending(table.name, text):
                    continue  # already handed out
                before = dict(zip(table.key, key_values(text), strict=True))
                changes.append(Change(table.name, "d", before, None, f"delete-check:{check.scan}", now_ms))
                removed.removed.setdefault(table.name, set()).add(text)
        if check.table >= len(tracked):
            self._deleting = None
        if not changes:
            return None
        log.info("poll_deletes_detected", source=self.name, rows=len(changes), scan=check.scan)
        return self._batch(changes, removed)

    # -- setup -----------------------------------------------------------------------

    def _introspect(self) -> None:
        engine = self._require()
        inspector = sa.inspect(engine)
        tables: dict[str, PollTable] = {}
        for settings in self.settings.tables:
            reflected, pk = reflect(inspector, settings.name, f"source {self.name}", self.db)
            tables[settings.name] = self._poll_table(settings, reflected, pk, engine)
        self._tables = tables

    def _poll_table(
        self, settings: TableSettings, reflected: list[Any], pk: list[str], engine: Engine
    ) -> PollTable:
        mode, incrementing, timestamp = self._spec(settings)
        names = [c["name"] for c in reflected]
        key = list(settings.key or pk)
        schema = self._schema(settings, columns_of(reflected, key, engine), pk)
        if incrementing is None and mode in _MODES_WITH_ID:
            if len(key) != 1:
                raise ConfigError(
                    f"source {self.name}: table {settings.name!r} needs an incrementing_column",
                    hint="name the strictly increasing id column (the key is not a single column)",
                )
            incrementing = key[0]
        for needed in (incrementing, timestamp):
            if needed is not None and needed not in names:
                raise ConfigError(f"source {self.name}: column {needed!r} is not in table {settings.name!r}")
        types = {c["name"]: c["type"] for c in reflected}
        return PollTable(
            name=settings.name,
            mode=mode,
            incrementing=incrementing if mode in _MODES_WITH_ID else None,
            timestamp=timestamp if mode.startswith("timestamp") else None,
            columns=names,
            key=key,
            clause=sa.table(settings.name, *[sa.column(n) for n in names]),
            schema=schema,
            tracked=self._tracks(mode),
            ts_aware=bool(getattr(types.get(timestamp or ""), "timezone", False)),
        )

    def _require(self) -> Engine:
        if self._engine is None:
            raise SourceUnavailableError(f"source {self.name} is not open")
        return self._engine


def _position_id(position: Position) -> str:
    return f"{position['epoch']}:{position['seq']}"
