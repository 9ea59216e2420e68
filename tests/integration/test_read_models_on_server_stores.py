"""customer_360 and employee_directory kept in PostgreSQL or MariaDB give SQLite's rows.

The views are the only dialect-specific SQL of the read models (date arithmetic, string
aggregation, the latest of several dates); the same canonical events applied to each
store must read back the same.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import Engine, text

from hub.kafka.topics import canonical_topic
from projections.customer_360.builder import customer_360_builder
from projections.employee_directory.builder import employee_directory_builder
from projections.events import RawEvent
from projections.store import create_read_store

pytestmark = pytest.mark.integration


class Log:
    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}

    def event(self, entity: str, value: dict[str, Any], key: str | None = None) -> RawEvent:
        topic = canonical_topic(entity)
        self.offsets[topic] = self.offsets.get(topic, -1) + 1
        return RawEvent(topic, 0, self.offsets[topic], {"key": key or value["key"]}, value, None, None)


def customer_events(log: Log) -> list[RawEvent]:
    def customer(key: str) -> dict[str, Any]:
        system, code = key.split(":")
        return {"key": key, "system": system, "code": code, "name": "ACME", "email": None, "tax_id": None}

    def invoice(key: str, owner: str, day: int, amount: str, status: str = "OPEN") -> dict[str, Any]:
        day_of = dt.date(2026, 1, 1) + dt.timedelta(days=day)
        return {"key": key, "customer_key": owner, "invoice_date": day_of, "amount": Decimal(amount),
                "status": status}  # fmt: skip

    def link(key: str, party: str) -> dict[str, Any]:
        return {"source_key": key, "party_id": party, "rule": "reference", "entity": "Customer",
                "members": [], "ts_ms": 0}  # fmt: skip

    return [
        log.event("customer", customer("fin:1")),
        log.event("customer", customer("sales:C-1")),
        log.event("customer", customer("fin:2")),
        log.event("invoice", invoice("fin:i1", "fin:1", 0, "100.10")),
        log.event("invoice", invoice("fin:i2", "fin:1", 200, "50.00")),
        log.event("invoice", invoice("fin:i3", "fin:1", 210, "70.00", status="VOID")),
        log.event("invoice", invoice("fin:i4", "fin:2", 5, "9.99")),
        log.event(
            "payment",
            {
                "key": "fin:p1",
                "invoice_key": "fin:i1",
                "payment_date": dt.date(2026, 3, 1),
                "amount": Decimal("40.05"),
            },
        ),
        log.event(
            "order",
            {
                "key": "sales:o1",
                "customer_key": "sales:C-1",
                "ordered_at": dt.datetime(2026, 9, 1, 10, 30, tzinfo=dt.UTC),
            },
        ),
        log.event("identity", link("fin:1", "party:1"), key="fin:1"),
        log.event("identity", link("sales:C-1", "party:1"), key="sales:C-1"),
    ]


def directory_events(log: Log) -> list[RawEvent]:
    def employee(no: int, name: str, manager: str | None) -> dict[str, Any]:
        return {"key": f"hr:{no}", "employee_no": no, "name": name, "job": "SALESMAN", "manager_key": manager,
                "hire_date": dt.date(2020, 1, 31), "salary": Decimal("1600.00"), "department_key": "hr:30",
                "email": None}  # fmt: skip

    return [
        log.event("department", {"key": "hr:30", "name": "SALES", "location": "CHICAGO"}),
        log.event("employee", employee(7698, "BLAKE", None)),
        log.event("employee", employee(7499, "ALLEN", "hr:7698")),
        log.event("customer", {"key": "sales:C-1", "sales_rep_key": "hr:7499"}),
        log.event("order", {"key": "sales:o1", "customer_key": "sales:C-1"}),
        log.event(
            "order_line",
            {"key": "sales:o1/1", "order_key": "sales:o1", "quantity": 3, "unit_price": Decimal("2.50")},
        ),
    ]


def normalised(value: Any) -> Any:
    """One spelling per value: SQLite hands dates back as text, and the latest activity of a
    party is a date there when its last event is an invoice, a midnight timestamp elsewhere."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(sep=" ")[:16]
    if isinstance(value, dt.date):
        return f"{value.isoformat()} 00:00"
    if isinstance(value, str) and len(value) >= 10 and value[4] == "-" and value[7] == "-":
        return f"{value} 00:00" if len(value) == 10 else value.replace("T", " ")[:16]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, str) and " " in value and ":" in value:
        return " ".join(sorted(value.split(" ")))  # source_keys: their order is the store's
    return value


def read(engine: Engine, view: str, order: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT * FROM {view} ORDER BY {order}"))
        return [tuple(normalised(v) for v in row) for row in rows]


def build(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    customer_360_builder(engine).apply(customer_events(Log()))
    employee_directory_builder(engine).apply(directory_events(Log()))
    return {
        "customer_360": read(engine, "customer_360", "party_id"),
        "employee_directory": read(engine, "employee_directory", "employee_no"),
    }


def sqlalchemy_url(store: str, request: pytest.FixtureRequest) -> str:
    if store == "postgres":
        return str(request.getfixturevalue("postgres_db"))
    parts = urlsplit(request.getfixturevalue("mysql_db").url)
    return urlunsplit(parts._replace(scheme="mysql+pymysql"))


@pytest.mark.parametrize("store", ["postgres", "mariadb"])
def test_views_read_the_same_as_on_sqlite(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    expected = build(create_read_store(f"sqlite:///{tmp_path / 'rm.db'}"))
    engine = create_read_store(sqlalchemy_url(store, request))
    try:
        found = build(engine)
    finally:
        engine.dispose()

    assert found == expected
    parties = {row[0]: row for row in found["customer_360"]}
    assert set(parties) == {"party:1", "party:fin:2"}
    assert parties["party:1"][1] == "fin:1 sales:C-1"
