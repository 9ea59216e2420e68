"""The demo estate's starting rows, computed from a seed: pure, no database.

``seed_rows(seed)`` returns, per system and table, the rows to insert, in insertion order.
The same seed gives the same rows on every machine and Python version (``random.Random``
with an integer seed is stable). Customers come in six groups so that identity resolution
has every case to handle:

=============  ========  =====  ===================================================
group          finance   sales  what links the two records
=============  ========  =====  ===================================================
``all``        yes       yes    CRM_REF, tax id (spaced in finance) and email
``ref``        yes       yes    CRM_REF only (sales has no tax id, emails differ)
``tax``        yes       yes    tax id only (formatted differently), no CRM_REF
``email``      yes       yes    email only, differing in case and blanks
``sales``      no        yes    a consumer known to the CRM only
``finance``    yes       no     an account receivable unknown to the CRM
=============  ========  =====  ===================================================
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata
from decimal import Decimal
from typing import Any

Row = dict[str, Any]
Tables = dict[str, list[Row]]

BUSINESS_DAY = dt.date(2024, 3, 8)
"""The last trading day in the seed; the simulator's own clock takes over from there."""

CUSTOMER_GROUPS: tuple[tuple[str, int], ...] = (
    ("all", 15),
    ("ref", 8),
    ("tax", 8),
    ("email", 8),
    ("sales", 12),
    ("finance", 9),
)
WAREHOUSE = "W001"
STORES: tuple[tuple[str, str, str, str], ...] = (
    ("S001", "PARIS OPERA", "PARIS", "S"),
    ("S002", "LYON BELLECOUR", "LYON", "S"),
    ("S003", "LILLE CENTRE", "LILLE", "S"),
    ("S004", "NANTES COMMERCE", "NANTES", "S"),
    ("S005", "BORDEAUX GAMBETTA", "BORDEAUX", "S"),
    (WAREHOUSE, "ENTREPOT CENTRAL", "LYON", "W"),
)
SHOPS: tuple[str, ...] = tuple(code for code, _, _, kind in STORES if kind == "S")
DEPARTMENTS: tuple[tuple[int, str, str], ...] = (
    (10, "FINANCE", "LYON"),
    (20, "SALES", "PARIS"),
    (30, "STORES", "LYON"),
    (40, "LOGISTICS", "LILLE"),
    (50, "IT", "PARIS"),
)
GL_ACCOUNTS: tuple[tuple[str, str, str], ...] = (
    ("401000", "SUPPLIERS", "L"),
    ("411000", "CUSTOMERS", "A"),
    ("445710", "VAT COLLECTED", "L"),
    ("512000", "BANK", "A"),
    ("607000", "PURCHASES OF GOODS", "E"),
    ("641000", "SALARIES", "E"),
    ("706000", "SERVICES RENDERED", "R"),
    ("707000", "SALES OF GOODS", "R"),
)
# (job, department, headcount, lowest and highest monthly salary)
STAFF: tuple[tuple[str, int, int, int, int], ...] = (
    ("SALESMAN", 20, 8, 2200, 3600),
    ("CLERK", 30, 10, 1800, 2400),
    ("STOREKEEPER", 40, 4, 1900, 2600),
    ("ACCOUNTANT", 10, 3, 2600, 3900),
    ("ANALYST", 50, 3, 3200, 5200),
)
FIRST_NAMES = (
    "Jean", "Marie", "Pierre", "Camille", "Luc", "Sophie", "Hélène", "Nicolas", "Julie",
    "François", "Chloé", "Antoine", "Léa", "Thomas", "Inès", "Mathieu", "Élodie", "Hugo",
)  # fmt: skip
LAST_NAMES = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
    "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David",
    "Bertrand", "Roux", "Vincent", "Fournier", "Morel", "Girard", "André", "Mercier",
)  # fmt: skip
TRADES = (
    "Boulangerie", "Garage", "Café", "Hôtel", "Pharmacie", "Atelier", "Librairie",
    "Fromagerie", "Cave", "Épicerie", "Fleuriste", "Traiteur",
)  # fmt: skip
ITEMS = (
    "coffee beans 1kg", "green tea 100g", "olive oil 75cl", "dark chocolate 200g",
    "honey 500g", "sparkling water 6x1l", "pasta 1kg", "basmati rice 2kg",
    "tomato sauce 400g", "butter cookies 300g",
)  # fmt: skip
BRANDS = ("Maison", "Terroir", "Atlas", "Nord")


