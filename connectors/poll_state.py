"""What a query-based connector remembers between polls: JSON-safe values and published keys.

Polling sees rows, not changes. To tell an insert ('c') from an update ('u'), and to notice
deletes at all, the connector must remember which keys it has published. In memory that
grows with the table and is lost on restart; in the position it would put the whole key
set into every ``_unsilo.offsets`` record. So :class:`KnownKeys` keeps them in a local
SQLite file (``<state_dir>/<source>.keys.db``), memory stays bounded by a batch, and the
file records which position it reflects. The connector applies a batch's key changes to
the file only after the batch is committed to Kafka. When the file does not match the
position the connector opens at (first start, a crash between the Kafka commit and the
file write, a rewind, a lost file) it is rebuilt from the source: every key whose row the
position has passed. A rebuild forgets what only the file knew: rows deleted while the
connector was stopped are not reported, and rows updated since are reported as 'c'.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.errors import SourceUnavailableError

_CHUNK = 500  # host parameters per statement, well under SQLite's limit


def encode_value(value: Any) -> Any:
    """``value`` as JSON data that :func:`decode_value` turns back into the same value."""
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"$dec": str(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$hex": bytes(value).hex()}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    return value


def decode_value(data: Any) -> Any:
    if isinstance(data, dict) and len(data) == 1:
        ((tag, text),) = data.items()
        decoders: dict[str, Any] = {
            "$dt": dt.datetime.fromisoformat,
            "$date": dt.date.fromisoformat,
            "$time": dt.time.fromisoformat,
            "$dec": decimal.Decimal,
            "$hex": bytes.fromhex,
            "$uuid": uuid.UUID,
        }
        if tag in decoders:
            return decoders[tag](text)
    return data


def key_text(values: Sequence[Any]) -> str:
    """A key's values as one deterministic text (how :class:`KnownKeys` stores it)."""
    return json.dumps([encode_value(v) for v in values], separators=(",", ":"), sort_keys=True)


def key_values(text: str) -> list[Any]:
    return [decode_value(v) for v in json.loads(text)]


class KnownKeys:
    """The keys published per table, in a local SQLite file, as of one position.

    Each key carries the number of the last delete check (scan) that saw it in the
    source; a check marks every key it finds, and the keys left unmarked are gone.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        if self._conn is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS meta (position TEXT, scan INTEGER NOT NULL)")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS keys (tbl TEXT NOT NULL, key TEXT NOT NULL, "
                "seen INTEGER NOT NULL, PRIMARY KEY (tbl, key)) WITHOUT ROWID"
            )
            with conn:
                if conn.execute("SELECT count(*) FROM meta").fetchone()[0] == 0:
                    conn.execute("INSERT INTO meta VALUES (NULL, 0)")
        except (OSError, sqlite3.Error) as exc:
            raise SourceUnavailableError(
                f"cannot open the key state file {self.path}: {exc}",
                hint="state_dir of the source must be a writable directory",
            ) from exc
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def position(self) -> str | None:
        """The id of the position the keys reflect (None: unknown, rebuild)."""
        found: str | None = self._db().execute("SELECT position FROM meta").fetchone()[0]
        return found

    @property
    def scan(self) -> int:
        """The number of the latest delete check."""
        return int(self._db().execute("SELECT scan FROM meta").fetchone()[0])

    def reset(self) -> None:
        """Forget every key (before a rebuild); the position is unknown until :meth:`apply`."""
        with self._tx() as conn:
            conn.execute("DELETE FROM keys")
            conn.execute("UPDATE meta SET position = NULL")

    def known(self, table: str, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` the file holds for ``table``."""
        wanted = list(keys)
        found: set[str] = set()
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ",".join("?" for _ in chunk)
            rows = self._db().execute(
                f"SELECT key FROM keys WHERE tbl = ? AND key IN ({marks})", [table, *chunk]
            )
            found.update(row[0] for row in rows)
        return found

    def apply(
        self, position: str | None, changes: Iterable[tuple[dict[str, set[str]], dict[str, set[str]]]]
    ) -> None:
        """Apply (added, removed) key sets per table, in order, then record ``position`` (if given)."""
        with self._tx() as conn:
            scan = int(conn.execute("SELECT scan FROM meta").fetchone()[0])
            for added, removed in changes:
                for table, keys in removed.items():
                    conn.executemany("DELETE FROM keys WHERE tbl = ? AND key = ?", [(table, k) for k in keys])
                for table, keys in added.items():
                    conn.executemany(
                        "INSERT INTO keys VALUES (?, ?, ?) ON CONFLICT (tbl, key) DO UPDATE SET seen = ?",
                        [(table, k, scan, scan) for k in keys],
                    )
            if position is not None:
                conn.execute("UPDATE meta SET position = ?", (position,))

    def start_scan(self) -> int:
        """Begin a delete check; keys added from now on count as seen by it."""
        with self._tx() as conn:
            conn.execute("UPDATE meta SET scan = scan + 1")
        return self.scan

    def mark_seen(self, table: str, keys: Iterable[str], scan: int) -> None:
        with self._tx() as conn:
            conn.executemany(
                "UPDATE keys SET seen = ? WHERE tbl = ? AND key = ?", [(scan, table, k) for k in keys]
            )

    def unseen(self, table: str, scan: int, after: str | None, limit: int) -> list[str]:
        """Up to ``limit`` keys of ``table`` that scan ``scan`` did not see, after ``after``."""
        rows = self._db().execute(
            "SELECT key FROM keys WHERE tbl = ? AND seen < ? AND key > ? ORDER BY key LIMIT ?",
            (table, scan, after or "", limit),
        )
        return [row[0] for row in rows]

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.open()
        assert self._conn is not None
        return self._conn

    def _tx(self) -> sqlite3.Connection:
        """The connection as a context manager: one transaction, committed on success."""
        return self._db()


@dataclass
class KeyDelta:
    """The keys one batch adds and removes, per table; pending until the batch is committed."""

    seq: int = 0
    added: dict[str, set[str]] = field(default_factory=dict)
    removed: dict[str, set[str]] = field(default_factory=dict)


class PublishedKeys(KnownKeys):
    """The keys as of the last batch handed out: the file, overlaid by batches not committed yet."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.pending: list[KeyDelta] = []

    def handed_out(self, delta: KeyDelta) -> None:
        self.pending.append(delta)

    def rewind(self) -> None:
        """Forget the batches not committed (the connector reopens at a committed position)."""
        self.pending.clear()

    def published(self, table: str, keys: list[str]) -> set[str]:
        """Which of ``keys`` are published, counting batches handed out but not committed."""
        found = self.known(table, keys)
        wanted = set(keys)
        for delta in self.pending:
            found |= delta.added.get(table, set()) & wanted
            found -= delta.removed.get(table, set())
        return found

    def removal_pending(self, table: str, key: str) -> bool:
        return any(key in delta.removed.get(table, ()) for delta in self.pending)

    def commit(self, seq: int, position: str) -> None:
        """Write the batches up to ``seq`` to the file, which then reflects ``position``."""
        done = [delta for delta in self.pending if delta.seq <= seq]
        self.pending = [delta for delta in self.pending if delta.seq > seq]
        self.apply(position, [(delta.added, delta.removed) for delta in done])
