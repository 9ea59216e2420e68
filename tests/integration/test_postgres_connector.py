"""PostgreSQL capture by logical replication, against a real PostgreSQL 15 (and Kafka at the end)."""

from __future__ import annotations

import datetime as dt
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from pydantic import SecretStr

from connectors.base import Batch
from connectors.pgcatalog import UNAVAILABLE
from connectors.pgoutput import parse_lsn
from connectors.postgres import PostgresConnector, position_order
from connectors.runner import ConnectorRunner
from hub.config import Settings, SourceSettings, TableSettings
from hub.errors import ConfigError, SourceUnavailableError
from hub.kafka.topics import raw_topic
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from tests.connector_contract import BATCH, ConnectorContract, changes_of, drain
from tests.fixtures_postgres import LocalPostgres, run_sql
from tests.support import free_ports, topic_messages, unique, wait_for, write_config

pytestmark = pytest.mark.integration


def source(url: str, tables: list[str | TableSettings], **extra: Any) -> SourceSettings:
    settings: dict[str, Any] = {"batch_size": BATCH, "snapshot_chunk_size": BATCH, **extra}
    return SourceSettings(name="shop", system="sales", kind="postgres", url=url, tables=tables, **settings)


def drain_until(connector: PostgresConnector, count: int, timeout_s: float = 30.0) -> list[Batch]:
    """Batches polled until they hold ``count`` changes (the stream may arrive in pieces)."""
    batches: list[Batch] = []
    deadline = time.monotonic() + timeout_s
    while sum(len(b.changes) for b in batches) < count:
        assert time.monotonic() < deadline, f"only {changes_of(batches)} of {count} changes arrived"
        batch = connector.poll(BATCH)
        if batch is not None:
            batches.append(batch)
    return batches


