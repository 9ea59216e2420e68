"""Transactional outbox capture, against SQLite outbox tables in tmp_path (no Kafka)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Batch, Change
from connectors.outbox import EVENT_ID_HEADER, OUTBOX_EVENT_SCHEMA, OutboxConnector
from connectors.routed import RoutedOutputs
from hub.config import KafkaSettings, SourceSettings, TableSettings
from hub.errors import ConfigError, SourceDataError
from hub.serde import AvroSerde

BASE = dt.datetime(2024, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
BATCH = 2
SEQUENCED = (
    "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, "
    "aggregatetype TEXT NOT NULL, aggregateid TEXT NOT NULL, type TEXT NOT NULL, payload TEXT, "
    "timestamp TIMESTAMP)"
)
STAMPED = (
    "CREATE TABLE outbox (id TEXT PRIMARY KEY, aggregatetype TEXT, aggregateid TEXT NOT NULL, "
    "type TEXT NOT NULL, payload TEXT, timestamp TIMESTAMP)"
)


def stamp(seconds: float) -> str:
    return (BASE + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")


class Outbox:
    """An application's outbox table in a SQLite file, and connectors over it."""

    def __init__(self, tmp_path: Path, ddl: str) -> None:
        self.tmp_path = tmp_path
        self.db = tmp_path / "app.db"
        self.now = BASE + dt.timedelta(hours=1)
        self.opened: list[OutboxConnector] = []
        self.sql(ddl)

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.db)
        try:
            with conn:
                return conn.execute(statement, params).fetchall()
        finally:
            conn.close()

    def emit(
        self, aggregate: str, aggregate_id: str, kind: str, payload: dict[str, Any], at: float = 0
    ) -> str:
        """Write one event as the application would, in its own transaction; return its id."""
        event_id = str(uuid.uuid4())
        self.sql(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, timestamp) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (event_id, aggregate, aggregate_id, kind, json.dumps(payload), stamp(at)),
        )
        return event_id

    def connector(self, **extra: Any) -> OutboxConnector:
        settings = SourceSettings(
            name="app",
            system="orders",
            kind="outbox",
            url=f"sqlite:///{self.db}",
            tables=extra.pop("tables", ["outbox"]),
            batch_size=BATCH,
            state_dir=self.tmp_path / "state",
            **extra,
        )
        connector = OutboxConnector(settings, clock=lambda: self.now)
        self.opened.append(connector)
        return connector


@pytest.fixture
def sequenced(tmp_path: Path) -> Iterator[Outbox]:
    outbox = Outbox(tmp_path, SEQUENCED)
    yield outbox
    for connector in outbox.opened:
        connector.close()


@pytest.fixture
def stamped(tmp_path: Path) -> Iterator[Outbox]:
    outbox = Outbox(tmp_path, STAMPED)
    yield outbox
    for connector in outbox.opened:
        connector.close()


def drain(connector: OutboxConnector, commit: bool = True) -> list[Batch]:
    batches: list[Batch] = []
    for _ in range(100):
        batch = connector.poll(BATCH)
        if batch is None:
            return batches
        if commit:
            connector.committed(batch.position)
        batches.append(batch)
    raise AssertionError("poll still returned batches after 100 calls")


def events(batches: list[Batch]) -> list[Change]:
    return [change for batch in batches for change in batch.changes]


def test_events_are_routed_by_aggregate_type_keyed_by_aggregate_id(sequenced: Outbox) -> None:
    """Each row is a 'c' for unsilo.outbox.<aggregatetype>, keyed by aggregate id, event id in a header."""
    order_event = sequenced.emit("Order", "o-17", "OrderPlaced", {"total": "12.50"}, at=3)
    customer_event = sequenced.emit("Customer", "c-4", "CustomerMoved", {"city": "Gent"})
    connector = sequenced.connector(incrementing_column="seq")
    connector.open(None)

    changes = events(drain(connector))

    assert [(c.topic, c.key, c.op) for c in changes] == [
        ("unsilo.outbox.Order", "o-17", "c"),
        ("unsilo.outbox.Customer", "c-4", "c"),
    ]
    assert [c.headers for c in changes] == [
        ((EVENT_ID_HEADER, order_event.encode()),),
        ((EVENT_ID_HEADER, customer_event.encode()),),
    ]
    assert changes[0].after == {
        "event_id": order_event,
        "aggregate_type": "Order",
        "aggregate_id": "o-17",
        "type": "OrderPlaced",
        "payload": '{"total": "12.50"}',
        "ts_ms": int((BASE + dt.timedelta(seconds=3)).timestamp() * 1000),
    }
    assert all(c.value_schema is OUTBOX_EVENT_SCHEMA for c in changes)
    assert connector.tables() == []


