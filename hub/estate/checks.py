"""Do the read models agree with the legacy databases? The demo's live check.

Reads the read models' tables and views by name (hub imports no projection) and compares
them with :func:`hub.estate.figures.figures`, computed directly over the legacy databases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from hub.estate.figures import figures
from hub.sql_urls import engine_url


@dataclass(frozen=True)
class Check:
    """One figure, in the legacy databases and in the read model."""

    name: str
    legacy: str
    read_model: str
    matches: bool


def check_read_models(urls: Mapping[str, str], read_store_url: str) -> list[Check]:
    """Revenue today-to-date, units on hand and open balance: legacy vs read models."""
    truth = figures(urls)
    revenue = sum((f.revenue for f in truth.store_sales_daily.values()), Decimal("0.00"))
    tickets = sum(f.tickets for f in truth.store_sales_daily.values())
    on_hand = sum(truth.on_hand.values())
    balance = sum(truth.open_balances.values(), Decimal("0.00"))
    queries = {
        "revenue": "SELECT revenue FROM store_sales WHERE period = 'day'",
        "tickets": "SELECT tickets FROM store_sales WHERE period = 'day'",
        "on hand": "SELECT on_hand FROM inventory_position",
        "open balance": "SELECT open_balance_cents FROM customer_360",
    }
    found: dict[str, Decimal | None] = {}
    engine = create_engine(engine_url(read_store_url))
    try:
        with engine.connect() as conn:
            for name, query in queries.items():
                try:
                    found[name] = sum((Decimal(str(v)) for (v,) in conn.execute(text(query))), Decimal(0))
                except SQLAlchemyError:
                    found[name] = None  # the projection has not created it yet
    finally:
        engine.dispose()
    if found["open balance"] is not None:
        found["open balance"] = found["open balance"] / 100
    legacy = {
        "revenue": revenue,
        "tickets": Decimal(tickets),
        "on hand": Decimal(on_hand),
        "open balance": balance,
    }
    return [
        Check(
            name,
            str(legacy[name]),
            "-" if found[name] is None else str(found[name]),
            found[name] == legacy[name],
        )
        for name in queries
    ]