def slot_state(url: str, slot: str = "unsilo_shop") -> list[tuple[Any, ...]]:
    return run_sql(
        url,
        "SELECT slot_name, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    )


class TestPostgresConnector(ConnectorContract):
    """The connector contract, for PostgreSQL (``customers`` with REPLICA IDENTITY FULL)."""

    url: str

    @pytest.fixture(autouse=True)
    def _database(self, postgres_db: str) -> Iterator[None]:
        self.url = postgres_db
        self.opened: list[PostgresConnector] = []
        yield
        for connector in self.opened:
            connector.close()

    def connector(self, tables: list[str | TableSettings], **extra: Any) -> PostgresConnector:
        """A connector over the test's database, closed when the test ends."""
        connector = PostgresConnector(source(self.url, tables, **extra))
        self.opened.append(connector)
        return connector

    def make_connector(self, tmp_path: Path, rows: int) -> PostgresConnector:
        run_sql(self.url, "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL)")
        run_sql(self.url, "ALTER TABLE customers REPLICA IDENTITY FULL")
        if rows:
            run_sql(
                self.url,
                "INSERT INTO customers SELECT i, 'customer ' || i FROM generate_series(1, %s) i",
                (rows,),
            )
        return self.connector(["customers"])

    def insert(self, row_id: int, name: str) -> None:
        run_sql(self.url, "INSERT INTO customers (id, name) VALUES (%s, %s)", (row_id, name))

    def update(self, row_id: int, name: str) -> None:
        run_sql(self.url, "UPDATE customers SET name = %s WHERE id = %s", (name, row_id))

    def delete(self, row_id: int) -> None:
        run_sql(self.url, "DELETE FROM customers WHERE id = %s", (row_id,))

    def position_order(self, position: str) -> Any:
        return position_order(position)

    # -- PostgreSQL specifics --------------------------------------------------------

    def test_snapshot_position_records_table_and_last_key(self, tmp_path: Path) -> None:
        """Mid-snapshot the position names the table still pending and the last key read."""
        connector = self.make_connector(tmp_path, rows=5)
        connector.open(None)

        first = connector.poll(BATCH)
        second = connector.poll(BATCH)

        assert first is not None and second is not None
        assert first.position["snapshot"]["pending"] == ["customers"]
        assert [first.position["snapshot"]["last_pk"], second.position["snapshot"]["last_pk"]] == [[2], [4]]
        assert first.progress["table"] == "customers" and first.progress["done"] is False
        assert parse_lsn(second.position["lsn"]) > parse_lsn(first.position["lsn"])

    def test_replica_identity_full_gives_full_before_images(self, tmp_path: Path) -> None:
        """With REPLICA IDENTITY FULL an update's and a delete's before image is the whole old row."""
        connector = self.make_connector(tmp_path, rows=1)
        connector.open(None)
        drain(connector)

        self.update(1, "renamed")
        self.delete(1)
        changes = changes_of(drain(connector))

        assert [(c.op, c.before) for c in changes] == [
            ("u", {"id": 1, "name": "customer 1"}),
            ("d", {"id": 1, "name": "renamed"}),
        ]

    def test_default_replica_identity_gives_key_only_before_images(self, tmp_path: Path) -> None:
        """Without REPLICA IDENTITY FULL the before image is the key alone, and still encodes."""
        run_sql(self.url, "CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, note text)")
        run_sql(self.url, "INSERT INTO items VALUES (1, 'one', 'n'), (2, 'two', NULL)")
        connector = self.connector(["items"])
        connector.open(None)
        drain(connector)

        run_sql(self.url, "UPDATE items SET name = 'uno' WHERE id = 1")
        run_sql(self.url, "UPDATE items SET id = 20 WHERE id = 2")
        run_sql(self.url, "DELETE FROM items WHERE id = 1")
        changes = changes_of(drain(connector))

        assert [(c.op, c.before, c.after) for c in changes] == [
            ("u", {"id": 1}, {"id": 1, "name": "uno", "note": "n"}),
            ("u", {"id": 2}, {"id": 20, "name": "two", "note": None}),
            ("d", {"id": 1}, None),
        ]
        schema = connector.tables()[0]
        assert schema.row(changes[2].before) == {"id": 1, "name": None, "note": None}

    def test_truncate_is_op_t(self, tmp_path: Path) -> None:
        """TRUNCATE of a captured table arrives as one 't' change without row images."""
        connector = self.make_connector(tmp_path, rows=2)
        connector.open(None)
        drain(connector)

        run_sql(self.url, "TRUNCATE customers")
        changes = changes_of(drain(connector))

        assert [(c.table, c.op, c.before, c.after, c.snapshot) for c in changes] == [
            ("customers", "t", None, None, False)
        ]
        assert changes[0].txid is not None

    def test_changes_carry_txid_and_commit_time(self, tmp_path: Path) -> None:
        """Streamed changes carry the source transaction id and its commit time; one txn, one txid."""
        connector = self.make_connector(tmp_path, rows=0)
        connector.open(None)
        drain(connector)
        before = time.time() * 1000

        conn = psycopg2.connect(self.url)
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO customers VALUES (1, 'a'), (2, 'b')")
            cur.execute("SELECT txid_current()")
            txid = cur.fetchone()[0]
        conn.close()
        self.insert(3, "c")
        changes = changes_of(drain(connector, max_changes=10))

        assert [c.txid for c in changes[:2]] == [txid & 0xFFFFFFFF] * 2
        assert changes[2].txid not in (None, changes[0].txid)
        assert all(before - 1000 <= c.ts_ms <= time.time() * 1000 + 1000 for c in changes)
        assert [c.position.split(":")[1] for c in changes] == ["1", "2", "1"]
        assert changes[0].position.split(":")[0] == changes[1].position.split(":")[0]

    def test_values_of_every_mapped_type_come_through_exactly(self, tmp_path: Path) -> None:
        """Numeric, date, timestamp(tz), bool, bytea, jsonb, uuid, enum, array values are exact both ways."""
        run_sql(self.url, "CREATE TYPE mood AS ENUM ('sad', 'happy')")
        run_sql(
            self.url,
            "CREATE TABLE kinds (id bigint PRIMARY KEY, price numeric(12,2), born date, seen timestamptz, "
            "at timestamp, ok boolean, data bytea, doc jsonb, ref uuid, feel mood, tags text[], "
            "span interval, ratio double precision, note varchar(20))",
        )
        insert = "INSERT INTO kinds VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        ref = uuid.uuid4()
        payload = bytes(range(256))
        row = (
            Decimal("1234567890.12"), dt.date(1999, 12, 31),
            dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            dt.datetime(2024, 1, 2, 3, 4, 5, 6), True, payload, '{"b": [1, 2.5], "a": "x"}', str(ref),
            "happy", ["a", "b c"], dt.timedelta(days=1, hours=2), 0.1, "café",
        )  # fmt: skip
        run_sql(self.url, insert, (1, *row))
        connector = self.connector(["kinds"])
        connector.open(None)
        snapshot = changes_of(drain(connector))
        run_sql(self.url, insert, (2, *row))
        run_sql(self.url, "INSERT INTO kinds (id, ok, data) VALUES (3, false, '')")
        streamed = changes_of(drain(connector))

        schema = connector.tables()[0]
        rows = [schema.row(c.after) for c in snapshot + streamed]
        expected = {
            "price": Decimal("1234567890.12"),
            "born": dt.date(1999, 12, 31),
            "seen": dt.datetime(2024, 2, 29, 21, 59, 59, 123456, tzinfo=dt.UTC),
            "at": dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
            "ok": True,
            "data": payload,
            "doc": '{"a": "x", "b": [1, 2.5]}',
            "ref": str(ref),
            "feel": "happy",
            "tags": '{a,"b c"}',
            "span": "1 day 02:00:00",
            "ratio": 0.1,
            "note": "café",
        }
        nothing = dict.fromkeys(expected) | {"ok": False, "data": b""}
        assert rows == [{"id": 1, **expected}, {"id": 2, **expected}, {"id": 3, **nothing}]
        fields = {f["name"]: f["type"] for f in schema.value_schema["fields"][0]["type"][1]["fields"]}
        assert fields["price"][1] == {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}
        assert fields["seen"][1] == {"type": "long", "logicalType": "timestamp-micros"}
        assert fields["ref"][1] == {"type": "string", "logicalType": "uuid"}
        assert fields["feel"][1] == fields["tags"][1] == fields["span"][1] == "string"

    def test_large_transaction_is_split_and_resumed_mid_transaction(self, tmp_path: Path) -> None:
        """A transaction bigger than a batch spans batches; reopening mid-way replays only its rest."""
        connector = self.make_connector(tmp_path, rows=0)
        connector.open(None)
        drain(connector)
        run_sql(self.url, "INSERT INTO customers SELECT i, 'bulk ' || i FROM generate_series(1, 5) i")

        batches = drain_until(connector, 5)
        sizes = [len(b.changes) for b in batches]
        connector.open(batches[0].position)
        replayed = changes_of(drain_until(connector, 5 - sizes[0]))

        # batches hold at most BATCH (2) changes; on a busy machine the stream may also hand
        # out less than a batch's worth when the rest of the transaction has not arrived yet
        assert sum(sizes) == 5 and max(sizes) <= 2 and len(batches) >= 3
        assert batches[0].position["txn"]["done"] == sizes[0]
        assert batches[-1].position["txn"] is None
        assert replayed == changes_of(batches[1:])

    def test_slot_and_publication_are_reused_after_reopen(self, tmp_path: Path) -> None:
        """A restarted connector reuses its slot and publication and gets what changed while it was down."""
        connector = self.make_connector(tmp_path, rows=1)
        connector.open(None)
        position = drain(connector)[-1].position
        connector.committed(position)
        connector.close()
        self.insert(2, "while down")

        restarted = self.connector(["customers"])
        restarted.open(position)
        changes = changes_of(drain(restarted))

        assert [(c.op, c.after) for c in changes] == [("c", {"id": 2, "name": "while down"})]
        assert run_sql(self.url, "SELECT slot_name, plugin FROM pg_replication_slots") == [
            ("unsilo_shop", "pgoutput")
        ]
        assert run_sql(self.url, "SELECT pubname FROM pg_publication") == [("unsilo_shop",)]
        assert run_sql(self.url, "SELECT tablename FROM pg_publication_tables") == [("customers",)]

    def test_heartbeat_advances_the_slot_while_only_other_tables_change(self, tmp_path: Path) -> None:
        """With only a non-captured table changing, the slot's confirmed LSN still moves past that WAL."""
        run_sql(self.url, "CREATE TABLE audit (id serial PRIMARY KEY, note text)")
        self.make_connector(tmp_path, rows=1)  # the table; the connector is this one, with a fast heartbeat:
        connector = self.connector(["customers"], heartbeat_interval_s=0.2)
        connector.open(None)
        connector.committed(drain(connector)[-1].position)
        # another source's snapshot watermark: read, but in no batch, so never committed by one
        run_sql(self.url, "SELECT pg_logical_emit_message(true, 'unsilo.watermark', 'another source')")
        for i in range(20):
            run_sql(self.url, "INSERT INTO audit (note) VALUES (%s)", (f"not captured {i}",))
        target = parse_lsn(run_sql(self.url, "SELECT pg_current_wal_lsn()::text")[0][0])

        def confirmed() -> bool:
            assert connector.poll(BATCH) is None
            return parse_lsn(slot_state(self.url)[0][1]) >= target

        wait_for(confirmed, timeout_s=20, interval_s=0.1, what="confirmed_flush_lsn to pass the audit writes")

    def test_uncommitted_changes_keep_the_slot_where_kafka_is(self, tmp_path: Path) -> None:
        """Changes handed out but not committed never move the slot; committing them does."""
        self.make_connector(tmp_path, rows=0)  # the table; the connector is this one, with a fast heartbeat:
        connector = self.connector(["customers"], heartbeat_interval_s=0.1)
        connector.open(None)
        start = drain(connector)[-1].position
        connector.committed(start)
        self.insert(1, "pending")
        batch = drain(connector)[0]
        time.sleep(0.5)
        for _ in range(5):
            connector.poll(BATCH)
        held = parse_lsn(slot_state(self.url)[0][1])

        connector.committed(batch.position)
        wait_for(
            lambda: (
                connector.poll(BATCH) is None
                and parse_lsn(slot_state(self.url)[0][1]) >= parse_lsn(batch.position["lsn"])
            ),
            timeout_s=10,
            what="the slot to move to the committed position",
        )

        assert held <= parse_lsn(start["lsn"])

    def test_identifiers_with_quotes_spaces_and_percent_are_captured(self, tmp_path: Path) -> None:
        """A table ``odd "name"%`` with columns ``key col`` and ``unit%price`` is snapshotted and streamed."""
        table = 'odd "name"%'
        run_sql(self.url, 'CREATE TABLE "odd ""name""%" ("key col" integer PRIMARY KEY, "unit%price" text)')
        run_sql(self.url, "INSERT INTO \"odd \"\"name\"\"%\" VALUES (1, 'one'), (2, 'two'), (3, 'three')")
        connector = self.connector([table])
        connector.open(None)
        snapshot = changes_of(drain(connector))
        run_sql(self.url, 'UPDATE "odd ""name""%" SET "unit%price" = \'uno\' WHERE "key col" = 1')
        streamed = changes_of(drain(connector))

        assert [c.after for c in snapshot] == [
            {"key col": k, "unit%price": v} for k, v in [(1, "one"), (2, "two"), (3, "three")]
        ]
        assert [(c.table, c.op, c.after) for c in streamed] == [
            (table, "u", {"key col": 1, "unit%price": "uno"})
        ]

    def test_table_without_replica_identity_is_a_config_error(self, tmp_path: Path) -> None:
        """A keyless table without REPLICA IDENTITY FULL is refused (publishing it breaks its UPDATEs)."""
        run_sql(self.url, "CREATE TABLE ledger (account text, amount numeric(10,2))")
        connector = self.connector([TableSettings(name="ledger", key=["account"])])

        with pytest.raises(ConfigError, match="no replica identity") as raised:
            connector.open(None)

        assert "REPLICA IDENTITY FULL" in str(raised.value.hint)
        assert run_sql(self.url, "SELECT count(*) FROM pg_publication_tables")[0][0] == 0

    def test_missing_replication_privilege_is_a_config_error(self, tmp_path: Path) -> None:
        """A role without REPLICATION gets a ConfigError naming the GRANT to run."""
        role = f"plain_{uuid.uuid4().hex[:8]}"
        self.make_connector(tmp_path, rows=0)
        run_sql(self.url, f'CREATE ROLE "{role}" LOGIN')
        parts = urlsplit(self.url)
        url = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))
        connector = PostgresConnector(source(url, ["customers"]))
        try:
            with pytest.raises(ConfigError, match="may not use replication") as raised:
                connector.open(None)
        finally:
            connector.close()
            run_sql(self.url, f'DROP ROLE "{role}"')

        assert f'ALTER ROLE "{role}" WITH REPLICATION' in str(raised.value.hint)

    def test_column_added_while_streaming_is_captured(self, tmp_path: Path) -> None:
        """After ALTER TABLE ADD COLUMN the next changes carry the column and the schema has it."""
        connector = self.make_connector(tmp_path, rows=1)
        connector.open(None)
        drain(connector)

        run_sql(self.url, "ALTER TABLE customers ADD COLUMN email text")
        run_sql(self.url, "INSERT INTO customers VALUES (2, 'Ada', 'ada@example.org')")
        changes = changes_of(drain(connector))

        assert [(c.op, c.after) for c in changes] == [
            ("c", {"id": 2, "name": "Ada", "email": "ada@example.org"})
        ]
        schema = connector.tables()[0]
        assert [c.name for c in schema.columns] == ["id", "name", "email"]
        assert schema.row(changes[0].after) == {"id": 2, "name": "Ada", "email": "ada@example.org"}

    @pytest.mark.parametrize("identity", ["FULL", "DEFAULT"])
    def test_unchanged_toasted_value_in_an_update(self, tmp_path: Path, identity: str) -> None:
        """An update not touching a TOASTed value: FULL carries it over, DEFAULT marks it unavailable."""
        run_sql(self.url, "CREATE TABLE docs (id integer PRIMARY KEY, body text, hits integer)")
        run_sql(self.url, f"ALTER TABLE docs REPLICA IDENTITY {identity}")
        run_sql(
            self.url,
            "INSERT INTO docs SELECT 1, string_agg(md5(i::text), '') , 0 FROM generate_series(1, 2000) i",
        )
        body = run_sql(self.url, "SELECT body FROM docs")[0][0]
        connector = self.connector(["docs"])
        connector.open(None)
        drain(connector)

        run_sql(self.url, "UPDATE docs SET hits = 1")
        changes = changes_of(drain(connector))

        expected = body if identity == "FULL" else UNAVAILABLE
        assert [(c.op, c.after) for c in changes] == [("u", {"id": 1, "body": expected, "hits": 1})]


