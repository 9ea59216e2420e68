"""customer_360 as plain code: keep the canonical records and identity links it needs.

Each record is upserted (a tombstone deletes it) together with the consumed offsets in one
SQL transaction; the ``customer_360`` view does the arithmetic, so a manual link or unlink
(a new identity link) re-keys the read model the moment it is applied.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, Table, text
from sqlalchemy.exc import SQLAlchemyError

from hub.errors import ReadModelError
from hub.kafka.topics import canonical_topic
from projections import tracking
from projections.customer_360.tables import tables, view_sql
from projections.events import RawEvent

PROJECTION = "customer_360"
IDENTITY_TOPIC = canonical_topic("identity")
TOPICS = [canonical_topic(e) for e in ("customer", "order", "invoice", "payment")] + [IDENTITY_TOPIC]


def _cents(amount: Any) -> int:
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
        "amount_cents": _cents(r["amount"]),
        "status": r.get("status"),
    },
    "payment": lambda r: {
        "key": r["key"],
        "invoice_key": r["invoice_key"],
        "payment_date": r.get("payment_date"),
        "amount_cents": _cents(r["amount"]),
    },
    "identity": lambda r: {"source_key": r["source_key"], "party_id": r["party_id"], "rule": r.get("rule")},
}
_BY_TOPIC = {canonical_topic(e): e for e in ("customer", "order", "invoice", "payment", "identity")}


class Customer360Builder:
    """Applies canonical customers, orders, invoices, payments and identity links."""

    def __init__(self, engine: Engine, projection: str = PROJECTION, table_suffix: str = "") -> None:
        self.engine = engine
        self.projection = projection
        self.suffix = table_suffix
        self.tables = tables(MetaData(), table_suffix)
        try:
            with engine.begin() as conn:
                for table in self.tables.values():
                    table.create(conn, checkfirst=True)
                tracking.metadata.create_all(conn)
                self._create_view(conn)
        except SQLAlchemyError as exc:
            raise ReadModelError(f"cannot prepare read model {projection}: {exc}") from exc

    def _create_view(self, conn: Connection, suffix: str | None = None) -> None:
        suffix = self.suffix if suffix is None else suffix
        conn.execute(text(f"DROP VIEW IF EXISTS customer_360{suffix}"))
        conn.execute(text(view_sql(suffix)))

    def before_swap(self, conn: Connection) -> None:
        """Views must not point at tables being renamed (SQLite rewrites or rejects them)."""
        conn.execute(text("DROP VIEW IF EXISTS customer_360"))
        conn.execute(text(f"DROP VIEW IF EXISTS customer_360{self.suffix}"))

    def after_swap(self, conn: Connection) -> None:
        self._create_view(conn, suffix="")

    def table_names(self) -> list[str]:
        return [t.name.removesuffix(self.suffix) for t in self.tables.values()]

    def applied_offsets(self) -> dict[tuple[str, int], int]:
        with self.engine.connect() as conn:
            return tracking.applied_offsets(conn, self.projection)

    def apply(self, events: Sequence[RawEvent]) -> int:
        if not events:
            return 0
        try:
            with self.engine.begin() as conn:
                return self._apply(conn, events)
        except SQLAlchemyError as exc:
            raise ReadModelError(f"read model {self.projection}: {exc}") from exc

    def _apply(self, conn: Connection, events: Sequence[RawEvent]) -> int:
        done = tracking.applied_offsets(conn, self.projection)
        newest: dict[tuple[str, int], int] = {}
        applied = 0
        for event in events:
            where = (event.topic, event.partition)
            if event.offset <= done.get(where, -1):
                continue
            newest[where] = max(event.offset, newest.get(where, -1))
            entity = _BY_TOPIC.get(event.topic)
            if entity is None or event.key is None:
                continue
            table: Table = self.tables[entity]
            key_column = table.c["source_key" if entity == "identity" else "key"]
            conn.execute(table.delete().where(key_column == event.key["key"]))
            if event.value is not None:
                conn.execute(table.insert().values(**ROWS[entity](event.value)))
            applied += 1
        tracking.record_offsets(conn, self.projection, newest)
        return applied


def customer_360_builder(
    engine: Engine, projection: str = PROJECTION, table_suffix: str = ""
) -> Customer360Builder:
    return Customer360Builder(engine, projection, table_suffix)
