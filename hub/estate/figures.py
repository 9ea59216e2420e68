"""The figures read models must equal, computed directly in SQL over the legacy databases.

These are the auditor's numbers: each function runs one query against one legacy
database, with nothing from the hub in between. Money is summed as integer cents in SQL
(SQLite keeps DECIMAL as REAL) and returned as exact ``Decimal`` with two places.

- :func:`open_balances` — per finance customer: invoices not void minus payments;
- :func:`on_hand` — per product and location: receipts + transfers + adjustments - till sales;
- :func:`store_sales_hourly` / :func:`store_sales_daily` — per store: revenue and tickets.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, literal, select, union_all

from hub.errors import ConfigError
from hub.estate.database import connect, estate_urls, reflect
from hub.estate.workload import cents

_HOUR = {"sqlite": "%Y-%m-%d %H:00:00", "postgresql": "YYYY-MM-DD HH24:00:00", "mysql": "%Y-%m-%d %H:00:00"}
_DAY = {"sqlite": "%Y-%m-%d", "postgresql": "YYYY-MM-DD", "mysql": "%Y-%m-%d"}


@dataclass(frozen=True)
class StoreSales:
    """Till revenue and number of tickets of one store over one hour or day."""

    revenue: Decimal
    tickets: int

    @property
    def average_basket(self) -> Decimal:
        """Revenue per ticket, to the cent (half-even)."""
        return (self.revenue / self.tickets).quantize(Decimal("0.01")) if self.tickets else Decimal("0.00")


@dataclass(frozen=True)
class Figures:
    """Every figure of the estate at one moment."""

    open_balances: dict[str, Decimal]
    on_hand: dict[tuple[str, str], int]
    store_sales_hourly: dict[tuple[str, dt.datetime], StoreSales]
    store_sales_daily: dict[tuple[str, dt.date], StoreSales]


def figures(urls: Mapping[str, str] | str | os.PathLike[str]) -> Figures:
    """All figures, each computed over its own legacy database."""
    found = estate_urls(urls)
    return Figures(
        open_balances=open_balances(found["finance"]),
        on_hand=on_hand(found["sales"]),
        store_sales_hourly=store_sales_hourly(found["sales"]),
        store_sales_daily=store_sales_daily(found["sales"]),
    )


def open_balances(finance: str | Engine) -> dict[str, Decimal]:
    """Per finance customer (``CUST_NO``): invoices not void minus payments, to the cent."""
    with _engine(finance) as engine:
        t = reflect(engine, "finance")
        customer, invoice, payment = t["AR_CUSTOMER"], t["AR_INVOICE"], t["AR_PAYMENT"]
        invoiced = (
            select(invoice.c.CUST_NO, func.sum(cents(invoice.c.AMOUNT)).label("cents"))
            .where(invoice.c.STATUS != "V")
            .group_by(invoice.c.CUST_NO)
            .subquery()
        )
        paid = (
            select(invoice.c.CUST_NO, func.sum(cents(payment.c.AMOUNT)).label("cents"))
            .select_from(payment.join(invoice, payment.c.INV_NO == invoice.c.INV_NO))
            .group_by(invoice.c.CUST_NO)
            .subquery()
        )
        query = (
            select(
                customer.c.CUST_NO,
                func.coalesce(invoiced.c.cents, 0) - func.coalesce(paid.c.cents, 0),
            )
            .select_from(
                customer.outerjoin(invoiced, invoiced.c.CUST_NO == customer.c.CUST_NO).outerjoin(
                    paid, paid.c.CUST_NO == customer.c.CUST_NO
                )
            )
            .order_by(customer.c.CUST_NO)
        )
        with engine.connect() as conn:
            return {str(code).strip(): _money(balance) for code, balance in conn.execute(query)}


def on_hand(sales: str | Engine) -> dict[tuple[str, str], int]:
    """Per (sku, location): receipts + transfers + adjustments - till sales, in units."""
    with _engine(sales) as engine:
        t = reflect(engine, "sales")
        moves, tickets = t["stock_movement"], t["pos_ticket"]
        flows = union_all(
            select(moves.c.sku, moves.c.location, moves.c.qty),
            select(tickets.c.sku, tickets.c.store_code, -tickets.c.qty),
        ).subquery()
        sku, location, qty = flows.c[0], flows.c[1], flows.c[2]
        query = select(sku, location, func.sum(qty)).group_by(sku, location).order_by(sku, location)
        with engine.connect() as conn:
            return {(str(s), str(loc).strip()): int(units) for s, loc, units in conn.execute(query)}


def store_sales_hourly(sales: str | Engine) -> dict[tuple[str, dt.datetime], StoreSales]:
    """Per (store, hour starting): till revenue and tickets."""
    rows = _store_sales(sales, _HOUR)
    return {(store, dt.datetime.fromisoformat(bucket)): figure for (store, bucket), figure in rows.items()}


def store_sales_daily(sales: str | Engine) -> dict[tuple[str, dt.date], StoreSales]:
    """Per (store, day): till revenue and tickets."""
    rows = _store_sales(sales, _DAY)
    return {(store, dt.date.fromisoformat(bucket)): figure for (store, bucket), figure in rows.items()}


def _store_sales(sales: str | Engine, formats: dict[str, str]) -> dict[tuple[str, str], StoreSales]:
    with _engine(sales) as engine:
        ticket = reflect(engine, "sales")["pos_ticket"]
        bucket = _format_time(engine.dialect.name, ticket.c.sold_at, formats).label("bucket")
        query = (
            select(ticket.c.store_code, bucket, func.sum(ticket.c.amount_cents), func.count())
            .group_by(ticket.c.store_code, bucket)
            .order_by(ticket.c.store_code, bucket)
        )
        with engine.connect() as conn:
            return {
                (str(store).strip(), str(when)): StoreSales(_money(revenue), int(count))
                for store, when, revenue, count in conn.execute(query)
            }


def _format_time(dialect: str, column: ColumnElement[Any], formats: dict[str, str]) -> ColumnElement[Any]:
    family = "mysql" if dialect in ("mysql", "mariadb") else dialect
    if family not in formats:
        raise ConfigError(
            f"the demo figures support SQLite, PostgreSQL and MariaDB/MySQL, not {dialect}",
            hint="give the estate one of those database URLs",
        )
    pattern = literal(formats[family])
    if family == "sqlite":
        return func.strftime(pattern, column)
    if family == "postgresql":
        return func.to_char(column, pattern)
    return func.date_format(column, pattern)


def _money(cents_total: Any) -> Decimal:
    return Decimal(int(cents_total or 0)).scaleb(-2)


@contextmanager
def _engine(source: str | Engine) -> Iterator[Engine]:
    if not isinstance(source, str):
        yield source
        return
    engine = connect(source)
    try:
        yield engine
    finally:
        engine.dispose()