def test_unreachable_server_is_retriable_and_names_host_not_password() -> None:
    """Nothing listening: SourceUnavailableError with host:port, retriable, and no password in it."""
    port = free_ports(1)[0]
    settings = source(
        f"postgresql://unsilo@127.0.0.1:{port}/shop", ["customers"], password=SecretStr("s3cret-pw")
    )
    connector = PostgresConnector(settings)

    with pytest.raises(SourceUnavailableError) as raised:
        connector.open(None)

    assert f"127.0.0.1:{port}" in str(raised.value)
    assert "s3cret-pw" not in str(raised.value) and "s3cret-pw" not in repr(raised.value.__cause__)
    assert raised.value.retriable


def test_wal_level_not_logical_is_a_config_error_saying_the_fix() -> None:
    """On a server with wal_level = replica the connector refuses to start and says what to set."""
    try:
        server = LocalPostgres(wal_level="replica").start()
    except RuntimeError as exc:
        pytest.skip(f"no local PostgreSQL to start with wal_level = replica: {exc}")
    try:
        run_sql(server.url, "CREATE TABLE customers (id integer PRIMARY KEY)")
        connector = PostgresConnector(source(server.url, ["customers"]))
        with pytest.raises(ConfigError, match="wal_level = replica") as raised:
            connector.open(None)
        connector.close()
    finally:
        server.stop()

    assert "ALTER SYSTEM SET wal_level = logical" in str(raised.value.hint)


