"""customer_360 as plain code: keep the canonical records and identity links it needs.

Each record is upserted (a tombstone deletes it) together with the consumed offsets in one
SQL transaction; the ``customer_360`` view does the arithmetic, so a manual link or unlink
(a new identity link) re-keys the read model the moment it is applied.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, MetaData

from hub.errors import ReadModelError
from hub.kafka.topics import canonical_topic
from projections.customer_360.tables import tables, view_sql
from projections.entity_tables import EntityTablesBuilder

PROJECTION = "customer_360"
IDENTITY_TOPIC = canonical_topic("identity")
TOPICS = [canonical_topic(e) for e in ("customer", "order", "invoice", "payment")] + [IDENTITY_TOPIC]


def cents(amount: Any) -> int:
    """A money amount as exact integer cents (more decimals would be lost: refused)."""
    cents = decimal.Decimal(amount) * 100
    if cents != cents.to_integral_value():
        raise ReadModelError(f"amount {amount} has more than two decimals")
    return int(cents)


ROWS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "customer": lambda r: {k: r.get(k) for k in ("key", "system", "code", "name", "email", "tax_id")},
    "order": lambda r: {
        "key": r["key"],
        "customer_key": r["customer_key"],
        "ordered_at": r.get("ordered_at"),
    },
    "invoice": lambda r: {
        "key": r["key"],
        "customer_key": r["customer_key"],
        "invoice_date": r.get("invoice_date"),
        "amount_cents": cents(r["amount"]),
        "status": r.get("status"),
    },
    "payment": lambda r: {
        "key": r["key"],
        "invoice_key": r["invoice_key"],
        "payment_date": r.get("payment_date"),
        "amount_cents": cents(r["amount"]),
    },
    "identity": lambda r: {"source_key": r["source_key"], "party_id": r["party_id"], "rule": r.get("rule")},
}


def customer_360_builder(
    engine: Engine, projection: str = PROJECTION, table_suffix: str = ""
) -> EntityTablesBuilder:
    """The customer_360 builder (``table_suffix`` for a rebuild's shadow copy)."""
    found = tables(MetaData(), table_suffix)
    return EntityTablesBuilder(
        engine,
        projection,
        table_suffix,
        {canonical_topic(entity): (found[entity], ROWS[entity]) for entity in ROWS},
        "customer_360",
        view_sql,
    )
