"""The lag windows (and the last alerted statuses), kept in a small SQLite file.

Why SQLite in the data dir rather than a compacted topic: the windows are the observer's
own derived state (Burrow keeps them in memory), not part of the audit trail; a local file
is updated in place per partition in one transaction, read back in milliseconds on start,
shared by `unsilo lag` and `unsilo api` on the same machine (WAL mode), and adds no
100,000-records-per-sample write load to the very broker whose lag is being watched.
Losing the file only means windows refill (a window's worth of samples).

One row per group holds all its partitions' windows, ``marshal``-encoded (plain tuples of
ints and strings written and read only by this module, loaded as is), so a cluster of 100,000
partitions saves and loads in a fraction of a second.
"""

from __future__ import annotations

import gc
import marshal
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from hub.config import Settings
from hub.errors import ConfigError
from hub.lag import PartitionKey, Window, Windows

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lag_group_windows (
    grp TEXT PRIMARY KEY, format INTEGER NOT NULL, windows BLOB NOT NULL, updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_states (
    subject TEXT PRIMARY KEY, status TEXT NOT NULL, updated_ms INTEGER NOT NULL
) WITHOUT ROWID;
"""
KEEP_MS = 7 * 24 * 3600 * 1000  # windows of groups not seen for a week are dropped
FORMAT = 2  # marshal of {(topic, partition): [(offset, lag, ts_ms), ...]}


def history_path(settings: Settings) -> Path:
    """Where the windows live: ``api.lag_history`` or ``<local.data_dir>/lag-history.db``."""
    return settings.api.lag_history or settings.local.data_dir / "lag-history.db"


def encode_windows(windows: dict[PartitionKey, Window]) -> bytes:
    return marshal.dumps(windows)


def decode_windows(data: bytes) -> dict[PartitionKey, Window]:
    windows = marshal.loads(data)
    if not isinstance(windows, dict):
        raise ValueError("not a windows record")
    return windows


class LagHistory:
    """Windows per (group, topic, partition), durable across restarts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=10.0, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot open the lag history at {path}: {exc}",
                hint="set api.lag_history (or local.data_dir) to a writable place",
            ) from exc

    def load(self, groups: Iterable[str] | None = None) -> Windows:
        """The stored windows (of ``groups`` only, when given)."""
        rows: list[tuple[str, int, bytes]] = []
        query = "SELECT grp, format, windows FROM lag_group_windows"
        if groups is None:
            rows.extend(self._db.execute(query))
        else:
            wanted = list(groups)
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows.extend(self._db.execute(f"{query} WHERE grp IN ({','.join('?' * len(chunk))})", chunk))
        found: Windows = {}
        collecting = gc.isenabled()
        gc.disable()  # a million small tuples at once, none in a cycle
        try:
            for group, version, data in rows:
                if version == FORMAT:
                    try:
                        found[group] = decode_windows(data)
                    except (ValueError, EOFError, TypeError, IndexError):
                        continue  # an unreadable row only means that group's windows refill
        finally:
            if collecting:
                gc.enable()
        return found

    def save(self, windows: Windows, groups: Iterable[str]) -> None:
        """Write the windows of ``groups`` in one transaction, and forget week-old groups."""
        now = int(time.time() * 1000)
        rows = [(g, FORMAT, encode_windows(windows[g]), now) for g in groups if g in windows]
        if not rows:
            return
        with self._transaction():
            self._db.executemany(
                "INSERT INTO lag_group_windows (grp, format, windows, updated_ms) VALUES (?,?,?,?) "
                "ON CONFLICT (grp) DO UPDATE SET format=excluded.format, windows=excluded.windows, "
                "updated_ms=excluded.updated_ms",
                rows,
            )
            self._db.execute("DELETE FROM lag_group_windows WHERE updated_ms < ?", (now - KEEP_MS,))

    def alert_states(self) -> dict[str, str]:
        """The last status alerted for each subject."""
        return dict(self._db.execute("SELECT subject, status FROM alert_states"))

    def save_alert_state(self, subject: str, status: str) -> None:
        now = int(time.time() * 1000)
        with self._transaction():
            self._db.execute(
                "INSERT INTO alert_states (subject, status, updated_ms) VALUES (?,?,?) "
                "ON CONFLICT (subject) DO UPDATE SET status=excluded.status, updated_ms=excluded.updated_ms",
                (subject, status, now),
            )

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