# -- through Kafka, with the runner ------------------------------------------------------


def kafka_source(url: str, tables: list[str], **extra: Any) -> SourceSettings:
    return SourceSettings(
        name=unique("pg"), system=unique("fin"), kind="postgres", url=url, tables=tables, **extra
    )


def test_runner_publishes_snapshot_then_create_update_delete_and_tombstone(
    settings: Settings, postgres_db: str
) -> None:
    """Rows and then an insert, update and delete arrive as r, c, u, d and a tombstone, keyed by id."""
    run_sql(
        postgres_db,
        "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, credit numeric(10,2))",
    )
    run_sql(postgres_db, "ALTER TABLE customers REPLICA IDENTITY FULL")
    run_sql(postgres_db, "INSERT INTO customers VALUES (1, 'Ada', 10.50)")
    src = kafka_source(postgres_db, ["customers"])
    configured = settings.model_copy(update={"sources": [src]})
    ConnectorRunner(configured, src).run(until_idle=True)

    run_sql(postgres_db, "INSERT INTO customers VALUES (2, 'Grace', 0)")
    run_sql(postgres_db, "UPDATE customers SET credit = 99.99 WHERE id = 2")
    run_sql(postgres_db, "DELETE FROM customers WHERE id = 1")
    ConnectorRunner(configured, src).run(until_idle=True)

    serde = AvroSerde(ConfluentRegistry(settings.registry))
    messages = topic_messages(settings.kafka, raw_topic(src.system, "customers"))
    events = [(serde.decode(m.key()), serde.decode(m.value())) for m in messages]
    assert [(key["id"], value and value["op"]) for key, value in events] == [
        (1, "r"), (2, "c"), (2, "u"), (1, "d"), (1, None)
    ]  # fmt: skip
    update = events[2][1]
    assert update["before"] == {"id": 2, "name": "Grace", "credit": Decimal("0.00")}
    assert update["after"] == {"id": 2, "name": "Grace", "credit": Decimal("99.99")}
    assert update["source"]["connector"] == "postgres" and update["source"]["txid"] is not None
    assert update["source"]["db"] == postgres_db.rsplit("/", 1)[1]
    assert events[3][1]["before"] == {"id": 1, "name": "Ada", "credit": Decimal("10.50")}


