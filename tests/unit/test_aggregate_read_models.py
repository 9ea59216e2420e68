"""store_sales and inventory_position: sums that follow corrections and voids, exactly once."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select

from hub.kafka.topics import canonical_topic
from projections.events import RawEvent
from projections.inventory_position.builder import POSITION, inventory_builder, turnover
from projections.store_sales.builder import SALES, store_sales_builder

SALE = canonical_topic("sale")
MOVE = canonical_topic("stock_movement")
NOON = dt.datetime(2026, 11, 27, 12, 15, tzinfo=dt.UTC)


class Log:
    """Hands out events with increasing offsets, like a topic partition."""

    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}

    def event(self, topic: str, key: str, value: dict[str, Any] | None) -> RawEvent:
        offset = self.offsets.get(topic, -1) + 1
        self.offsets[topic] = offset
        return RawEvent(topic, 0, offset, {"key": key}, value, None, None)


def sale(ticket: int, store: str, amount: str, quantity: int = 1, at: dt.datetime = NOON) -> dict[str, Any]:
    return {
        "key": f"sales:{ticket}",
        "store_key": store,
        "product_key": "sales:SKU1",
        "quantity": quantity,
        "amount": Decimal(amount),
        "sold_at": at,
    }


def sales_rows(engine: Any, builder: Any) -> dict[tuple[str, str, str], tuple[Decimal, Decimal]]:
    table = builder.tables[SALES.name]
    with engine.connect() as conn:
        rows = conn.execute(select(table))
        return {(r.store_key, r.period, r.starts): (r.revenue, r.tickets) for r in rows}


def test_store_sales_sum_follow_corrections_and_voids(tmp_path: Path) -> None:
    """Revenue and tickets per store hour and day follow a corrected amount and a voided ticket."""
    engine = create_engine(f"sqlite:///{tmp_path / 'rm.db'}")
    builder = store_sales_builder(engine)
    log = Log()

    builder.apply(
        [
            log.event(SALE, "sales:1", sale(1, "sales:S001", "10.10")),
            log.event(SALE, "sales:2", sale(2, "sales:S001", "5.05")),
            log.event(SALE, "sales:3", sale(3, "sales:S002", "7.00")),
        ]
    )
    builder.apply(
        [
            log.event(SALE, "sales:2", sale(2, "sales:S001", "6.05")),  # corrected
            log.event(SALE, "sales:3", None),  # voided
        ]
    )

    rows = sales_rows(engine, builder)
    assert rows == {
        ("sales:S001", "hour", "2026-11-27T12:00"): (Decimal("16.15"), Decimal(2)),
        ("sales:S001", "day", "2026-11-27"): (Decimal("16.15"), Decimal(2)),
    }


def test_redelivered_events_count_once(tmp_path: Path) -> None:
    """Events at or below the recorded offset are skipped, so a redelivery changes nothing."""
    engine = create_engine(f"sqlite:///{tmp_path / 'rm.db'}")
    builder = store_sales_builder(engine)
    log = Log()
    batch = [log.event(SALE, "sales:1", sale(1, "sales:S001", "10.00"))]

    builder.apply(batch)
    applied_again = builder.apply(batch)

    assert applied_again == 0
    assert sales_rows(engine, builder)[("sales:S001", "day", "2026-11-27")] == (Decimal("10.00"), Decimal(1))


def test_on_hand_is_movements_minus_till_sales(tmp_path: Path) -> None:
    """On hand = receipts + transfers + adjustments - units sold, per product and location."""
    engine = create_engine(f"sqlite:///{tmp_path / 'rm.db'}")
    builder = inventory_builder(engine)
    log = Log()

    def move(i: int, kind: str, quantity: int, location: str = "sales:S001") -> RawEvent:
        value = {
            "key": f"sales:m{i}",
            "product_key": "sales:SKU1",
            "location_key": location,
            "kind": kind,
            "quantity": quantity,
            "moved_at": NOON,
        }
        return log.event(MOVE, f"sales:m{i}", value)

    builder.apply(
        [
            move(1, "RECEIPT", 50, "sales:W001"),
            move(2, "TRANSFER", -20, "sales:W001"),
            move(3, "TRANSFER", 20),
            move(4, "ADJUSTMENT", -1),
            log.event(SALE, "sales:1", sale(1, "sales:S001", "3.00", quantity=3)),
            log.event(SALE, "sales:2", sale(2, "sales:S001", "2.00", quantity=2)),
        ]
    )
    builder.apply([log.event(SALE, "sales:2", None)])  # a void gives the units back

    table = builder.tables[POSITION.name]
    with engine.connect() as conn:
        rows = {(r.product_key, r.location_key): r.on_hand for r in conn.execute(select(table))}
        figures = turnover(conn, builder, "sales:SKU1", "sales:S001", NOON.date(), days=30)
    assert rows == {("sales:SKU1", "sales:W001"): Decimal(30), ("sales:SKU1", "sales:S001"): Decimal(16)}
    assert figures["sold_in_window"] == Decimal(3)
    assert figures["days_of_supply"] == Decimal(16) / (Decimal(3) / 30)
