"""Query-based capture and outbox routing through a real broker and registry."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka.serialization import MessageField, SerializationContext

from connectors.base import Change
from connectors.runner import ConnectorRunner
from connectors.sql_poll import SqlPollConnector
from hub.config import Settings, SourceSettings
from hub.envelope import TableSchema
from hub.errors import LogUnavailableError
from hub.kafka.producer import TransactionalProducer
from hub.kafka.topics import outbox_topic, raw_topic
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from tests.fixtures_postgres import run_sql as pg_sql
from tests.support import confluent_deserializer, run_sql, topic_messages, unique

pytestmark = pytest.mark.integration


class FlakyRunner(ConnectorRunner):
    """A runner whose broker goes away once in the middle of a transaction (after row ``fail_at``)."""

    fail_at = 3

    def _encoded(
        self, producer: TransactionalProducer, change: Change, schema: TableSchema, now: int
    ) -> tuple[str, list[tuple[bytes | None, bytes | None]]] | None:
        encoded = super()._encoded(producer, change, schema, now)
        if change.after is not None and change.after["id"] == self.fail_at:
            self.fail_at = -1
            raise LogUnavailableError("broker went away mid-transaction")
        return encoded


def test_timestamp_incrementing_rows_arrive_exactly_once(settings: Settings, tmp_path: Path) -> None:
    """Rows polled by (ts, id), ties and an aborted transaction included, are each in the raw topic once."""
    db = tmp_path / "legacy.db"
    run_sql(db, "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL, updated TIMESTAMP)")
    for row_id in range(1, 6):  # ids 2..5 share one timestamp
        run_sql(db, "INSERT INTO orders VALUES (?, ?, ?)", (row_id, f"item {row_id}", "2020-01-01 00:00:01"))
    run_sql(db, "UPDATE orders SET updated = '2020-01-01 00:00:00' WHERE id = 1")
    system = unique("legacy")
    source = SourceSettings(
        name=unique("poll"),
        system=system,
        kind="sql_poll",
        url=f"sqlite:///{db}",
        tables=["orders"],
        poll_mode="timestamp+incrementing",
        timestamp_column="updated",
        state_dir=tmp_path / "state",
        batch_size=2,
    )
    configured = settings.model_copy(update={"sources": [source]})
    flaky = FlakyRunner(configured, source)
    flaky.run(until_idle=True)
    assert flaky.fail_at == -1, "the broker failure was not injected"

    run_sql(db, "INSERT INTO orders VALUES (6, 'item 6', '2020-01-01 00:00:01')")  # ties the cursor's ts
    run_sql(db, "UPDATE orders SET item = 'item 1 again', updated = '2020-01-02 00:00:00' WHERE id = 1")
    ConnectorRunner(configured, source).run(until_idle=True)
    ConnectorRunner(configured, source).run(until_idle=True)  # nothing new: nothing published

    serde = AvroSerde(ConfluentRegistry(settings.registry))
    records = [
        (serde.decode(m.key()), serde.decode(m.value()))
        for m in topic_messages(settings.kafka, raw_topic(system, "orders"))
    ]
    assert [(key["id"], value["op"], value["after"]["item"]) for key, value in records] == [
        (1, "c", "item 1"),
        (2, "c", "item 2"),
        (3, "c", "item 3"),
        (4, "c", "item 4"),
        (5, "c", "item 5"),
        (6, "c", "item 6"),
        (1, "u", "item 1 again"),
    ]
    assert records[0][1]["source"]["connector"] == "sql_poll"
    assert records[-1][1]["source"]["position"] == '["2020-01-02 00:00:00", 1]'


def test_outbox_events_land_in_their_aggregate_topic(settings: Settings, tmp_path: Path) -> None:
    """Outbox rows reach unsilo.outbox.<aggregatetype> in order, keyed by aggregate id, with the event id."""
    db = tmp_path / "app.db"
    run_sql(
        db,
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, "
        "aggregatetype TEXT NOT NULL, aggregateid TEXT NOT NULL, type TEXT NOT NULL, payload TEXT)",
    )
    aggregate = unique("Order")
    written = []
    for n, kind in enumerate(["OrderPlaced", "OrderPaid", "OrderShipped"]):
        event_id = str(uuid.uuid4())
        written.append(event_id)
        run_sql(
            db,
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (?, ?, ?, ?, ?)",
            (event_id, aggregate, f"order-{n % 2}", kind, json.dumps({"step": n})),
        )
    source = SourceSettings(
        name=unique("outbox"),
        system="orders",
        kind="outbox",
        url=f"sqlite:///{db}",
        tables=["outbox"],
        incrementing_column="seq",
        outbox_delete_after_publish=True,
    )
    configured = settings.model_copy(update={"sources": [source]})
    ConnectorRunner(configured, source).run(until_idle=True)

    topic = outbox_topic(aggregate)
    deserialize = confluent_deserializer(settings.registry.url)
    messages = topic_messages(settings.kafka, topic)
    keys = [deserialize(m.key(), SerializationContext(topic, MessageField.KEY)) for m in messages]
    values = [deserialize(m.value(), SerializationContext(topic, MessageField.VALUE)) for m in messages]
    headers = [dict(m.headers() or []) for m in messages]

    assert keys == ["order-0", "order-1", "order-0"]
    assert [v["event_id"] for v in values] == written
    assert [h["unsilo.event_id"] for h in headers] == [e.encode() for e in written]
    assert [v["type"] for v in values] == ["OrderPlaced", "OrderPaid", "OrderShipped"]
    assert json.loads(values[1]["payload"]) == {"step": 1}
    assert values[0]["aggregate_type"] == aggregate and values[0]["ts_ms"] is None
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
    conn.close()


def poll_committing(connector: SqlPollConnector) -> list[Change]:
    """Every change until poll has nothing new, each batch committed as the runner would."""
    changes: list[Change] = []
    while (batch := connector.poll(2)) is not None:
        connector.committed(batch.position)
        changes += batch.changes
    return changes


@pytest.mark.parametrize("stamp_type", ["timestamptz", "timestamp"])
def test_postgres_table_is_polled_with_lag_ties_and_deletes(
    postgres_db: str, tmp_path: Path, stamp_type: str
) -> None:
    """On PostgreSQL a quoted table is polled by (ts, id) behind the lag, ties in id order, deletes found."""
    table = 'Odd "Orders"; x'
    pg_sql(
        postgres_db,
        f'CREATE TABLE "Odd ""Orders""; x" (id bigint PRIMARY KEY, "Total Due" numeric(10,2), '
        f"ref uuid, changed {stamp_type})",
    )
    base = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)
    ref = uuid.uuid4()
    for row_id in (3, 1, 2):  # one timestamp for all three
        pg_sql(
            postgres_db, 'INSERT INTO "Odd ""Orders""; x" VALUES (%s, 9.5, %s, %s)', (row_id, str(ref), base)
        )
    now = [base + dt.timedelta(seconds=10)]
    source = SourceSettings(
        name="pg",
        system="finance",
        kind="sql_poll",
        url=postgres_db.replace("postgresql://", "postgresql+psycopg2://"),
        tables=[table],
        poll_mode="timestamp+incrementing",
        timestamp_column="changed",
        detect_deletes=True,
        state_dir=tmp_path,
    )
    connector = SqlPollConnector(source, clock=lambda: now[0], monotonic=lambda: now[0].timestamp())
    connector.open(None)
    try:
        first = poll_committing(connector)
        pg_sql(postgres_db, 'UPDATE "Odd ""Orders""; x" SET changed = %s WHERE id = 1', (now[0],))
        hidden = connector.poll(2)  # stamped "now": inside the lag window
        pg_sql(postgres_db, 'DELETE FROM "Odd ""Orders""; x" WHERE id = 2')
        now[0] += dt.timedelta(seconds=400)
        later = poll_committing(connector)
        schema = connector.tables()[0]
    finally:
        connector.close()

    assert [(c.op, (c.after or {}).get("id")) for c in first] == [("c", 1), ("c", 2), ("c", 3)]
    assert hidden is None
    assert [(c.op, c.before, (c.after or {}).get("id")) for c in later] == [
        ("d", {"id": 2}, None),
        ("u", None, 1),
    ]
    assert schema.row(first[0].after) == {
        "id": 1,
        "Total_Due": Decimal("9.50"),
        "ref": str(ref),
        "changed": base,
    }
