"""The estate's workload, part one: the shared state and helpers, and the sales side.

A :class:`Workload` holds one engine per system, the reflected tables, the seeded random
generator and the next free numbers; its methods each make one committed change in the
sales database (tills, stock, orders, CRM) and return a :class:`Change`, or None when the
estate offers nothing to change that way. :mod:`hub.estate.back_office` adds finance and
HR, :mod:`hub.estate.simulator` the mix and the pace.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Integer, Select, cast, func, select

from hub.estate.database import DEFAULT_SEED, connect, estate_urls, reflect
from hub.estate.seed import FIRST_NAMES, LAST_NAMES, WAREHOUSE, ascii_upper

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class Change:
    """What one step did: its kind (``till_sale``, ``correction:price``...) and the system."""

    kind: str
    system: str


def simulated_clock(start: dt.datetime, tick: dt.timedelta) -> Clock:
    """A clock that starts at ``start`` and moves ``tick`` forward at every reading."""
    now = start - tick

    def read() -> dt.datetime:
        nonlocal now
        now += tick
        return now

    return read


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def cents(column: ColumnElement[Any]) -> ColumnElement[int]:
    """A DECIMAL money column as integer cents, exact on every dialect (SQLite stores REAL)."""
    return cast(func.round(column * 100), Integer)


class Workload:
    """The estate's engines, tables and counters, and the changes to its sales database."""

    def __init__(
        self,
        urls: Mapping[str, str] | str | os.PathLike[str],
        seed: int = DEFAULT_SEED,
        rate: float = 10.0,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.urls = estate_urls(urls)
        self.rng = random.Random(seed)
        self.rate = rate
        self.clock = clock or _utc_now
        self.engines = {system: connect(url) for system, url in self.urls.items()}
        self.t = {
            name: table for system, e in self.engines.items() for name, table in reflect(e, system).items()
        }
        self.changes = 0
        self.kinds: Counter[str] = Counter()
        store, product = self.t["store"], self.t["product"]
        with self.engines["sales"].connect() as conn:
            query = select(store.c.store_code).where(store.c.kind == "S").order_by(store.c.store_code)
            self.shops = list(conn.scalars(query))
            self.skus = list(conn.scalars(select(product.c.sku).order_by(product.c.sku)))
        self._ids = {
            name: self._max(system, table, column)
            for name, system, table, column in (
                ("ticket", "sales", "pos_ticket", "ticket_no"),
                ("order", "sales", "sales_order", "order_no"),
                ("movement", "sales", "stock_movement", "id"),
                ("invoice", "finance", "AR_INVOICE", "INV_NO"),
                ("payment", "finance", "AR_PAYMENT", "PAY_NO"),
                ("cust_no", "finance", "AR_CUSTOMER", "CUST_NO"),
                ("crm", "sales", "crm_customer", "code"),
                ("empno", "hr", "EMP", "EMPNO"),
                ("ref", "sales", "stock_movement", "ref"),
            )
        }

    # -- helpers --------------------------------------------------------------------------

    def _max(self, system: str, table: str, column: str) -> int:
        col = self.t[table].c[column]
        query = select(func.max(col))
        if column == "ref":
            query = query.where(col.like("TR%"))
        with self.engines[system].connect() as conn:
            found = conn.execute(query).scalar()
        digits = "".join(ch for ch in str(found or 0) if ch.isdigit())
        return int(digits or 0)

    def _next(self, name: str) -> int:
        self._ids[name] += 1
        return self._ids[name]

    def _pick(self, conn: Connection, query: Select[Any]) -> Any:
        """A random row of ``query`` (which must be ordered), or None when it has none."""
        count = conn.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
        if not count:
            return None
        return conn.execute(query.limit(1).offset(self.rng.randrange(count))).first()

    def _on_hand(self, conn: Connection, sku: str, location: str) -> int:
        moves, tickets = self.t["stock_movement"], self.t["pos_ticket"]
        moved = select(func.coalesce(func.sum(moves.c.qty), 0)).where(
            moves.c.sku == sku, moves.c.location == location
        )
        sold = select(func.coalesce(func.sum(tickets.c.qty), 0)).where(
            tickets.c.sku == sku, tickets.c.store_code == location
        )
        return int(conn.execute(moved).scalar_one()) - int(conn.execute(sold).scalar_one())

    def _move(self, conn: Connection, sku: str, location: str, kind: str, qty: int, ref: str | None) -> None:
        row = {"id": self._next("movement"), "sku": sku, "location": location, "kind": kind, "qty": qty}
        conn.execute(self.t["stock_movement"].insert(), {**row, "moved_at": self.clock(), "ref": ref})

    def _price(self, conn: Connection, sku: str) -> int:
        product = self.t["product"]
        return int(conn.execute(select(product.c.unit_price_cents).where(product.c.sku == sku)).scalar_one())

    # -- sales: tills, stock, orders, customers -------------------------------------------

    def _till_sale(self) -> Change | None:
        shop, sku = self.rng.choice(self.shops), self.rng.choice(self.skus)
        with self.engines["sales"].begin() as conn:
            stock = self._on_hand(conn, sku, shop)
            if stock <= 0:
                return self._stock_transfer(conn, sku, shop)
            qty = min(self.rng.randint(1, 3), stock)
            amount = qty * self._price(conn, sku)
            if self.rng.random() < 0.1:
                amount -= amount // 10
            row = {"ticket_no": self._next("ticket"), "store_code": shop, "sku": sku, "qty": qty}
            conn.execute(
                self.t["pos_ticket"].insert(), {**row, "amount_cents": amount, "sold_at": self.clock()}
            )
        return Change("till_sale", "sales")

    def _stock_receipt(self) -> Change:
        sku = self.rng.choice(self.skus)
        location = WAREHOUSE if self.rng.random() < 0.9 else self.rng.choice(self.shops)
        with self.engines["sales"].begin() as conn:
            self._move(
                conn, sku, location, "R", self.rng.randint(10, 30) * 10, f"PO{self.rng.randrange(10**6):06d}"
            )
        return Change("stock_receipt", "sales")

    def _stock_transfer(self, conn: Connection | None = None, sku: str = "", shop: str = "") -> Change | None:
        if conn is None:
            with self.engines["sales"].begin() as conn:
                return self._stock_transfer(conn, self.rng.choice(self.skus), self.rng.choice(self.shops))
        available = self._on_hand(conn, sku, WAREHOUSE)
        if available <= 0:
            return None
        qty = min(self.rng.randint(10, 40), available)
        ref = f"TR{self._next('ref'):06d}"
        self._move(conn, sku, WAREHOUSE, "T", -qty, ref)
        self._move(conn, sku, shop, "T", qty, ref)
        return Change("stock_transfer", "sales")

    def _stock_adjustment(self) -> Change:
        shop, sku = self.rng.choice(self.shops), self.rng.choice(self.skus)
        with self.engines["sales"].begin() as conn:
            qty = self.rng.choice([-2, -1, 1, 2])
            if self._on_hand(conn, sku, shop) + qty < 0:
                qty = 1
            self._move(conn, sku, shop, "A", qty, None)
        return Change("stock_adjustment", "sales")

    def _void_ticket(self) -> Change | None:
        ticket = self.t["pos_ticket"]
        recent = select(ticket.c.ticket_no).where(ticket.c.ticket_no > self._ids["ticket"] - 200)
        with self.engines["sales"].begin() as conn:
            found = self._pick(conn, recent.order_by(ticket.c.ticket_no))
            if found is None:
                return None
            conn.execute(ticket.delete().where(ticket.c.ticket_no == found.ticket_no))
        return Change("void_ticket", "sales")

    def _order(self) -> Change | None:
        customer = self.t["crm_customer"]
        with self.engines["sales"].begin() as conn:
            buyer = self._pick(conn, select(customer.c.code).order_by(customer.c.code))
            if buyer is None:
                return None
            order_no = self._next("order")
            row = {
                "order_no": order_no,
                "customer_code": buyer.code,
                "ordered_at": self.clock(),
                "status": "N",
            }
            conn.execute(self.t["sales_order"].insert(), row)
            for line_no, sku in enumerate(self.rng.sample(self.skus, self.rng.randint(1, 4)), start=1):
                line = {"order_no": order_no, "line_no": line_no, "sku": sku, "qty": self.rng.randint(1, 10)}
                conn.execute(
                    self.t["order_line"].insert(), {**line, "unit_price_cents": self._price(conn, sku)}
                )
        return Change("order", "sales")

    def _new_orders(self) -> Select[Any]:
        order = self.t["sales_order"]
        return select(order.c.order_no).where(order.c.status == "N")

    def _order_status(self) -> Change | None:
        order = self.t["sales_order"]
        with self.engines["sales"].begin() as conn:
            found = self._pick(conn, self._new_orders().order_by(order.c.order_no))
            if found is None:
                return None
            status = "S" if self.rng.random() < 0.9 else "X"
            conn.execute(order.update().where(order.c.order_no == found.order_no).values(status=status))
        return Change("order_status", "sales")

    def _drop_order_line(self) -> Change | None:
        line = self.t["order_line"]
        several = select(line.c.order_no).group_by(line.c.order_no).having(func.count() > 1)
        query = select(line.c.order_no, func.max(line.c.line_no).label("line_no")).where(
            line.c.order_no.in_(self._new_orders()), line.c.order_no.in_(several)
        )
        with self.engines["sales"].begin() as conn:
            found = self._pick(conn, query.group_by(line.c.order_no).order_by(line.c.order_no))
            if found is None:
                return None
            conn.execute(
                line.delete().where(line.c.order_no == found.order_no, line.c.line_no == found.line_no)
            )
        return Change("drop_order_line", "sales")

    def _new_crm_customer(self) -> Change:
        code = f"C-{self._next('crm'):05d}"
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        email = f"{ascii_upper(first).lower()}.{ascii_upper(last).lower()}.{code[2:]}@mail.example"
        row = {"code": code, "name": f"{first} {last}", "email": email, "tax_id": None, "rep_empno": None}
        with self.engines["sales"].begin() as conn:
            conn.execute(self.t["crm_customer"].insert(), row)
        return Change("new_crm_customer", "sales")

    def _correction_price(self) -> Change:
        product, sku = self.t["product"], self.rng.choice(self.skus)
        with self.engines["sales"].begin() as conn:
            price = round(self._price(conn, sku) * self.rng.uniform(0.9, 1.1))
            conn.execute(product.update().where(product.c.sku == sku).values(unit_price_cents=max(price, 99)))
        return Change("correction:price", "sales")

    def _correction_email(self) -> Change | None:
        crm = self.t["crm_customer"]
        with self.engines["sales"].begin() as conn:
            found = self._pick(conn, select(crm.c.code, crm.c.email).order_by(crm.c.code))
            if found is None or not found.email:
                return None
            local, _, domain = found.email.partition("@")
            email = f"{local}@{domain.replace('.example', '-shop.example')}"
            conn.execute(crm.update().where(crm.c.code == found.code).values(email=email))
        return Change("correction:email", "sales")

    def _correction_adjustment(self) -> Change | None:
        moves = self.t["stock_movement"]
        with self.engines["sales"].begin() as conn:  # a recount finds one more: stock cannot go negative
            found = self._pick(
                conn, select(moves.c.id, moves.c.qty).where(moves.c.kind == "A").order_by(moves.c.id)
            )
            if found is None:
                return None
            conn.execute(moves.update().where(moves.c.id == found.id).values(qty=found.qty + 1))
        return Change("correction:adjustment", "sales")

    def _correction_order_line(self) -> Change | None:
        line = self.t["order_line"]
        query = select(line.c.order_no, line.c.line_no).where(line.c.order_no.in_(self._new_orders()))
        with self.engines["sales"].begin() as conn:
            found = self._pick(conn, query.order_by(line.c.order_no, line.c.line_no))
            if found is None:
                return None
            where = (line.c.order_no == found.order_no, line.c.line_no == found.line_no)
            conn.execute(line.update().where(*where).values(qty=self.rng.randint(1, 10)))
        return Change("correction:order_line", "sales")
