"""MariaDB binlog capture against a real server (no Kafka): the contract, DDL, types, errors."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog

from connectors.base import Change
from connectors.mysql import MysqlConnector
from hub.config import SourceSettings, TableSettings
from hub.errors import ConfigError, SourceUnavailableError
from tests.connector_contract import BATCH, ConnectorContract, changes_of, drain
from tests.fixtures_mysql import MysqlDatabase, server_connection
from tests.support import free_ports

pytestmark = pytest.mark.integration


def source(url: str, tables: list[str | TableSettings], **extra: Any) -> SourceSettings:
    return SourceSettings(
        name="hr", system="hr", kind="mysql", url=url, tables=tables,
        batch_size=BATCH, snapshot_chunk_size=BATCH, **extra,
    )  # fmt: skip


def afters(changes: list[Change]) -> list[dict[str, Any] | None]:
    return [c.after for c in changes]


class TestMysqlConnector(ConnectorContract):
    """The connector contract, for MariaDB's binlog."""

    db: MysqlDatabase

    @pytest.fixture(autouse=True)
    def _database(self, mysql_db: MysqlDatabase) -> Iterator[None]:
        self.db = mysql_db
        self.opened: list[MysqlConnector] = []
        yield
        for connector in self.opened:
            connector.close()

    def connector(self, tables: list[str | TableSettings], **extra: Any) -> MysqlConnector:
        """A connector over this test's database, closed when the test ends."""
        connector = MysqlConnector(source(self.db.url, tables, **extra))
        self.opened.append(connector)
        return connector

    def make_connector(self, tmp_path: Path, rows: int) -> MysqlConnector:
        self.db.execute("CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL)")
        for row_id in range(1, rows + 1):
            self.db.execute("INSERT INTO customers VALUES (%s, %s)", (row_id, f"customer {row_id}"))
        return self.connector(["customers"])

    def insert(self, row_id: int, name: str) -> None:
        self.db.execute("INSERT INTO customers (id, name) VALUES (%s, %s)", (row_id, name))

    def update(self, row_id: int, name: str) -> None:
        self.db.execute("UPDATE customers SET name = %s WHERE id = %s", (name, row_id))

    def delete(self, row_id: int) -> None:
        self.db.execute("DELETE FROM customers WHERE id = %s", (row_id,))

    def position_order(self, position: str) -> Any:
        file_index, offset, row = position.split(":")
        assert len(file_index) == 6 and len(offset) == 12 and len(row) == 6
        return position

    def streamed(self, connector: MysqlConnector, max_changes: int = 100) -> list[Change]:
        return changes_of(drain(connector, max_changes))

    # -- positions -------------------------------------------------------------------

    def test_a_new_connector_resumes_inside_a_large_transaction(self, tmp_path: Path) -> None:
        """Reopened at a position taken mid-transaction, a fresh connector hands out exactly the rest."""
        first = self.make_connector(tmp_path, rows=0)
        first.open(None)
        drain(first)
        conn = self.db.connect()
        with conn.cursor() as cursor:
            cursor.execute("BEGIN")
            for row_id in range(1, 8):
                cursor.execute("INSERT INTO customers VALUES (%s, %s)", (row_id, f"bulk {row_id}"))
            cursor.execute("COMMIT")
        conn.close()
        self.insert(8, "after")

        head = first.poll(3)
        assert head is not None
        first.close()
        again = self.connector(["customers"])
        again.open(head.position)
        rest = changes_of(drain(again, 3))

        ids = [c.after["id"] for c in head.changes + rest if c.after]
        assert ids == list(range(1, 9))
        assert head.position["skip"] > 0  # the batch ended inside the transaction
        assert len({c.txid for c in head.changes + rest[:-1]}) == 1  # one GTID for the transaction

    def test_file_and_offset_resume_without_gtid(self, tmp_path: Path) -> None:
        """A position without a GTID (as from MySQL) resumes from its binlog file and offset alike."""
        connector = self.make_connector(tmp_path, rows=1)
        connector.open(None)
        resume_at = drain(connector)[-1].position
        self.insert(2, "two")
        self.update(2, "zwei")
        first_time = self.streamed(connector)

        connector.open({**resume_at, "gtid": None})
        second_time = self.streamed(connector)

        assert [c.op for c in first_time] == ["c", "u"]
        assert second_time == first_time

    def test_resume_across_a_binlog_rotation(self, tmp_path: Path) -> None:
        """Changes on both sides of FLUSH BINARY LOGS are replayed from a position before it."""
        connector = self.make_connector(tmp_path, rows=0)
        connector.open(None)
        resume_at = drain(connector)[-1].position
        self.insert(1, "old file")
        self.db.execute("FLUSH BINARY LOGS")
        self.insert(2, "new file")
        first_time = self.streamed(connector)

        for gtid in (resume_at["gtid"], None):
            connector.open({**resume_at, "gtid": gtid})
            assert self.streamed(connector) == first_time
        assert [c.after["id"] for c in first_time if c.after] == [1, 2]
        assert first_time[0].position[:6] < first_time[1].position[:6]

    def test_purged_binlog_file_resumes_by_gtid_or_names_the_problem(self, tmp_path: Path) -> None:
        """With its binlog file purged, a position resumes by GTID; one needing purged events is refused."""
        connector = self.make_connector(tmp_path, rows=0)
        connector.open(None)
        too_old = drain(connector)[-1].position
        self.insert(1, "in the purged file")
        resume_at = self.drained_position(connector)
        self.db.execute("FLUSH BINARY LOGS")
        self.insert(2, "in the new file")
        first_time = self.streamed(connector)
        (current,) = self.db.query("SHOW MASTER STATUS")[0][:1]
        self.db.execute(f"PURGE BINARY LOGS TO '{current}'")

        connector.open(resume_at)
        replayed = self.streamed(connector)
        with pytest.raises(ConfigError, match="no longer on") as no_gtid:
            connector.open({**resume_at, "gtid": None})
        connector.open(too_old)
        with pytest.raises(ConfigError, match="cannot send the binlog") as lost:
            self.streamed(connector)

        assert replayed == first_time
        assert [c.after for c in replayed] == [{"id": 2, "name": "in the new file"}]
        assert "snapshot this source again" in str(no_gtid.value.hint)
        assert "purged" in str(lost.value.hint)

    def drained_position(self, connector: MysqlConnector) -> dict[str, Any]:
        """The position after everything ``connector`` has to hand out now."""
        batches = drain(connector, 100)
        assert batches
        return batches[-1].position

    def test_commit_time_and_gtid_come_with_each_change(self, tmp_path: Path) -> None:
        """ts_ms is the commit time (to the second, as the binlog has it); txid the GTID sequence number."""
        connector = self.make_connector(tmp_path, rows=0)
        connector.open(None)
        drain(connector)
        before = dt.datetime.now(dt.UTC).timestamp() * 1000
        self.insert(1, "one")
        self.insert(2, "two")
        changes = self.streamed(connector)

        (gtid,) = self.db.query("SELECT @@gtid_binlog_pos")[0]
        assert all(before - 1000 <= c.ts_ms <= before + 5000 for c in changes)
        assert [c.txid for c in changes] == [int(gtid.split("-")[-1]) - 1, int(gtid.split("-")[-1])]

    # -- snapshot --------------------------------------------------------------------

    def test_row_changed_while_its_chunk_is_read_is_published_once_from_the_binlog(
        self, tmp_path: Path
    ) -> None:
        """A row updated after its chunk was read comes as the update only, before the chunk's other rows."""
        connector = self.make_connector(tmp_path, rows=3)
        connector.open(None)
        read_chunk = connector._read_chunk

        def read_then_update(*args: Any) -> Any:
            chunk = read_chunk(*args)
            if chunk.rows and chunk.rows[0]["id"] == 1:
                self.update(2, "changed in the window")
            return chunk

        connector._read_chunk = read_then_update  # type: ignore[method-assign]
        changes = changes_of(drain(connector))

        assert [(c.op, (c.after or {})["id"]) for c in changes] == [("u", 2), ("r", 1), ("r", 3)]
        assert changes[0].after == {"id": 2, "name": "changed in the window"}

    def test_composite_key_snapshot_in_key_order(self, tmp_path: Path) -> None:
        """A two-column primary key is read in chunks, in key order, each row once."""
        self.db.execute(
            "CREATE TABLE ledger (account VARCHAR(10), line INT, amount DECIMAL(10,2), "
            "PRIMARY KEY (account, line))"
        )
        for account, line in [("b", 1), ("a", 2), ("a", 1), ("c", 5), ("b", 0)]:
            self.db.execute("INSERT INTO ledger VALUES (%s, %s, 5)", (account, line))
        connector = self.connector(["ledger"])
        connector.open(None)

        reads = changes_of(drain(connector))

        assert [(c.after["account"], c.after["line"]) for c in reads if c.after] == [
            ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("c", 5),
        ]  # fmt: skip

    def test_odd_identifiers_are_quoted(self, tmp_path: Path) -> None:
        """A table ``odd`name`` with a column ``unit price`` is snapshotted and streamed."""
        self.db.execute("CREATE TABLE `odd``name` (`key col` INT PRIMARY KEY, `unit price` VARCHAR(10))")
        self.db.execute("INSERT INTO `odd``name` VALUES (1, 'one')")
        connector = self.connector(["odd`name"])
        connector.open(None)
        snapshot = changes_of(drain(connector))
        self.db.execute("UPDATE `odd``name` SET `unit price` = 'uno' WHERE `key col` = 1")
        streamed = self.streamed(connector)

        assert [c.after for c in snapshot + streamed] == [
            {"key col": 1, "unit price": "one"},
            {"key col": 1, "unit price": "uno"},
        ]

    # -- DDL -------------------------------------------------------------------------

    def test_add_drop_rename_column_mid_stream_map_rows_to_the_columns_of_their_time(
        self, tmp_path: Path
    ) -> None:
        """Rows before each ALTER keep the old columns, rows after it get the new ones."""
        connector = self.make_connector(tmp_path, rows=0)
        connector.open(None)
        drain(connector)
        steps = [
            (
                "ALTER TABLE customers ADD COLUMN email VARCHAR(50)",
                "INSERT INTO customers VALUES (2, 'b', 'b@x')",
            ),
            ("ALTER TABLE customers DROP COLUMN name", "INSERT INTO customers VALUES (3, 'c@x')"),
            ("ALTER TABLE customers RENAME COLUMN email TO mail", "INSERT INTO customers VALUES (4, 'd@x')"),
        ]
        self.insert(1, "a")
        seen = self.streamed(connector)
        schemas = []
        for alter, insert in steps:
            self.db.execute(alter)
            self.db.execute(insert)
            seen += self.streamed(connector)
            schemas.append([c.name for c in connector.tables()[0].columns])

        assert afters(seen) == [
            {"id": 1, "name": "a"},
            {"id": 2, "name": "b", "email": "b@x"},
            {"id": 3, "email": "c@x"},
            {"id": 4, "mail": "d@x"},
        ]
        assert schemas == [["id", "name", "email"], ["id", "email"], ["id", "mail"]]

    def test_a_batch_ends_before_a_ddl_so_each_batch_has_one_layout(self, tmp_path: Path) -> None:
        """Changes before and after an ALTER never share a batch (a batch is encoded with one schema)."""
        connector = self.make_connector(tmp_path, rows=0)
        connector.open(None)
        drain(connector)
        self.insert(1, "a")
        self.db.execute("ALTER TABLE customers ADD COLUMN email VARCHAR(50)")
        self.db.execute("INSERT INTO customers VALUES (2, 'b', 'b@x')")

        first = connector.poll(100)
        first_columns = [c.name for c in connector.tables()[0].columns]
        second = connector.poll(100)

        assert first is not None and second is not None
        assert afters(first.changes) == [{"id": 1, "name": "a"}]
        assert first_columns == ["id", "name"]
        assert afters(second.changes) == [{"id": 2, "name": "b", "email": "b@x"}]
        assert [c.name for c in connector.tables()[0].columns] == ["id", "name", "email"]

    def test_truncate_arrives_as_a_t_change(self, tmp_path: Path) -> None:
        """TRUNCATE of a captured table is a 't' change without rows; another database's is ignored."""
        connector = self.make_connector(tmp_path, rows=2)
        connector.open(None)
        drain(connector)
        self.db.execute(f"TRUNCATE TABLE `{self.db.name}`.customers")
        self.insert(3, "after")
        other = server_connection(self.db.server_url)
        with other.cursor() as cursor:
            cursor.execute("CREATE DATABASE IF NOT EXISTS unsilo_elsewhere")
            cursor.execute("CREATE TABLE IF NOT EXISTS unsilo_elsewhere.customers (id INT PRIMARY KEY)")
            cursor.execute("TRUNCATE unsilo_elsewhere.customers")
            cursor.execute("DROP DATABASE unsilo_elsewhere")
        other.close()

        changes = self.streamed(connector)

        assert [(c.op, c.table, c.before, c.after) for c in changes] == [
            ("t", "customers", None, None),
            ("c", "customers", None, {"id": 3, "name": "after"}),
        ]

    def test_an_alter_of_another_table_does_not_split_the_batch(self, tmp_path: Path) -> None:
        """Only a table whose layout changes ends the batch; changes to the others flow on."""
        self.make_connector(tmp_path, rows=0)  # creates customers
        self.db.execute("CREATE TABLE notes (id INT PRIMARY KEY, body TEXT)")
        connector = self.connector(["customers", "notes"])
        connector.open(None)
        drain(connector)
        self.insert(1, "a")
        self.db.execute("ALTER TABLE notes ADD COLUMN author VARCHAR(20)")
        self.insert(2, "b")

        batch = connector.poll(100)

        assert batch is not None
        assert afters(batch.changes) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
        assert [c.name for c in connector.tables()[1].columns] == ["id", "body", "author"]

    def test_several_alters_behind_are_mapped_from_binlog_column_names(self, tmp_path: Path) -> None:
        """Catching up over several ALTERs, binlog_row_metadata=FULL names each event's columns."""
        with self.global_variable("binlog_row_metadata", "FULL"):
            connector = self.make_connector(tmp_path, rows=0)
            connector.open(None)
            drain(connector)
            self.insert(1, "a")
            self.db.execute("ALTER TABLE customers ADD COLUMN email VARCHAR(50)")
            self.db.execute("INSERT INTO customers VALUES (2, 'b', 'b@x')")
            self.db.execute("ALTER TABLE customers RENAME COLUMN email TO mail")
            self.db.execute("INSERT INTO customers VALUES (3, 'c', 'c@x')")
            self.db.execute("ALTER TABLE customers DROP COLUMN name")
            self.db.execute("INSERT INTO customers VALUES (4, 'd@x')")
            seen = self.streamed(connector)

        assert afters(seen) == [
            {"id": 1, "name": "a"},
            {"id": 2, "name": "b", "email": "b@x"},
            {"id": 3, "name": "c", "mail": "c@x"},
            {"id": 4, "mail": "d@x"},
        ]

    def test_several_alters_behind_without_column_names_stop_with_the_fix(self, tmp_path: Path) -> None:
        """Without binlog_row_metadata=FULL, events whose columns no longer match are refused, not guessed."""
        connector = self.make_connector(tmp_path, rows=0)
        connector.open(None)
        drain(connector)
        self.db.execute("ALTER TABLE customers ADD COLUMN email VARCHAR(50)")
        self.db.execute("INSERT INTO customers VALUES (2, 'b', 'b@x')")
        self.db.execute("ALTER TABLE customers DROP COLUMN email")

        with pytest.raises(ConfigError, match="altered again later") as raised:
            self.streamed(connector)

        assert "binlog_row_metadata = 'FULL'" in str(raised.value.hint)

    def global_variable(self, name: str, value: str) -> Any:
        """Set a global server variable for the block, restoring it afterwards."""
        db = self.db

        class Setting:
            def __enter__(self) -> None:
                (self.old,) = db.query(f"SELECT @@GLOBAL.{name}")[0]
                db.execute(f"SET GLOBAL {name} = %s", (value,))

            def __exit__(self, *exc: object) -> None:
                db.execute(f"SET GLOBAL {name} = %s", (self.old,))

        return Setting()

    def test_restart_after_an_alter_maps_older_events_with_the_saved_columns(self, tmp_path: Path) -> None:
        """Stopped before an ALTER and restarted after it, events from before it keep their old columns."""
        connector = self.make_connector(tmp_path, rows=0)
        connector.open(None)
        resume_at = drain(connector)[-1].position
        connector.close()
        self.insert(1, "before")
        self.db.execute("ALTER TABLE customers ADD COLUMN email VARCHAR(50) FIRST")
        self.db.execute("INSERT INTO customers VALUES ('e@x', 2, 'after')")

        restarted = self.connector(["customers"])
        restarted.open(resume_at)
        seen = self.streamed(restarted)

        assert afters(seen) == [{"id": 1, "name": "before"}, {"email": "e@x", "id": 2, "name": "after"}]

    # -- types -----------------------------------------------------------------------

    KINDS = (
        "CREATE TABLE kinds (id INT PRIMARY KEY, price DECIMAL(12,2), big DECIMAL(38,10), "
        "d DATE, dtm DATETIME(6), ts TIMESTAMP(3) NULL, code CHAR(5), flag TINYINT(1), "
        "active BOOLEAN, data BLOB, bin VARBINARY(8), doc JSON, color ENUM('red','green'), "
        "tags SET('a','b','c'), u BIGINT UNSIGNED, small SMALLINT UNSIGNED, f FLOAT, "
        "t TIME(1), y YEAR, bits BIT(3), note TEXT)"
    )
    ROW = (
        "(%s, 1234567890.12, '-123456789012345678.0123456789', '2024-02-29', "
        "'2024-02-29 13:14:15.123456', '2024-03-01 00:00:00.5', 'ab  ', 1, TRUE, x'00ff10', "
        "x'0102', '{\"a\": [1, 2.50]}', 'green', 'c,a', 18446744073709551615, 65535, 1.1, "
        "'-12:30:00.5', 2024, b'101', NULL)"
    )
    EXPECTED: dict[str, Any] = {
        "price": Decimal("1234567890.12"),
        "big": Decimal("-123456789012345678.0123456789"),
        "d": dt.date(2024, 2, 29),
        "dtm": dt.datetime(2024, 2, 29, 13, 14, 15, 123456),
        "ts": dt.datetime(2024, 3, 1, 0, 0, 0, 500000),
        "code": "ab",
        "flag": 1,
        "active": 1,
        "data": b"\x00\xff\x10",
        "bin": b"\x01\x02",
        "doc": '{"a": [1, 2.50]}',
        "color": "green",
        "tags": "a,c",
        "u": 18446744073709551615,
        "small": 65535,
        "f": 1.1,
        "t": "-12:30:00.500000",
        "y": 2024,
        "bits": 5,
        "note": None,
    }

    def test_types_read_the_same_from_snapshot_and_binlog(self, tmp_path: Path) -> None:
        """Every type comes out identical from the snapshot and from the binlog, and encodes to Avro."""
        self.db.execute(self.KINDS)
        utc = self.db.connect(init_command="SET time_zone = '+00:00'")
        with utc.cursor() as cursor:
            cursor.execute(f"INSERT INTO kinds VALUES {self.ROW}", (1,))
        connector = self.connector(["kinds"])
        connector.open(None)
        snapshot = changes_of(drain(connector))
        with utc.cursor() as cursor:
            cursor.execute(f"INSERT INTO kinds VALUES {self.ROW}", (2,))
        utc.close()
        streamed = self.streamed(connector)
        schema = connector.tables()[0]

        assert snapshot[0].after == {"id": 1, **self.EXPECTED}
        assert streamed[0].after == {"id": 2, **self.EXPECTED}
        avro = schema.row(streamed[0].after)
        assert avro is not None
        assert avro["big"] == Decimal("-123456789012345678.0123456789")
        assert avro["u"] == Decimal(18446744073709551615)
        assert avro["ts"] == dt.datetime(2024, 3, 1, 0, 0, 0, 500000, tzinfo=dt.UTC)
        types = {f["name"]: f["type"] for f in schema.value_schema["fields"][0]["type"][1]["fields"]}
        assert types["flag"] == ["null", "int"] and types["active"] == ["null", "int"]  # not assumed boolean
        assert types["data"] == ["null", "bytes"] and types["doc"] == ["null", "string"]
        assert json.loads(avro["doc"]) == {"a": [1, 2.5]}

    def test_zero_dates_become_null_with_one_warning_per_column(self, tmp_path: Path) -> None:
        """'0000-00-00' dates read as None from snapshot and binlog, logged once per column."""
        table = f"zero_{tmp_path.name[-8:].replace('-', '_')}"
        self.db.execute(
            f"CREATE TABLE {table} (id INT PRIMARY KEY, d DATE NOT NULL, dtm DATETIME, ts TIMESTAMP NULL)"
        )
        zero = self.db.connect(init_command="SET sql_mode = ''")
        with zero.cursor() as cursor:
            cursor.execute(f"INSERT INTO {table} VALUES (1, '0000-00-00', '0000-00-00 00:00:00', 0)")
        connector = self.connector([table])
        with structlog.testing.capture_logs() as logs:
            connector.open(None)
            snapshot = changes_of(drain(connector))
            with zero.cursor() as cursor:
                cursor.execute(f"INSERT INTO {table} VALUES (2, '0000-00-00', '2024-00-00 00:00:00', 0)")
                cursor.execute(f"INSERT INTO {table} VALUES (3, '2024-05-06', '2024-05-06 07:08:09', NULL)")
            streamed = self.streamed(connector)
        zero.close()

        assert afters(snapshot + streamed) == [
            {"id": 1, "d": None, "dtm": None, "ts": None},
            {"id": 2, "d": None, "dtm": None, "ts": None},
            {"id": 3, "d": dt.date(2024, 5, 6), "dtm": dt.datetime(2024, 5, 6, 7, 8, 9), "ts": None},
        ]
        warned = [e["column"] for e in logs if e["event"] == "mysql_zero_date_as_null"]
        assert sorted(warned) == ["d", "dtm", "ts"]
        assert connector.tables()[0].row(streamed[0].after) == {"id": 2, "d": None, "dtm": None, "ts": None}

    def test_latin1_text_is_decoded(self, tmp_path: Path) -> None:
        """A latin1 table's 'é' (and cp1252's '€') arrive as the same text from snapshot and binlog."""
        self.db.execute(
            "CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(40), code CHAR(4)) CHARACTER SET latin1"
        )
        self.db.execute("INSERT INTO people VALUES (1, 'José Müller', 'é')")
        connector = self.connector(["people"])
        connector.open(None)
        snapshot = changes_of(drain(connector))
        self.db.execute("INSERT INTO people VALUES (2, 'Ça coûte 5 €', 'ñ ')")
        streamed = self.streamed(connector)

        assert afters(snapshot + streamed) == [
            {"id": 1, "name": "José Müller", "code": "é"},
            {"id": 2, "name": "Ça coûte 5 €", "code": "ñ"},
        ]

    def test_decimal_values_stay_exact(self, tmp_path: Path) -> None:
        """Money and 65-digit decimals keep every digit, from snapshot and binlog alike."""
        self.db.execute("CREATE TABLE money (id INT PRIMARY KEY, amount DECIMAL(65,30), cents DECIMAL(5,2))")
        values = ["0.000000000000000000000000000001", "-99999999999999999999999999999999999.0", "0.1"]
        self.db.execute("INSERT INTO money VALUES (1, %s, 0.10)", (values[0],))
        connector = self.connector(["money"])
        connector.open(None)
        snapshot = changes_of(drain(connector))
        self.db.execute("INSERT INTO money VALUES (2, %s, -999.99)", (values[1],))
        self.db.execute("INSERT INTO money VALUES (3, %s, 0.30)", (values[2],))
        streamed = self.streamed(connector)
        schema = connector.tables()[0]

        rows = [c.after for c in snapshot + streamed]
        assert [r["amount"] for r in rows if r] == [Decimal(v) for v in values]
        assert all(r["amount"].as_tuple().exponent == -30 for r in rows if r)  # the declared scale
        avro = [schema.row({**r, "amount": None}) for r in rows if r]
        assert [str(a["cents"]) for a in avro if a] == ["0.10", "-999.99", "0.30"]

    # -- errors ----------------------------------------------------------------------

    def test_statement_binlog_format_is_a_config_error_naming_the_setting(self, tmp_path: Path) -> None:
        """binlog_format=STATEMENT is refused with the SET GLOBAL that fixes it."""
        connector = self.make_connector(tmp_path, rows=0)
        with self.global_variable("binlog_format", "STATEMENT"), pytest.raises(ConfigError) as raised:
            connector.open(None)

        assert "binlog_format is STATEMENT" in raised.value.message
        assert "SET GLOBAL binlog_format = 'ROW'" in str(raised.value.hint)
        assert self.db.query("SELECT @@GLOBAL.binlog_format") == [("ROW",)]

    def test_minimal_row_image_is_a_config_error_naming_the_setting(self, tmp_path: Path) -> None:
        """binlog_row_image=MINIMAL is refused: updates would lack their full before image."""
        connector = self.make_connector(tmp_path, rows=0)
        with self.global_variable("binlog_row_image", "MINIMAL"), pytest.raises(ConfigError) as raised:
            connector.open(None)

        assert "binlog_row_image is MINIMAL" in raised.value.message
        assert "SET GLOBAL binlog_row_image = 'FULL'" in str(raised.value.hint)

    def test_missing_replication_grants_name_the_grant_to_run(self, tmp_path: Path) -> None:
        """A user without REPLICATION SLAVE/CLIENT gets the exact GRANT statement, from open and check."""
        self.make_connector(tmp_path, rows=0)
        user = f"ro_{self.db.name[-8:]}"
        self.db.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'")
        self.db.execute(f"GRANT SELECT ON `{self.db.name}`.* TO '{user}'@'%'")
        try:
            url = self.db.url.replace("root@", f"{user}:pw@")
            connector = MysqlConnector(source(url, ["customers"]))
            with pytest.raises(ConfigError, match="lacks REPLICATION SLAVE and REPLICATION CLIENT") as raised:
                connector.open(None)
            problems = connector.check()
        finally:
            self.db.execute(f"DROP USER '{user}'@'%'")

        grant = f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'%';"
        assert raised.value.hint == grant
        assert [p.fix for p in problems] == [grant]

    def test_check_reports_missing_tables_and_keys(self, tmp_path: Path) -> None:
        """check() names a missing table and a table without primary key, each with its fix."""
        self.db.execute("CREATE TABLE ledger (account VARCHAR(10), amount DECIMAL(10,2))")
        connector = self.connector(["ledger", "custmers"])

        problems = connector.check()

        assert [(p.table, p.what.split(" (")[0]) for p in problems] == [
            ("ledger", "source hr: table 'ledger' has no primary key"),
            ("custmers", f"table not found in database {self.db.name}"),
        ]
        with pytest.raises(ConfigError, match="no primary key"):
            connector.open(None)

    def test_unreachable_server_is_retriable_and_names_host_and_port(self, tmp_path: Path) -> None:
        """An unreachable server raises SourceUnavailableError naming host:port, never the password."""
        (port,) = free_ports(1)
        connector = MysqlConnector(
            source(f"mysql://root:sekret-pw@127.0.0.1:{port}/shop", ["customers"], password=None)
        )

        with pytest.raises(SourceUnavailableError) as raised:
            connector.open(None)

        assert raised.value.retriable
        assert f"127.0.0.1:{port}" in str(raised.value)
        assert "sekret-pw" not in str(raised.value) and "sekret-pw" not in repr(raised.value.__cause__)

    def test_wrong_password_is_a_config_error_without_the_password(self, tmp_path: Path) -> None:
        """Access denied names the user and server, not the password, and is not retried."""
        url = self.db.url.replace("root@", "root@")
        connector = MysqlConnector(source(url, ["customers"], password="not-the-password"))

        with pytest.raises(ConfigError, match="refused user 'root'") as raised:
            connector.open(None)

        assert "not-the-password" not in str(raised.value)
        assert not raised.value.retriable

    def test_lost_connection_is_retriable_and_open_reconnects(self, tmp_path: Path) -> None:
        """A killed session surfaces as SourceUnavailableError; open() at the last position carries on."""
        connector = self.make_connector(tmp_path, rows=1)
        connector.open(None)
        resume_at = self.drained_position(connector)
        self.insert(2, "two")
        for (session,) in self.db.query(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()",
            (self.db.name,),
        ):
            self.db.execute(f"KILL {int(session)}")

        with pytest.raises(SourceUnavailableError) as raised:
            connector.poll(BATCH)
        connector.open(resume_at)
        changes = self.streamed(connector)

        assert raised.value.retriable
        assert afters(changes) == [{"id": 2, "name": "two"}]