ROWS = 40
UPDATES = 3000
KILLS = 4


def updater(url: str, seed: int, stop: threading.Event) -> None:
    """Commit ``UPDATES`` single-row increments at random keys, one per transaction."""
    rng = random.Random(seed)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        for _ in range(UPDATES):
            if stop.is_set():
                break
            cur.execute("UPDATE counters SET version = version + 1 WHERE id = %s", (rng.randrange(ROWS),))
            time.sleep(0.003)
    conn.close()


def start_connector(config: Path, source_name: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "-c", str(config), "run", source_name],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),
    )


def test_sigkill_while_streaming_loses_and_duplicates_nothing(
    settings: Settings, postgres_db: str, tmp_path: Path
) -> None:
    """After repeated SIGKILLs of the connector mid-stream, every update is in the topic once, in order."""
    run_sql(postgres_db, "CREATE TABLE counters (id integer PRIMARY KEY, version integer NOT NULL)")
    run_sql(postgres_db, "INSERT INTO counters SELECT i, 0 FROM generate_series(0, %s) i", (ROWS - 1,))
    src = kafka_source(postgres_db, ["counters"], batch_size=25)
    configured = settings.model_copy(update={"sources": [src]})
    config = write_config(configured, tmp_path / "unsilo.yaml")
    ConnectorRunner(configured, src).run(until_idle=True)  # snapshot at version 0, slot in place
    log = tmp_path / "connector.log"
    rng = random.Random(20261127)

    stop = threading.Event()
    workload = threading.Thread(target=updater, args=(postgres_db, 1, stop))
    workload.start()
    kills = 0
    try:
        while kills < KILLS:
            process = start_connector(config, src.name, log)
            time.sleep(rng.uniform(2.0, 4.0))
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            kills += 1
    finally:
        workload.join(120)
        stop.set()
    final = start_connector(config, src.name, log)
    try:
        expected = dict(run_sql(postgres_db, "SELECT id, version FROM counters"))
        serde = AvroSerde(ConfluentRegistry(settings.registry))
        topic = raw_topic(src.system, "counters")
        deadline = time.monotonic() + 120
        while True:
            versions: dict[int, list[int]] = defaultdict(list)
            for message in topic_messages(settings.kafka, topic):
                value = serde.decode(message.value())
                if value is not None and value["op"] == "u":
                    versions[value["after"]["id"]].append(value["after"]["version"])
            caught_up = all((versions[k][-1] if versions[k] else 0) == v for k, v in expected.items())
            if caught_up or time.monotonic() > deadline:
                break
            time.sleep(1.0)
    finally:
        final.send_signal(signal.SIGTERM)
        final.wait(30)

    assert kills == KILLS
    assert sum(expected.values()) == UPDATES
    lost_or_duplicated = {
        key: seen for key, seen in versions.items() if seen != list(range(1, expected[key] + 1))
    }
    assert not lost_or_duplicated, (
        f"keys whose updates are not exactly 1..N in order: {sorted(lost_or_duplicated)[:5]}"
    )
    assert sum(len(seen) for seen in versions.values()) == UPDATES
