"""The estate's workload, part two: finance (invoices, payments, accounts) and HR."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Select, exists, func, select

from hub.estate.seed import FIRST_NAMES, LAST_NAMES, STAFF, TRADES, ascii_upper, vat_number
from hub.estate.workload import Change, Workload, cents


class BackOffice(Workload):
    """The changes finance clerks and HR make (see :class:`~hub.estate.workload.Workload`)."""

    def _open_invoices(self, *, unpaid: bool = False) -> Select[Any]:
        invoice, payment = self.t["AR_INVOICE"], self.t["AR_PAYMENT"]
        query = select(invoice.c.INV_NO, cents(invoice.c.AMOUNT).label("cents")).where(
            invoice.c.STATUS == "O"
        )
        if unpaid:
            query = query.where(~exists().where(payment.c.INV_NO == invoice.c.INV_NO))
        return query.order_by(invoice.c.INV_NO)

    def _invoice(self) -> Change | None:
        customer = self.t["AR_CUSTOMER"]
        with self.engines["finance"].begin() as conn:
            buyer = self._pick(conn, select(customer.c.CUST_NO).order_by(customer.c.CUST_NO))
            if buyer is None:
                return None
            amount = Decimal(self.rng.randint(5_000, 500_000)).scaleb(-2)
            row = {"INV_NO": self._next("invoice"), "CUST_NO": buyer.CUST_NO, "INV_DATE": self.clock().date()}
            conn.execute(self.t["AR_INVOICE"].insert(), {**row, "AMOUNT": amount, "STATUS": "O"})
        return Change("invoice", "finance")

    def _payment(self) -> Change | None:
        invoice, payment = self.t["AR_INVOICE"], self.t["AR_PAYMENT"]
        with self.engines["finance"].begin() as conn:
            found = self._pick(conn, self._open_invoices())
            if found is None:
                return None
            paid_query = select(func.coalesce(func.sum(cents(payment.c.AMOUNT)), 0))
            due = found.cents - int(
                conn.execute(paid_query.where(payment.c.INV_NO == found.INV_NO)).scalar_one()
            )
            pay = due if due < 200 or self.rng.random() < 0.7 else due * self.rng.randint(20, 80) // 100
            if pay > 0:
                row = {
                    "PAY_NO": self._next("payment"),
                    "INV_NO": found.INV_NO,
                    "PAY_DATE": self.clock().date(),
                }
                conn.execute(payment.insert(), {**row, "AMOUNT": Decimal(pay).scaleb(-2)})
            if pay >= due:
                conn.execute(invoice.update().where(invoice.c.INV_NO == found.INV_NO).values(STATUS="P"))
        return Change("payment", "finance")

    def _void_invoice(self) -> Change | None:
        invoice = self.t["AR_INVOICE"]
        with self.engines["finance"].begin() as conn:
            found = self._pick(conn, self._open_invoices(unpaid=True))
            if found is None:
                return None
            conn.execute(invoice.update().where(invoice.c.INV_NO == found.INV_NO).values(STATUS="V"))
        return Change("void_invoice", "finance")

    def _payment_reversal(self) -> Change | None:
        invoice, payment = self.t["AR_INVOICE"], self.t["AR_PAYMENT"]
        with self.engines["finance"].begin() as conn:
            found = self._pick(conn, select(payment.c.PAY_NO, payment.c.INV_NO).order_by(payment.c.PAY_NO))
            if found is None:
                return None
            conn.execute(payment.delete().where(payment.c.PAY_NO == found.PAY_NO))
            conn.execute(invoice.update().where(invoice.c.INV_NO == found.INV_NO).values(STATUS="O"))
        return Change("payment_reversal", "finance")

    def _new_ar_customer(self) -> Change:
        crm, ar = self.t["crm_customer"], self.t["AR_CUSTOMER"]
        with self.engines["sales"].connect() as conn:
            prospect = self._pick(conn, select(crm).where(crm.c.rep_empno.is_not(None)).order_by(crm.c.code))
        with self.engines["finance"].begin() as conn:
            known = set(conn.scalars(select(ar.c.CRM_REF).where(ar.c.CRM_REF.is_not(None))))
            cust_no = f"{self._next('cust_no'):06d}"
            if prospect is not None and prospect.code not in known:
                tax = prospect.tax_id or vat_number(self.rng.randrange(300_000_000, 999_999_999))
                name, email, ref = ascii_upper(prospect.name), prospect.email, prospect.code
            else:
                name = ascii_upper(f"{self.rng.choice(TRADES)} {self.rng.choice(LAST_NAMES)}")
                tax = vat_number(self.rng.randrange(300_000_000, 999_999_999))
                email, ref = f"compta@{cust_no}.example", None
            row = {"CUST_NO": cust_no, "NAME": name, "TAX_ID": tax, "EMAIL": email, "CRM_REF": ref}
            conn.execute(ar.insert(), row)
        return Change("new_ar_customer", "finance")

    # -- HR ------------------------------------------------------------------------------

    def _manager_of(self, conn: Connection, deptno: int) -> int | None:
        emp = self.t["EMP"]
        query = select(func.min(emp.c.EMPNO)).where(emp.c.JOB == "MANAGER", emp.c["DEPTNO"] == deptno)
        found = conn.execute(query).scalar()
        return int(found) if found is not None else None

    def _hire(self) -> Change:
        job, deptno, _, low, high = self.rng.choice(STAFF)
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        empno = self._next("empno")
        with self.engines["hr"].begin() as conn:
            row = {"EMPNO": empno, "ENAME": ascii_upper(f"{first} {last}"), "JOB": job}
            row |= {"MGR": self._manager_of(conn, deptno), "HIREDATE": self.clock().strftime("%Y%m%d")}
            row |= {
                "SAL": Decimal(self.rng.randrange(low * 100, high * 100, 50)).scaleb(-2),
                "DEPTNO": deptno,
            }
            row["EMAIL"] = f"{ascii_upper(first).lower()}.{ascii_upper(last).lower()}.{empno}@retail.example"
            conn.execute(self.t["EMP"].insert(), row)
        return Change("hire", "hr")

    def _employee_transfer(self) -> Change | None:
        emp = self.t["EMP"]
        staff = select(emp.c.EMPNO, emp.c.DEPTNO).where(emp.c.JOB.not_in(["PRESIDENT", "MANAGER"]))
        with self.engines["hr"].begin() as conn:
            found = self._pick(conn, staff.order_by(emp.c.EMPNO))
            if found is None:
                return None
            deptno = self.rng.choice([d for _, d, *_ in STAFF if d != found.DEPTNO])
            changes = {"DEPTNO": deptno, "MGR": self._manager_of(conn, deptno)}
            conn.execute(emp.update().where(emp.c.EMPNO == found.EMPNO).values(**changes))
        return Change("employee_transfer", "hr")

    def _correction_salary(self) -> Change | None:
        emp = self.t["EMP"]
        with self.engines["hr"].begin() as conn:
            found = self._pick(
                conn, select(emp.c.EMPNO, cents(emp.c.SAL).label("cents")).order_by(emp.c.EMPNO)
            )
            if found is None:
                return None
            raised = Decimal(found.cents * (100 + self.rng.randint(1, 5)) // 100).scaleb(-2)
            conn.execute(emp.update().where(emp.c.EMPNO == found.EMPNO).values(SAL=raised))
        return Change("correction:salary", "hr")

    def _correction_crm_ref(self) -> Change | None:
        """A clerk fills in CRM_REF for an account whose tax id or email the CRM also holds."""
        crm, ar = self.t["crm_customer"], self.t["AR_CUSTOMER"]
        with self.engines["sales"].connect() as conn:
            rows = conn.execute(select(crm.c.code, crm.c.tax_id, crm.c.email).order_by(crm.c.code)).all()
        by_tax = {_compact(row.tax_id): row.code for row in rows if row.tax_id}
        by_email = {row.email.strip().lower(): row.code for row in rows if row.email}
        with self.engines["finance"].begin() as conn:
            unlinked = select(ar.c.CUST_NO, ar.c.TAX_ID, ar.c.EMAIL).where(
                func.coalesce(ar.c.CRM_REF, "") == ""
            )
            for found in conn.execute(unlinked.order_by(ar.c.CUST_NO)).all():
                code = by_tax.get(_compact(found.TAX_ID or "")) or by_email.get(
                    (found.EMAIL or "").strip().lower()
                )
                if code:
                    conn.execute(ar.update().where(ar.c.CUST_NO == found.CUST_NO).values(CRM_REF=code))
                    return Change("correction:crm_ref", "finance")
        return None

    def _correction_invoice_amount(self) -> Change | None:
        invoice = self.t["AR_INVOICE"]
        with self.engines["finance"].begin() as conn:
            found = self._pick(conn, self._open_invoices(unpaid=True))
            if found is None:
                return None
            amount = Decimal(found.cents + self.rng.randint(-500, 500) * 10).scaleb(-2)
            conn.execute(
                invoice.update()
                .where(invoice.c.INV_NO == found.INV_NO)
                .values(AMOUNT=max(amount, Decimal("1.00")))
            )
        return Change("correction:invoice_amount", "finance")


def _compact(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum()).upper()