def ascii_upper(text: str) -> str:
    """``text`` without accents, in capitals: how the old systems stored names."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


def vat_number(siren: int) -> str:
    """The French VAT number of a 9-digit company number (its check key included)."""
    return f"FR{(12 + 3 * (siren % 97)) % 97:02d}{siren:09d}"


def seed_rows(seed: int, *, dirty: bool = False) -> dict[str, Tables]:
    """Every system's starting rows for ``seed``; ``dirty`` adds one unmappable HR row."""
    rng = random.Random(seed)
    hr = _hr(rng, dirty)
    salesmen = [row["EMPNO"] for row in hr["EMP"] if row["JOB"] == "SALESMAN"]
    finance, crm = _customers(rng, salesmen)
    products = [
        {
            "sku": f"SKU{10001 + i}",
            "label": f"{BRANDS[i // len(ITEMS) % len(BRANDS)]} {ITEMS[i % len(ITEMS)]}",
            "unit_price_cents": rng.randint(199, 4999),
        }
        for i in range(40)
    ]
    sales: Tables = {
        "crm_customer": crm,
        "product": products,
        "store": [dict(zip(("store_code", "name", "city", "kind"), s, strict=True)) for s in STORES],
    }
    sales["sales_order"], sales["order_line"] = _orders(rng, crm, products)
    sales["stock_movement"], sales["pos_ticket"] = _stock_and_tills(rng, products)
    return {"finance": finance, "hr": hr, "sales": sales}


def _hr(rng: random.Random, dirty: bool) -> Tables:
    employees: list[Row] = []
    empno = 7000

    def hire(job: str, deptno: int, mgr: int | None, low: int, high: int) -> int:
        nonlocal empno
        empno += rng.randint(1, 9)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        hired = dt.date(1998, 1, 1) + dt.timedelta(days=rng.randrange(26 * 365))
        email = None if rng.random() < 0.1 else f"{ascii_upper(first)}.{ascii_upper(last)}@retail.example"
        employees.append(
            {
                "EMPNO": empno,
                "ENAME": ascii_upper(f"{first} {last}"),
                "JOB": job,
                "MGR": mgr,
                "HIREDATE": hired.strftime("%Y%m%d"),
                "SAL": Decimal(rng.randrange(low * 100, high * 100, 50)) / 100,
                "DEPTNO": deptno,
                "EMAIL": email.lower() if email else None,
            }
        )
        return empno

    head = hire("PRESIDENT", 50, None, 9000, 12000)
    managers = {deptno: hire("MANAGER", deptno, head, 4200, 6500) for deptno, _, _ in DEPARTMENTS}
    for job, deptno, count, low, high in STAFF:
        for _ in range(count):
            hire(job, deptno, managers[deptno], low, high)
    if dirty:  # a date the old system accepted and no calendar has
        hire("CLERK", 30, managers[30], 1800, 2400)
        employees[-1]["HIREDATE"] = "20230229"
    depts = [dict(zip(("DEPTNO", "DNAME", "LOC"), d, strict=True)) for d in DEPARTMENTS]
    return {"DEPT": depts, "EMP": employees}


