"""Exactly once across crashes for the SQLite connector (the shared crash contract)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hub.config import SourceSettings
from tests.crash_contract import CrashContract
from tests.support import sqlite_source

pytestmark = pytest.mark.integration


class TestSqliteCrashes(CrashContract):
    """SIGKILLs of the SQLite connector during snapshot and streaming."""

    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> None:
        self.db = tmp_path / "counters.db"

    def create_counters(self, rows: int) -> None:
        conn = sqlite3.connect(self.db)
        conn.execute("CREATE TABLE counters (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)")
        conn.executemany("INSERT INTO counters VALUES (?, 0)", [(i,) for i in range(rows)])
        conn.commit()
        conn.close()

    def bump(self, row_id: int) -> None:
        conn = sqlite3.connect(self.db, timeout=30)
        conn.execute("UPDATE counters SET version = version + 1 WHERE id = ?", (row_id,))
        conn.commit()
        conn.close()

    def versions(self) -> dict[int, int]:
        conn = sqlite3.connect(self.db)
        found = dict(conn.execute("SELECT id, version FROM counters"))
        conn.close()
        return found

    def source(self, name: str, system: str) -> SourceSettings:
        return sqlite_source(name, system, self.db, ["counters"], batch_size=100)
