"""employee_directory: HR records joined with sales-rep performance from the sales system.

Kept per key like customer_360 (projections/entity_tables.py); the view joins employee,
department and manager, and sums the rep's customers' orders. Money in integer cents.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Date, Engine, Integer, MetaData, String, Table

from hub.kafka.topics import canonical_topic
from projections.customer_360.builder import cents
from projections.entity_tables import EntityTablesBuilder, RowFn

PROJECTION = "employee_directory"
ENTITIES = ("employee", "department", "customer", "order", "order_line")
TOPICS = [canonical_topic(e) for e in ENTITIES]


def _tables(metadata: MetaData, s: str) -> dict[str, Table]:
    t = String(255)

    def key() -> Column[Any]:
        return Column("key", t, primary_key=True)

    return {
        "employee": Table(
            "ed_employee" + s, metadata, key(), Column("employee_no", BigInteger), Column("name", t),
            Column("job", t), Column("manager_key", t), Column("hire_date", Date),
            Column("salary_cents", BigInteger), Column("department_key", t), Column("email", t),
        ),
        "department": Table(
            "ed_department" + s, metadata, key(), Column("name", t), Column("location", t)
        ),
        "customer": Table(
            "ed_customer" + s, metadata, key(), Column("sales_rep_key", t, index=True)
        ),
        "order": Table("ed_order" + s, metadata, key(), Column("customer_key", t, index=True)),
        "order_line": Table(
            "ed_order_line" + s, metadata, key(), Column("order_key", t, index=True),
            Column("quantity", Integer), Column("unit_price_cents", BigInteger),
        ),
    }  # fmt: skip


ROWS: dict[str, RowFn] = {
    "employee": lambda r: {
        **{k: r.get(k) for k in ("key", "employee_no", "name", "job", "manager_key", "hire_date")},
        **{k: r.get(k) for k in ("department_key", "email")},
        "salary_cents": cents(r["salary"]) if r.get("salary") is not None else None,
    },
    "department": lambda r: {k: r.get(k) for k in ("key", "name", "location")},
    "customer": lambda r: {"key": r["key"], "sales_rep_key": r.get("sales_rep_key")},
    "order": lambda r: {"key": r["key"], "customer_key": r.get("customer_key")},
    "order_line": lambda r: {
        "key": r["key"],
        "order_key": r["order_key"],
        "quantity": r["quantity"],
        "unit_price_cents": cents(r["unit_price"]),
    },
}


def view_sql(s: str = "", dialect: str = "sqlite") -> str:
    """One row per employee: department, manager, and as a sales rep: customers, orders, order value.

    Plain SQL: the same text on SQLite, PostgreSQL and MariaDB/MySQL (``dialect`` unused).
    """
    return f"""
CREATE VIEW employee_directory{s} AS
WITH line_totals AS (
  SELECT order_key, SUM(quantity * unit_price_cents) AS cents FROM ed_order_line{s} GROUP BY order_key
),
reps AS (
  SELECT c.sales_rep_key AS rep, COUNT(DISTINCT c.key) AS customers, COUNT(DISTINCT o.key) AS orders,
         COALESCE(SUM(line_totals.cents), 0) AS order_value_cents
  FROM ed_customer{s} c
  LEFT JOIN ed_order{s} o ON o.customer_key = c.key
  LEFT JOIN line_totals ON line_totals.order_key = o.key
  WHERE c.sales_rep_key IS NOT NULL
  GROUP BY c.sales_rep_key
)
SELECT e.key, e.employee_no, e.name, e.job, e.hire_date, e.email, e.salary_cents,
       d.name AS department, d.location, m.name AS manager,
       COALESCE(reps.customers, 0) AS customers, COALESCE(reps.orders, 0) AS orders,
       COALESCE(reps.order_value_cents, 0) AS order_value_cents
FROM ed_employee{s} e
LEFT JOIN ed_department{s} d ON d.key = e.department_key
LEFT JOIN ed_employee{s} m ON m.key = e.manager_key
LEFT JOIN reps ON reps.rep = e.key
"""


def employee_directory_builder(
    engine: Engine, projection: str = PROJECTION, table_suffix: str = ""
) -> EntityTablesBuilder:
    found: dict[str, Any] = _tables(MetaData(), table_suffix)
    return EntityTablesBuilder(
        engine,
        projection,
        table_suffix,
        {canonical_topic(entity): (found[entity], ROWS[entity]) for entity in ENTITIES},
        "employee_directory",
        view_sql,
    )
