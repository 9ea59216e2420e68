"""The demo legacy estate on SQLite files: seeded creation, the workload and the direct-SQL figures."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hub.errors import ConfigError
from hub.estate import SYSTEMS, TABLES, create_estate, estate_urls
from hub.estate.database import ESTATE_DIR, connect, ddl_file, ddl_statements, read_tables
from hub.estate.figures import figures
from hub.estate.seed import seed_rows
from hub.estate.simulator import CORRECTIONS, KINDS, WorkloadSimulator, simulated_clock

SEED = 42
START = dt.datetime(2024, 3, 9, 9, 0)


def snapshot(urls: dict[str, str]) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    return {system: read_tables(urls[system], system) for system in SYSTEMS}


def simulate(urls: dict[str, str], steps: int) -> None:
    clock = simulated_clock(START, dt.timedelta(seconds=41))
    with WorkloadSimulator(urls, SEED, rate=0, clock=clock) as simulator:
        simulator.run(changes=steps)


def cents(amount: Any) -> int:
    return int((Decimal(str(amount)) * 100).to_integral_value())


def test_same_seed_gives_the_same_estate_and_another_seed_another(tmp_path: Path) -> None:
    """Creating the estate twice with one seed gives identical rows; a different seed gives different ones."""
    first = create_estate(tmp_path / "a", SEED)
    second = create_estate(tmp_path / "b", SEED)

    assert snapshot(first) == snapshot(second)
    assert sorted(p.name for p in (tmp_path / "a").glob("*.db")) == ["finance.db", "hr.db", "sales.db"]
    assert seed_rows(SEED) != seed_rows(SEED + 1)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """The rows of a freshly seeded estate (read-only for the tests that share it)."""
    return snapshot(create_estate(tmp_path_factory.mktemp("seeded"), SEED))


def test_every_table_is_seeded(seeded: dict[str, dict[str, list[tuple[Any, ...]]]]) -> None:
    """Every table of the three systems holds rows after creation."""
    assert {system: sorted(tables) for system, tables in seeded.items()} == {
        system: sorted(tables) for system, tables in TABLES.items()
    }
    assert all(seeded[system][table] for system in SYSTEMS for table in TABLES[system])


def test_customers_are_linked_by_each_rule_and_some_live_in_one_system(
    seeded: dict[str, dict[str, list[tuple[Any, ...]]]],
) -> None:
    """Finance and CRM customers are linked by CRM_REF, tax id or email alone, by all three, or not at all."""
    rows = seeded
    crm = rows["sales"]["crm_customer"]  # code, name, email, tax_id, rep_empno
    by_code = {row[0] for row in crm}
    by_tax = {re.sub(r"\W", "", row[3]).upper(): row[0] for row in crm if row[3]}
    by_email = {row[2].strip().lower(): row[0] for row in crm if row[2]}

    rules: Counter[frozenset[str]] = Counter()
    linked: set[str] = set()
    for _, _, tax_id, email, crm_ref in rows["finance"]["AR_CUSTOMER"]:
        matches = {
            "ref": crm_ref if crm_ref in by_code else None,
            "tax": by_tax.get(re.sub(r"\W", "", tax_id or "").upper()),
            "email": by_email.get((email or "").strip().lower()),
        }
        found = {rule: code for rule, code in matches.items() if code}
        assert len(set(found.values())) <= 1, "one finance customer must never match two CRM customers"
        rules[frozenset(found)] += 1
        linked.update(found.values())

    for rule_set in ({"ref"}, {"tax"}, {"email"}, {"ref", "tax", "email"}, set()):
        assert rules[frozenset(rule_set)] > 0, (
            f"no finance customer linked by exactly {rule_set or 'nothing'}"
        )
    assert by_code - linked, "some CRM customers must exist in sales only"


def test_sales_reps_are_hr_salesmen(seeded: dict[str, dict[str, list[tuple[Any, ...]]]]) -> None:
    """Every CRM customer's rep_empno is an HR employee whose job is SALESMAN."""
    rows = seeded
    salesmen = {row[0] for row in rows["hr"]["EMP"] if row[2] == "SALESMAN"}
    reps = {row[4] for row in rows["sales"]["crm_customer"] if row[4] is not None}

    assert reps and reps <= salesmen


def test_workload_is_reproducible(tmp_path: Path) -> None:
    """Two simulators with one seed and one clock make the same changes to two same-seeded estates."""
    first = create_estate(tmp_path / "a", SEED)
    second = create_estate(tmp_path / "b", SEED)

    simulate(first, 150)
    simulate(second, 150)

    assert snapshot(first) == snapshot(second)


@pytest.fixture(scope="module")
def worked(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], list[str]]:
    """An estate after one change of every kind, then 300 changes of the random mix."""
    urls = create_estate(tmp_path_factory.mktemp("worked"), SEED)
    clock = simulated_clock(START, dt.timedelta(seconds=41))
    with WorkloadSimulator(urls, SEED, rate=0, clock=clock) as simulator:
        made = [simulator.make(kind).kind for kind in KINDS]
        simulator.run(changes=300)
    return urls, made