def _customers(rng: random.Random, salesmen: list[int]) -> tuple[Tables, list[Row]]:
    groups = [group for group, count in CUSTOMER_GROUPS for _ in range(count)]
    rng.shuffle(groups)
    cust_nos = sorted(rng.sample(range(100, 9000), len(groups)))
    sirens = rng.sample(range(300_000_000, 999_999_999), len(groups))
    domains: set[str] = set()
    ar_customers: list[Row] = []
    crm: list[Row] = []
    for index, group in enumerate(groups):
        last = rng.choice(LAST_NAMES)
        if group == "sales":
            first = rng.choice(FIRST_NAMES)
            name = f"{first} {last}"
            email = f"{ascii_upper(first).lower()}.{ascii_upper(last).lower()}{index}@mail.example"
        else:
            name = f"{rng.choice(TRADES)} {last}"
            slug = ascii_upper(name).lower().replace(" ", "-")
            while slug in domains:
                slug += str(rng.randint(0, 9))
            domains.add(slug)
            email = f"contact@{slug}.example"
        code = f"C-{len(crm) + 1:05d}"
        vat = vat_number(sirens[index])
        if group != "finance":
            crm.append(
                {
                    "code": code,
                    "name": name,
                    "email": email,
                    "tax_id": vat if group in ("all", "tax") else None,
                    "rep_empno": None if group == "sales" else rng.choice(salesmen),
                }
            )
        if group == "sales":
            continue
        spaced = f"{vat[:2]} {vat[2:4]} {vat[4:]}"
        if group in ("all", "email"):
            ar_email = rng.choice([email, email.upper(), f" {email.capitalize()} "])
        else:
            ar_email = email.replace("contact@", "compta@")
        ar_customers.append(
            {
                "CUST_NO": f"{cust_nos[index]:06d}",
                "NAME": ascii_upper(name) + rng.choice(["", " SARL", " SAS", " EURL"]),
                "TAX_ID": spaced if rng.random() < 0.5 or group == "tax" else vat,
                "EMAIL": ar_email,
                "CRM_REF": code if group in ("all", "ref") else rng.choice([None, None, ""]),
            }
        )
    invoices, payments = _receivables(rng, [row["CUST_NO"] for row in ar_customers])
    gl = [dict(zip(("ACCT_NO", "DESCR", "ACCT_TYPE"), a, strict=True)) for a in GL_ACCOUNTS]
    finance = {"AR_CUSTOMER": ar_customers, "AR_INVOICE": invoices, "AR_PAYMENT": payments, "GL_ACCOUNT": gl}
    return finance, crm


