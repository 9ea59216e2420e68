"""MariaDB through the runner into Kafka: c/u/d and tombstones, and SIGKILLs that lose nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.runner import ConnectorRunner
from hub.config import Settings, SourceSettings
from hub.kafka.topics import raw_topic
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from tests.crash_contract import CrashContract
from tests.fixtures_mysql import MysqlDatabase
from tests.support import topic_messages, unique

pytestmark = pytest.mark.integration


def mysql_source(db: MysqlDatabase, name: str, system: str, **extra: Any) -> SourceSettings:
    return SourceSettings(name=name, system=system, kind="mysql", url=db.url, **extra)


def test_insert_update_delete_arrive_as_c_u_d_and_tombstone(
    settings: Settings, mysql_db: MysqlDatabase
) -> None:
    """A snapshot read, insert, update, delete and TRUNCATE arrive in order: r, c, u, d, tombstone, t."""
    mysql_db.execute("CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50), credit DECIMAL(10,2))")
    mysql_db.execute("INSERT INTO customers VALUES (1, 'Ada', 10.50)")
    system = unique("hr")
    source = mysql_source(mysql_db, unique("maria"), system, tables=["customers"])
    configured = settings.model_copy(update={"sources": [source]})
    ConnectorRunner(configured, source).run(until_idle=True)

    mysql_db.execute("INSERT INTO customers VALUES (2, 'Grace', 0.10)")
    mysql_db.execute("UPDATE customers SET credit = credit + 1 WHERE id = 2")
    mysql_db.execute("DELETE FROM customers WHERE id = 1")
    mysql_db.execute("TRUNCATE TABLE customers")
    ConnectorRunner(configured, source).run(until_idle=True)

    serde = AvroSerde(ConfluentRegistry(settings.registry))
    messages = topic_messages(settings.kafka, raw_topic(system, "customers"))
    keys = [serde.decode(m.key()) if m.key() is not None else None for m in messages]
    values = [serde.decode(m.value()) if m.value() is not None else None for m in messages]
    assert [v["op"] if v else None for v in values] == ["r", "c", "u", "d", None, "t"]
    assert [k["id"] if k else None for k in keys] == [1, 2, 2, 1, 1, None]
    assert values[2] is not None and values[2]["before"]["credit"] == values[1]["after"]["credit"]
    assert str(values[2]["after"]["credit"]) == "1.10"
    assert values[3] is not None and values[3]["before"] == values[0]["after"] and values[3]["after"] is None
    sources = [v["source"] for v in values if v]
    assert {s["connector"] for s in sources} == {"mysql"}
    assert [s["snapshot"] for s in sources] == [True, False, False, False, False]
    assert all(s["db"] == mysql_db.name and s["txid"] for s in sources[1:])
    positions = [s["position"] for s in sources[1:]]
    assert positions == sorted(positions) and len(set(positions)) == 4


class TestMysqlCrashes(CrashContract):
    """SIGKILLs of `unsilo run` on a MariaDB source, during snapshot and streaming."""

    db: MysqlDatabase

    @pytest.fixture(autouse=True)
    def _database(self, mysql_db: MysqlDatabase) -> Iterator[None]:
        self.db = mysql_db
        self._local = threading.local()
        yield

    def create_counters(self, rows: int) -> None:
        self.db.execute("CREATE TABLE counters (id INT PRIMARY KEY, version INT NOT NULL)")
        conn = self.db.connect()
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO counters VALUES (%s, 0)", [(i,) for i in range(rows)])
        conn.close()

    def bump(self, row_id: int) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is None:  # one connection per writer thread
            conn = self._local.conn = self.db.connect()
        with conn.cursor() as cursor:
            cursor.execute("UPDATE counters SET version = version + 1 WHERE id = %s", (row_id,))

    def versions(self) -> dict[int, int]:
        return {int(k): int(v) for k, v in self.db.query("SELECT id, version FROM counters")}

    def source(self, name: str, system: str) -> SourceSettings:
        return mysql_source(
            self.db, name, system, tables=["counters"], batch_size=100, snapshot_chunk_size=100
        )
