"""SQLite capture by triggers, against a real database file in tmp_path (no Kafka)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.sqlite import CHANGELOG, SqliteConnector
from hub.config import SourceSettings, TableSettings
from hub.errors import ConfigError, SourceUnavailableError
from tests.connector_contract import BATCH, ConnectorContract, changes_of, drain
from tests.support import query, run_sql

ODD = 'odd "name"'


def source(db: Path | str, tables: list[str | TableSettings]) -> SourceSettings:
    return SourceSettings(
        name="shop", system="sales", kind="sqlite", url=str(db), tables=tables, batch_size=BATCH
    )


class TestSqliteConnector(ConnectorContract):
    """The connector contract, for SQLite."""

    db: Path

    @pytest.fixture(autouse=True)
    def _close_connectors(self) -> Iterator[None]:
        self.opened: list[SqliteConnector] = []
        yield
        for connector in self.opened:
            connector.close()

    def connector(self, db: Path, tables: list[str | TableSettings]) -> SqliteConnector:
        """A connector over ``db``, closed when the test ends."""
        connector = SqliteConnector(source(db, tables))
        self.opened.append(connector)
        return connector

    def make_connector(self, tmp_path: Path, rows: int) -> SqliteConnector:
        self.db = tmp_path / "shop.db"
        run_sql(self.db, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        for row_id in range(1, rows + 1):
            run_sql(self.db, "INSERT INTO customers VALUES (?, ?)", (row_id, f"customer {row_id}"))
        return self.connector(self.db, ["customers"])

    def insert(self, row_id: int, name: str) -> None:
        run_sql(self.db, "INSERT INTO customers (id, name) VALUES (?, ?)", (row_id, name))

    def update(self, row_id: int, name: str) -> None:
        run_sql(self.db, "UPDATE customers SET name = ? WHERE id = ?", (name, row_id))

    def delete(self, row_id: int) -> None:
        run_sql(self.db, "DELETE FROM customers WHERE id = ?", (row_id,))

    # -- SQLite specifics ------------------------------------------------------------

    def test_snapshot_position_records_the_last_key_read(self, tmp_path: Path) -> None:
        """Mid-snapshot the position holds the last key read, the row count and the watermark."""
        connector = self.make_connector(tmp_path, rows=5)
        connector.open(None)

        first = connector.poll(BATCH)
        second = connector.poll(BATCH)

        assert first is not None
        assert second is not None
        assert first.position["snapshot"] == {"pending": ["customers"], "last_pk": [2], "total": 5}
        assert second.position["snapshot"] == {"pending": ["customers"], "last_pk": [4], "total": 5}
        assert first.progress == {"table": "customers", "rows": 2, "total": 5, "done": False}
        assert {c.position for c in first.changes} == {str(first.position["changelog_id"])}

    def test_committed_prunes_the_changelog(self, tmp_path: Path) -> None:
        """Changelog rows up to a committed position are deleted; later ones stay."""
        connector = self.make_connector(tmp_path, rows=0)
        connector.open(None)
        drain(connector)
        for row_id in range(1, 4):
            self.insert(row_id, f"new {row_id}")
        batch = connector.poll(BATCH)
        assert batch is not None
        assert query(self.db, f"SELECT count(*) FROM {CHANGELOG}") == [(3,)]

        connector.committed(batch.position)

        assert query(self.db, f"SELECT id FROM {CHANGELOG}") == [(3,)]
        assert batch.position["changelog_id"] == 2

    def test_uninstall_removes_triggers_and_changelog(self, tmp_path: Path) -> None:
        """After uninstall the table has no Unsilo triggers, no changelog, and writes still work."""
        connector = self.make_connector(tmp_path, rows=1)
        connector.open(None)
        assert len(query(self.db, "SELECT name FROM sqlite_master WHERE type = 'trigger'")) == 3

        connector.uninstall()
        self.insert(2, "after uninstall")

        assert query(self.db, "SELECT name FROM sqlite_master WHERE type = 'trigger'") == []
        assert query(self.db, "SELECT name FROM sqlite_master WHERE name = ?", (CHANGELOG,)) == []
        assert query(self.db, "SELECT count(*) FROM customers") == [(2,)]

    def test_column_added_between_runs_is_captured_after_reopen(self, tmp_path: Path) -> None:
        """A column added while the connector was stopped shows up in the changes after it restarts."""
        connector = self.make_connector(tmp_path, rows=1)
        connector.open(None)
        resume_at = drain(connector)[-1].position
        connector.close()
        run_sql(self.db, "ALTER TABLE customers ADD COLUMN email TEXT")

        restarted = self.connector(self.db, ["customers"])
        restarted.open(resume_at)
        run_sql(self.db, "INSERT INTO customers VALUES (2, 'Ada', 'ada@example.org')")
        changes = changes_of(drain(restarted))

        assert [(c.op, c.after) for c in changes] == [
            ("c", {"id": 2, "name": "Ada", "email": "ada@example.org"})
        ]
        assert len(query(self.db, "SELECT name FROM sqlite_master WHERE type = 'trigger'")) == 3

    def test_table_name_with_quote_and_space_is_captured(self, tmp_path: Path) -> None:
        """A table called ``odd "name"`` with a column ``unit price`` is snapshotted and streamed."""
        db = tmp_path / "odd.db"
        run_sql(db, 'CREATE TABLE "odd ""name""" ("key col" INTEGER PRIMARY KEY, "unit price" TEXT)')
        run_sql(db, 'INSERT INTO "odd ""name""" VALUES (1, \'one\')')
        connector = self.connector(db, [ODD])
        connector.open(None)
        snapshot = changes_of(drain(connector))

        run_sql(db, 'UPDATE "odd ""name""" SET "unit price" = \'uno\' WHERE "key col" = 1')
        run_sql(db, 'DELETE FROM "odd ""name""" WHERE "key col" = 1')
        streamed = changes_of(drain(connector))
        connector.uninstall()

        assert [(c.table, c.op, c.after) for c in snapshot] == [
            (ODD, "r", {"key col": 1, "unit price": "one"})
        ]
        assert [(c.table, c.op, c.before, c.after) for c in streamed] == [
            (ODD, "u", {"key col": 1, "unit price": "one"}, {"key col": 1, "unit price": "uno"}),
            (ODD, "d", {"key col": 1, "unit price": "uno"}, None),
        ]
        schema = connector.tables()[0]
        assert schema.row(streamed[0].after) == {"key_col": 1, "unit_price": "uno"}
        assert query(db, "SELECT name FROM sqlite_master WHERE type = 'trigger'") == []

    def test_blob_and_decimal_values_come_through_exactly(self, tmp_path: Path) -> None:
        """Binary data, NULL blobs and money arrive unchanged, in the snapshot and in the stream."""
        db = tmp_path / "files.db"
        run_sql(db, "CREATE TABLE files (id INTEGER PRIMARY KEY, data BLOB, thumb BLOB, price DECIMAL(12,2))")
        payload = bytes(range(256))
        run_sql(db, "INSERT INTO files VALUES (1, ?, NULL, '1234567890.12')", (payload,))
        connector = self.connector(db, ["files"])
        connector.open(None)
        schema = connector.tables()[0]
        snapshot = changes_of(drain(connector))

        run_sql(db, "INSERT INTO files VALUES (2, ?, NULL, '0.1')", (b"\x00\x00",))
        run_sql(db, "INSERT INTO files VALUES (3, x'', x'ff', 19.99)")
        streamed = changes_of(drain(connector))

        rows = [schema.row(c.after) for c in snapshot + streamed]
        assert rows == [
            {"id": 1, "data": payload, "thumb": None, "price": Decimal("1234567890.12")},
            {"id": 2, "data": b"\x00\x00", "thumb": None, "price": Decimal("0.10")},
            {"id": 3, "data": b"", "thumb": b"\xff", "price": Decimal("19.99")},
        ]
        assert [str(row["price"]) for row in rows] == ["1234567890.12", "0.10", "19.99"]

    def test_declared_key_stands_in_for_a_missing_primary_key(self, tmp_path: Path) -> None:
        """A table without a primary key is captured by the key columns declared in the settings."""
        db = tmp_path / "legacy.db"
        run_sql(db, "CREATE TABLE ledger (account TEXT, line INTEGER, amount DECIMAL(10,2))")
        for account, line in [("b", 1), ("a", 2), ("a", 1)]:
            run_sql(db, "INSERT INTO ledger VALUES (?, ?, 5)", (account, line))
        connector = self.connector(db, [TableSettings(name="ledger", key=["account", "line"])])
        connector.open(None)

        reads = changes_of(drain(connector))

        assert [(c.after["account"], c.after["line"]) for c in reads if c.after] == [
            ("a", 1),
            ("a", 2),
            ("b", 1),
        ]
        assert connector.tables()[0].key_schema["fields"] == [
            {"name": "account", "type": "string"},
            {"name": "line", "type": "long"},
        ]

    def test_table_without_primary_key_or_declared_key_is_a_config_error(self, tmp_path: Path) -> None:
        """A keyless table with no key in the settings is refused with a hint to declare one."""
        db = tmp_path / "legacy.db"
        run_sql(db, "CREATE TABLE ledger (account TEXT, amount DECIMAL(10,2))")
        connector = self.connector(db, ["ledger"])

        with pytest.raises(ConfigError, match="no primary key") as raised:
            connector.open(None)

        assert raised.value.hint is not None
        assert "ledger" in raised.value.hint

    def test_missing_table_is_a_config_error_naming_it(self, tmp_path: Path) -> None:
        """Capturing a table that is not in the database names the table and the file."""
        db = tmp_path / "shop.db"
        run_sql(db, "CREATE TABLE customers (id INTEGER PRIMARY KEY)")
        connector = self.connector(db, ["customers", "custmers"])

        with pytest.raises(ConfigError, match="'custmers' not found") as raised:
            connector.open(None)

        assert str(db) in str(raised.value)

    def test_missing_database_file_is_source_unavailable(self, tmp_path: Path) -> None:
        """A url pointing at no file raises a retriable SourceUnavailableError and creates no file."""
        missing = tmp_path / "nowhere.db"
        connector = SqliteConnector(source(missing, ["customers"]))

        with pytest.raises(SourceUnavailableError, match="does not exist") as raised:
            connector.open(None)

        assert raised.value.retriable
        assert not missing.exists()

    def test_sqlite_url_form_is_accepted(self, tmp_path: Path) -> None:
        """``sqlite:///path`` and a plain path name the same database file."""
        db = tmp_path / "shop.db"

        assert SqliteConnector(source(f"sqlite:///{db}", ["t"])).path == db
        assert SqliteConnector(source(db, ["t"])).path == db