def test_events_come_in_sequence_order_not_event_id_order(sequenced: Outbox) -> None:
    """With a sequence column, events arrive in insertion order whatever their (random) event ids."""
    ids = [sequenced.emit("Order", "o-1", f"Step{n}", {"n": n}) for n in range(5)]
    connector = sequenced.connector(incrementing_column="seq")
    connector.open(None)

    changes = events(drain(connector))

    assert [c.after["event_id"] for c in changes if c.after] == ids
    assert [c.position for c in changes] == ["[1]", "[2]", "[3]", "[4]", "[5]"]


def test_without_a_sequence_events_follow_timestamp_then_id_behind_the_lag(stamped: Outbox) -> None:
    """By default an outbox is read by (timestamp, id); events younger than lag_s wait for late commits."""
    stamped.now = BASE + dt.timedelta(seconds=10)
    old = stamped.emit("Order", "o-1", "Placed", {}, at=2)
    young = stamped.emit("Order", "o-1", "Paid", {}, at=8)
    connector = stamped.connector()
    connector.open(None)

    now = events(drain(connector))
    late = stamped.emit("Order", "o-2", "Placed", {}, at=4)  # committed late, older timestamp
    stamped.now += dt.timedelta(seconds=10)
    later = events(drain(connector))

    assert [c.after["event_id"] for c in now if c.after] == [old]
    assert [c.after["event_id"] for c in later if c.after] == [late, young]


def test_reopening_at_the_committed_position_resumes_after_it(sequenced: Outbox) -> None:
    """A new connector opened at the committed position publishes only the events written after it."""
    sequenced.emit("Order", "o-1", "Placed", {})
    first = sequenced.connector(incrementing_column="seq")
    first.open(None)
    resume_at = drain(first)[-1].position
    first.close()
    newer = sequenced.emit("Order", "o-1", "Shipped", {})

    second = sequenced.connector(incrementing_column="seq")
    second.open(resume_at)
    changes = events(drain(second))

    assert [c.after["event_id"] for c in changes if c.after] == [newer]


def test_published_rows_are_deleted_only_after_their_commit(sequenced: Outbox) -> None:
    """With outbox_delete_after_publish rows go once their batch commits; a rewound batch is re-read."""
    for n in range(3):
        sequenced.emit("Order", f"o-{n}", "Placed", {})
    connector = sequenced.connector(incrementing_column="seq", outbox_delete_after_publish=True)
    connector.open(None)
    first = connector.poll(BATCH)
    assert first is not None
    connector.committed(first.position)
    uncommitted = connector.poll(BATCH)
    assert uncommitted is not None
    left_after_commit = sequenced.sql("SELECT aggregateid FROM outbox ORDER BY seq")

    connector.open(first.position)  # the second transaction failed: rewind
    replayed = events(drain(connector))

    assert left_after_commit == [("o-2",)]
    assert [c.key for c in replayed] == ["o-2"]
    assert sequenced.sql("SELECT count(*) FROM outbox") == [(0,)]


def test_a_row_without_aggregate_type_is_routed_nowhere_and_dead_lettered(stamped: Outbox) -> None:
    """An event without aggregatetype gets no topic; routing refuses it with a SourceDataError (DLQ)."""
    stamped.sql(
        "INSERT INTO outbox VALUES (?, NULL, 'o-1', 'Placed', '{}', ?)", (str(uuid.uuid4()), stamp(0))
    )
    connector = stamped.connector()
    connector.open(None)
    (change,) = events(drain(connector))
    routed = RoutedOutputs(KafkaSettings(), AvroSerde(registry=None))  # type: ignore[arg-type]

    with pytest.raises(SourceDataError, match="no topic"):
        routed.encode(change)

    assert change.topic == ""


@pytest.mark.parametrize(
    ("ddl", "extra", "message"),
    [
        ("CREATE TABLE outbox (id TEXT PRIMARY KEY, payload TEXT)", {}, "lacks column"),
        (STAMPED, {"poll_mode": "bulk"}, "insertion order"),
        (STAMPED, {"poll_mode": "incrementing"}, "names no column"),
        (SEQUENCED.replace(", timestamp TIMESTAMP", ""), {}, "'timestamp' is not in table"),
    ],
)
def test_unusable_outbox_settings_are_config_errors(
    tmp_path: Path, ddl: str, extra: dict[str, Any], message: str
) -> None:
    """Missing outbox columns, a mode that is not insertion order or a missing order column are refused."""
    outbox = Outbox(tmp_path, ddl)

    with pytest.raises(ConfigError, match=message):
        outbox.connector(**extra).open(None)


def test_table_settings_choose_the_order_column(sequenced: Outbox) -> None:
    """A table's own incrementing_column overrides the source's, so two outboxes may differ."""
    sequenced.emit("Order", "o-1", "Placed", {})
    connector = sequenced.connector(tables=[TableSettings(name="outbox", incrementing_column="seq")])
    connector.open(None)

    (change,) = events(drain(connector))

    assert change.position == "[1]"
