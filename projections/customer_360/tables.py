"""Tables of customer_360: the canonical records it needs, and the identity links.

Money is kept in integer cents so SQL sums stay exact on every database (SQLite included);
``customer_360`` itself is a view grouping by party, so a merge or a split of identities
re-keys it at once without recomputing anything.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, DateTime, MetaData, String, Table

from hub.errors import ReadModelError

CANONICAL = {
    "customer": ("key", "system", "code", "name", "email", "tax_id"),
    "order": ("key", "customer_key", "ordered_at"),
    "invoice": ("key", "customer_key", "invoice_date", "amount_cents", "status"),
    "payment": ("key", "invoice_key", "payment_date", "amount_cents"),
}


def tables(metadata: MetaData, suffix: str = "") -> dict[str, Table]:
    """The tables of the read model (``suffix`` for a rebuild's shadow copies)."""
    text = String(255)
    return {
        "customer": Table(
            "c360_customer" + suffix, metadata,
            Column("key", text, primary_key=True), Column("system", text), Column("code", text),
            Column("name", text), Column("email", text), Column("tax_id", text),
        ),
        "order": Table(
            "c360_order" + suffix, metadata,
            Column("key", text, primary_key=True), Column("customer_key", text, index=True),
            Column("ordered_at", DateTime(timezone=True)),
        ),
        "invoice": Table(
            "c360_invoice" + suffix, metadata,
            Column("key", text, primary_key=True), Column("customer_key", text, index=True),
            Column("invoice_date", Date), Column("amount_cents", BigInteger), Column("status", text),
        ),
        "payment": Table(
            "c360_payment" + suffix, metadata,
            Column("key", text, primary_key=True), Column("invoice_key", text, index=True),
            Column("payment_date", Date), Column("amount_cents", BigInteger),
        ),
        "identity": Table(
            "c360_identity" + suffix, metadata,
            Column("source_key", text, primary_key=True), Column("party_id", text, index=True),
            Column("rule", text),
        ),
    }  # fmt: skip


# What differs between the read stores: the date 90 days before the last invoice, joining
# a party's source keys, the latest of three activity dates (NULLs ignored), and string
# concatenation (|| is OR in MySQL).
DIALECTS = {
    "sqlite": (
        "DATE(MAX(invoice_date), '-90 days')",
        "GROUP_CONCAT(m.source_key, ' ')",
        "MAX(COALESCE(MAX(orders.last_order), ''), COALESCE(MAX(invoiced.last_invoice), ''), "
        "COALESCE(MAX(paid.last_paid), ''))",
        "'party:' || c.key",
    ),
    "postgresql": (
        "MAX(invoice_date) - 90",
        "STRING_AGG(m.source_key, ' ')",
        "GREATEST(MAX(orders.last_order), MAX(invoiced.last_invoice)::timestamptz, "
        "MAX(paid.last_paid)::timestamptz)",
        "'party:' || c.key",
    ),
    "mysql": (
        "DATE_SUB(MAX(invoice_date), INTERVAL 90 DAY)",
        "GROUP_CONCAT(m.source_key SEPARATOR ' ')",
        "NULLIF(GREATEST(COALESCE(MAX(orders.last_order), '0000-00-00'), "
        "COALESCE(MAX(invoiced.last_invoice), '0000-00-00'), COALESCE(MAX(paid.last_paid), '0000-00-00')), "
        "'0000-00-00')",
        "CONCAT('party:', c.key)",
    ),
}
DIALECTS["mariadb"] = DIALECTS["mysql"]


def view_sql(suffix: str = "", dialect: str = "sqlite") -> str:
    """``customer_360``: per party, its ids, orders, invoiced, paid, open balance, DSO, last activity.

    A customer without an identity link is its own party. Void invoices count nowhere;
    days sales outstanding = open balance / invoiced over the last 90 days of invoices * 90.
    Written for the read stores in ``DIALECTS`` (SQLite, PostgreSQL, MariaDB/MySQL).
    """
    if dialect not in DIALECTS:
        raise ReadModelError(
            f"customer_360 has no view for a {dialect} read store",
            hint=f"use one of: {', '.join(sorted(DIALECTS))} (read_store.url)",
        )
    ninety_days_back, keys, last_activity, own_party = DIALECTS[dialect]
    s = suffix
    return f"""
CREATE VIEW customer_360{s} AS
WITH member AS (
  SELECT c.key AS source_key, COALESCE(i.party_id, {own_party}) AS party_id
  FROM c360_customer{s} c LEFT JOIN c360_identity{s} i ON i.source_key = c.key
),
inv AS (
  SELECT m.party_id, v.key, v.amount_cents, v.invoice_date
  FROM c360_invoice{s} v JOIN member m ON m.source_key = v.customer_key
  WHERE v.status <> 'VOID'
),
paid AS (
  SELECT inv.party_id, SUM(p.amount_cents) AS cents, MAX(p.payment_date) AS last_paid
  FROM c360_payment{s} p JOIN inv ON inv.key = p.invoice_key GROUP BY inv.party_id
),
invoiced AS (
  SELECT party_id, SUM(amount_cents) AS cents, MAX(invoice_date) AS last_invoice,
         SUM(CASE WHEN invoice_date >= (SELECT {ninety_days_back} FROM inv)
                  THEN amount_cents ELSE 0 END) AS recent_cents
  FROM inv GROUP BY party_id
),
orders AS (
  SELECT m.party_id, COUNT(*) AS n, MAX(o.ordered_at) AS last_order
  FROM c360_order{s} o JOIN member m ON m.source_key = o.customer_key GROUP BY m.party_id
)
SELECT m.party_id,
       {keys} AS source_keys,
       COALESCE(MAX(orders.n), 0) AS orders,
       COALESCE(MAX(invoiced.cents), 0) AS invoiced_cents,
       COALESCE(MAX(paid.cents), 0) AS paid_cents,
       COALESCE(MAX(invoiced.cents), 0) - COALESCE(MAX(paid.cents), 0) AS open_balance_cents,
       CASE WHEN COALESCE(MAX(invoiced.recent_cents), 0) > 0
            THEN ROUND((COALESCE(MAX(invoiced.cents), 0) - COALESCE(MAX(paid.cents), 0)) * 90.0
                       / MAX(invoiced.recent_cents), 1) END AS days_sales_outstanding,
       {last_activity} AS last_activity
FROM member m
LEFT JOIN orders ON orders.party_id = m.party_id
LEFT JOIN invoiced ON invoiced.party_id = m.party_id
LEFT JOIN paid ON paid.party_id = m.party_id
GROUP BY m.party_id
"""
