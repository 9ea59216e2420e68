"""employee_directory: HR records with department, manager and sales-rep performance."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text

from hub.kafka.topics import canonical_topic
from projections.employee_directory.builder import employee_directory_builder
from projections.events import RawEvent
from projections.store import create_read_store


def test_directory_joins_hr_with_sales_rep_performance(tmp_path: Path) -> None:
    """A rep's row shows department, manager, and the customers, orders and order value they look after."""
    engine = create_read_store(f"sqlite:///{tmp_path / 'rm.db'}")
    builder = employee_directory_builder(engine)
    offsets: dict[str, int] = {}

    def event(entity: str, value: dict[str, Any]) -> RawEvent:
        topic = canonical_topic(entity)
        offsets[topic] = offsets.get(topic, -1) + 1
        return RawEvent(topic, 0, offsets[topic], {"key": value["key"]}, value, None, None)

    def employee(no: int, name: str, manager: str | None) -> dict[str, Any]:
        return {"key": f"hr:{no}", "employee_no": no, "name": name, "job": "SALESMAN", "manager_key": manager,
                "hire_date": dt.date(2020, 1, 31), "salary": Decimal("1600.00"), "department_key": "hr:30",
                "email": None}  # fmt: skip

    builder.apply(
        [
            event("department", {"key": "hr:30", "name": "SALES", "location": "CHICAGO"}),
            event("employee", employee(7698, "BLAKE", None)),
            event("employee", employee(7499, "ALLEN", "hr:7698")),
            event("customer", {"key": "sales:C-1", "sales_rep_key": "hr:7499"}),
            event("customer", {"key": "sales:C-2", "sales_rep_key": "hr:7499"}),
            event("order", {"key": "sales:o1", "customer_key": "sales:C-1"}),
            event("order_line", {"key": "sales:o1/1", "order_key": "sales:o1", "quantity": 3,
                                 "unit_price": Decimal("2.50")}),
            event("order_line", {"key": "sales:o1/2", "order_key": "sales:o1", "quantity": 1,
                                 "unit_price": Decimal("10.00")}),
        ]
    )  # fmt: skip

    with engine.connect() as conn:
        found = {
            r.name: (r.department, r.location, r.manager, r.customers, r.orders, r.order_value_cents)
            for r in conn.execute(text("SELECT * FROM employee_directory"))
        }
    assert found == {
        "BLAKE": ("SALES", "CHICAGO", None, 0, 0, 0),
        "ALLEN": ("SALES", "CHICAGO", "BLAKE", 2, 1, 1750),
    }
