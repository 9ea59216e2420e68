"""customer_360: one row per real customer across CRM and receivables, following identity links."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text

from hub.kafka.topics import canonical_topic
from projections.customer_360.builder import customer_360_builder
from projections.events import RawEvent
from projections.store import create_read_store


class Log:
    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}

    def event(self, entity: str, key: str, value: dict[str, Any] | None) -> RawEvent:
        topic = canonical_topic(entity)
        offset = self.offsets.get(topic, -1) + 1
        self.offsets[topic] = offset
        return RawEvent(topic, 0, offset, {"key": key}, value, None, None)


def customer(key: str) -> dict[str, Any]:
    return {"key": key, "system": key.split(":")[0], "code": key.split(":")[1], "name": "ACME",
            "email": "a@acme.test", "tax_id": None}  # fmt: skip


def invoice(key: str, customer_key: str, amount: str, status: str = "OPEN") -> dict[str, Any]:
    return {"key": key, "customer_key": customer_key, "invoice_date": dt.date(2026, 11, 1),
            "amount": Decimal(amount), "status": status}  # fmt: skip


def link(source_key: str, party: str, rule: str) -> dict[str, Any]:
    return {
        "source_key": source_key,
        "party_id": party,
        "rule": rule,
        "entity": "Customer",
        "members": [],
        "ts_ms": 0,
    }


def rows(engine: Any) -> dict[str, tuple[Any, ...]]:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT party_id, source_keys, orders, invoiced_cents, paid_cents, "
                                  "open_balance_cents FROM customer_360"))  # fmt: skip
        return {r[0]: tuple(r[1:]) for r in found}


def test_linked_customers_are_one_row_and_unlink_splits_them(tmp_path: Path) -> None:
    """Customers linked to one party are one row with summed figures; an unlink splits them."""
    engine = create_read_store(f"sqlite:///{tmp_path / 'rm.db'}")
    builder = customer_360_builder(engine)
    log = Log()
    builder.apply(
        [
            log.event("customer", "fin:000042", customer("fin:000042")),
            log.event("customer", "sales:C-00042", customer("sales:C-00042")),
            log.event("invoice", "fin:9001", invoice("fin:9001", "fin:000042", "100.10")),
            log.event("invoice", "fin:9002", invoice("fin:9002", "fin:000042", "50.00", status="VOID")),
            log.event("payment", "fin:p1", {"key": "fin:p1", "invoice_key": "fin:9001",
                                             "payment_date": dt.date(2026, 11, 5),
                                             "amount": Decimal("40.05")}),
            log.event("order", "sales:o1", {"key": "sales:o1", "customer_key": "sales:C-00042",
                                             "ordered_at": dt.datetime(2026, 11, 2, tzinfo=dt.UTC)}),
            log.event("identity", "fin:000042", link("fin:000042", "party:1", "reference")),
            log.event("identity", "sales:C-00042", link("sales:C-00042", "party:1", "reference")),
        ]
    )  # fmt: skip

    merged = rows(engine)
    builder.apply([log.event("identity", "sales:C-00042", link("sales:C-00042", "party:2", "manual"))])
    split = rows(engine)

    assert merged == {"party:1": ("fin:000042 sales:C-00042", 1, 10010, 4005, 6005)} or merged == {
        "party:1": ("sales:C-00042 fin:000042", 1, 10010, 4005, 6005)
    }
    assert split == {
        "party:1": ("fin:000042", 0, 10010, 4005, 6005),
        "party:2": ("sales:C-00042", 1, 0, 0, 0),
    }