def _receivables(rng: random.Random, cust_nos: list[str]) -> tuple[list[Row], list[Row]]:
    first_day = dt.date(2024, 1, 2)
    drafts = []
    for cust_no in cust_nos:
        for _ in range(rng.randint(0, 5)):
            day = first_day + dt.timedelta(days=rng.randrange((BUSINESS_DAY - first_day).days))
            drafts.append((day, cust_no, rng.randint(5_000, 500_000)))
    drafts.sort()
    invoices: list[Row] = []
    paid: list[tuple[dt.date, int, int]] = []
    for number, (day, cust_no, cents) in enumerate(drafts, start=240001):
        roll = rng.random()
        status = "V" if roll < 0.08 else "O"
        if 0.08 <= roll < 0.6:  # settled, in one or two instalments
            first = cents if rng.random() < 0.7 else cents // 2
            paid.append((_after(rng, day), number, first))
            if first < cents:
                paid.append((_after(rng, day), number, cents - first))
            status = "P"
        elif 0.6 <= roll < 0.75:  # partly paid
            paid.append((_after(rng, day), number, cents * rng.randint(30, 70) // 100))
        amount = Decimal(cents).scaleb(-2)
        invoices.append(
            {"INV_NO": number, "CUST_NO": cust_no, "INV_DATE": day, "AMOUNT": amount, "STATUS": status}
        )
    paid.sort()
    payments = [
        {"PAY_NO": number, "INV_NO": inv_no, "PAY_DATE": day, "AMOUNT": Decimal(cents).scaleb(-2)}
        for number, (day, inv_no, cents) in enumerate(paid, start=90001)
    ]
    return invoices, payments


def _after(rng: random.Random, day: dt.date) -> dt.date:
    return min(day + dt.timedelta(days=rng.randint(5, 45)), BUSINESS_DAY)


def _orders(rng: random.Random, crm: list[Row], products: list[Row]) -> tuple[list[Row], list[Row]]:
    start = dt.datetime.combine(BUSINESS_DAY, dt.time(8)) - dt.timedelta(days=30)
    moments = sorted(start + dt.timedelta(seconds=rng.randrange(30 * 86400)) for _ in range(80))
    orders: list[Row] = []
    lines: list[Row] = []
    for order_no, ordered_at in enumerate(moments, start=5001):
        roll = rng.random()
        status = "X" if roll < 0.05 else "N" if roll < 0.3 else "S"
        orders.append(
            {
                "order_no": order_no,
                "customer_code": rng.choice(crm)["code"],
                "ordered_at": ordered_at,
                "status": status,
            }
        )
        for line_no, product in enumerate(rng.sample(products, rng.randint(1, 4)), start=1):
            lines.append(
                {
                    "order_no": order_no,
                    "line_no": line_no,
                    "sku": product["sku"],
                    "qty": rng.randint(1, 10),
                    "unit_price_cents": product["unit_price_cents"],
                }
            )
    return orders, lines


def _stock_and_tills(rng: random.Random, products: list[Row]) -> tuple[list[Row], list[Row]]:
    moves: list[Row] = []
    on_hand: dict[tuple[str, str], int] = {}
    moment = dt.datetime.combine(BUSINESS_DAY - dt.timedelta(days=7), dt.time(6))

    def move(sku: str, location: str, kind: str, qty: int, ref: str | None) -> None:
        nonlocal moment
        moment += dt.timedelta(seconds=rng.randint(20, 90))
        row = {"id": len(moves) + 1, "sku": sku, "location": location, "kind": kind, "qty": qty}
        moves.append({**row, "moved_at": moment, "ref": ref})
        on_hand[sku, location] = on_hand.get((sku, location), 0) + qty

    for number, product in enumerate(products, start=1):
        move(product["sku"], WAREHOUSE, "R", rng.randint(30, 60) * 10, f"PO{number:06d}")
    transfer = 0
    for product in products:
        for shop in SHOPS:
            transfer += 1
            qty = rng.randint(30, 60)
            move(product["sku"], WAREHOUSE, "T", -qty, f"TR{transfer:06d}")
            move(product["sku"], shop, "T", qty, f"TR{transfer:06d}")
    for _ in range(12):  # a stock count finds a few more or fewer than the books say
        product, shop = rng.choice(products), rng.choice(SHOPS)
        move(product["sku"], shop, "A", rng.choice([-2, -1, 1]), None)
    tickets: list[Row] = []
    first_day = BUSINESS_DAY - dt.timedelta(days=4)
    moments = sorted(
        dt.datetime.combine(first_day + dt.timedelta(days=rng.randrange(5)), dt.time(9))
        + dt.timedelta(seconds=rng.randrange(11 * 3600), microseconds=rng.randrange(1_000_000))
        for _ in range(500)
    )
    for ticket_no, sold_at in enumerate(moments, start=100001):
        product, shop = rng.choice(products), rng.choice(SHOPS)
        qty = min(rng.randint(1, 3), on_hand[product["sku"], shop])
        if qty <= 0:
            continue
        on_hand[product["sku"], shop] -= qty
        amount = qty * product["unit_price_cents"]
        if rng.random() < 0.1:  # a 10 % promotion
            amount -= amount // 10
        row = {"ticket_no": ticket_no, "store_code": shop, "sku": product["sku"], "qty": qty}
        tickets.append({**row, "amount_cents": amount, "sold_at": sold_at})
    return moves, tickets