def test_every_kind_of_change_can_be_made(worked: tuple[dict[str, str], list[str]]) -> None:
    """On the seeded estate each kind of change, corrections and deletes included, is made as asked."""
    _, made = worked

    assert made == list(KINDS)
    assert {"void_ticket", "payment_reversal", "drop_order_line"} <= set(made)  # the deletes
    assert sum(kind.startswith("correction:") for kind in made) == len(CORRECTIONS)


def test_workload_keeps_the_direct_sql_figures_consistent(worked: tuple[dict[str, str], list[str]]) -> None:
    """After the workload, the SQL figures equal a recount from the raw rows and the estate's rules hold."""
    urls, _ = worked
    rows = snapshot(urls)
    found = figures(urls)

    invoices = {
        inv_no: (cust, cents(amount), status)
        for inv_no, cust, _, amount, status in rows["finance"]["AR_INVOICE"]
    }
    paid: Counter[int] = Counter()
    for _, inv_no, _, amount in rows["finance"]["AR_PAYMENT"]:
        paid[inv_no] += cents(amount)
    balances: Counter[str] = Counter({row[0]: 0 for row in rows["finance"]["AR_CUSTOMER"]})
    for inv_no, (cust, amount, status) in invoices.items():
        balances[cust] += amount - paid[inv_no] if status != "V" else -paid[inv_no]
        assert status != "V" or paid[inv_no] == 0, "a void invoice has no payment"
        assert (status == "P") == (paid[inv_no] == amount), f"invoice {inv_no} status {status} vs payments"
    assert found.open_balances == {cust: Decimal(c).scaleb(-2) for cust, c in balances.items()}
    assert min(found.open_balances.values()) >= 0

    stock: Counter[tuple[str, str]] = Counter()
    transfers: Counter[str] = Counter()
    for _, sku, location, kind, qty, _, ref in rows["sales"]["stock_movement"]:
        stock[sku, location] += qty
        if kind == "T":
            transfers[ref] += qty
    for _, store, sku, qty, _, _ in rows["sales"]["pos_ticket"]:
        stock[sku, store] -= qty
    assert found.on_hand == dict(stock)
    assert min(found.on_hand.values()) >= 0
    assert set(transfers.values()) == {0}, "each transfer's two halves cancel out"

    daily: dict[tuple[str, dt.date], list[int]] = defaultdict(lambda: [0, 0])
    for _, store, _, _, amount, sold_at in rows["sales"]["pos_ticket"]:
        daily[store, sold_at.date()][0] += amount
        daily[store, sold_at.date()][1] += 1
    assert {k: (v.revenue, v.tickets) for k, v in found.store_sales_daily.items()} == {
        k: (Decimal(amount).scaleb(-2), count) for k, (amount, count) in daily.items()
    }
    assert sum(v.tickets for v in found.store_sales_hourly.values()) == len(rows["sales"]["pos_ticket"])
    assert sum(v.revenue for v in found.store_sales_hourly.values()) == sum(
        v.revenue for v in found.store_sales_daily.values()
    )


def test_an_existing_estate_is_kept_and_reset_reseeds_it(tmp_path: Path) -> None:
    """Creating the estate again keeps the changes made since; reset=True puts the seed back."""
    urls = create_estate(tmp_path, SEED)
    seeded = snapshot(urls)
    simulate(urls, 50)
    changed = snapshot(urls)

    create_estate(tmp_path, SEED)
    assert snapshot(urls) == changed != seeded
    create_estate(tmp_path, SEED, reset=True)
    assert snapshot(urls) == seeded


def test_a_database_with_only_some_estate_tables_is_refused(tmp_path: Path) -> None:
    """A database holding part of a system's tables is not overwritten: ConfigError names the tables."""
    engine = connect(f"sqlite:///{tmp_path / 'hr.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql('CREATE TABLE "DEPT" ("DEPTNO" INTEGER PRIMARY KEY)')
    engine.dispose()

    with pytest.raises(ConfigError, match="DEPT"):
        create_estate(tmp_path, SEED)


def test_urls_must_name_the_three_systems() -> None:
    """A URL mapping missing a system, or a single URL, is a ConfigError; mysql:// gets PyMySQL."""
    with pytest.raises(ConfigError, match="hr"):
        estate_urls({"finance": "sqlite:///f.db", "sales": "sqlite:///s.db"})

    with pytest.raises(ConfigError, match="one URL"):
        estate_urls("postgresql://u@db/estate")
    urls = estate_urls({system: "mysql://u@db/estate" for system in SYSTEMS})
    assert set(urls.values()) == {"mysql+pymysql://u@db/estate"}


def test_sales_ddl_editions_differ_only_in_the_timestamp_type() -> None:
    """MariaDB's sales DDL is the portable one with DATETIME(6) for TIMESTAMP, and nothing else changed."""

    def normal(statements: list[str]) -> list[str]:
        return [
            re.sub(r"\s+", " ", statement.replace("DATETIME(6)", "TIMESTAMP")) for statement in statements
        ]

    assert ddl_file("sales", "mariadb").name == "sales.mariadb.sql"
    assert "TIMESTAMP" not in " ".join(ddl_statements("sales", "mariadb"))
    assert normal(ddl_statements("sales", "mariadb")) == normal(ddl_statements("sales", "sqlite"))
    assert ddl_file("finance", "mariadb") == ddl_file("finance", "postgresql") == ESTATE_DIR / "finance.sql"
