"""The whole pipeline on the demo estate: read models equal the same figures computed in SQL.

legacy SQLite databases -> connectors -> raw topics -> canonicalizer + identity resolver ->
canonical topics -> read-model builders (the code the faust workers run, fed by a replay) ->
read store; then every figure is checked, to the cent, against the legacy databases.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from connectors.runner import ConnectorRunner
from hub.config import Settings
from hub.estate import SYSTEMS, TABLES, WorkloadSimulator, create_estate, figures
from projections.canonical.contract import CanonicalTopics
from projections.cli_canonical import run_canonical
from projections.identity.app import send_command
from projections.read_models import READ_MODELS
from projections.rebuild import rebuild
from projections.replay import replay
from projections.store import create_read_store
from tests.support import sqlite_source

pytestmark = pytest.mark.e2e

MODELS = ["store_sales", "inventory_position", "customer_360", "employee_directory"]
ORDER = {
    "store_sales": "store_key, period, starts",
    "inventory_position": "product_key, location_key",
    "customer_360": "party_id",
    "employee_directory": "key",
}


class Pipeline:
    """The estate, its capture and the canonical layer, run step by step until idle."""

    def __init__(self, settings: Settings, where: Path) -> None:
        self.urls = create_estate(where / "estate", 42)
        sources = [
            sqlite_source(
                s, s, Path(self.urls[s].removeprefix("sqlite:///")), list(TABLES[s]), batch_size=500
            )
            for s in SYSTEMS
        ]
        self.settings = settings.model_copy(update={"sources": sources})
        self.engine: Engine = create_read_store(self.settings.read_store.url)
        self.builders = {name: READ_MODELS[name].builder(self.engine, name, "") for name in MODELS}

    def work(self, changes: int, seed: int) -> None:
        with WorkloadSimulator(self.urls, seed, rate=0) as simulator:
            simulator.run(changes=changes)

    def flow(self) -> None:
        """Capture every source, canonicalize, and apply everything to the read models."""
        for source in self.settings.sources:
            ConnectorRunner(self.settings, source).run(until_idle=True)
        run_canonical(self.settings, until_idle=True, max_seconds=300)
        for name, builder in self.builders.items():
            replay(self.settings, READ_MODELS[name].topics(self.settings), builder)

    def rows(self, name: str) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {name} ORDER BY {ORDER[name]}"))]


@pytest.fixture(scope="module")
def pipeline(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """The demo estate after a seeded workload before and after the first capture."""
    from hub.config import KafkaSettings, ReadStoreSettings, RegistrySettings

    where = tmp_path_factory.mktemp("estate")
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=stack.bootstrap),
        registry=RegistrySettings(url=stack.registry_url),
        read_store=ReadStoreSettings(url=f"sqlite:///{where / 'read.db'}"),
    )
    built = Pipeline(settings, where)
    built.work(150, seed=1)
    built.flow()
    built.work(300, seed=2)
    built.flow()
    yield built
    built.engine.dispose()


def cents(value: Decimal) -> int:
    return int(value * 100)


def test_store_sales_equal_till_revenue_per_store_hour_and_day(pipeline: Pipeline) -> None:
    """Revenue and tickets per store and day, and per store and hour, equal the POS database's sums."""
    expected = figures(pipeline.urls)
    rows = {(r[0], r[1], r[2]): (Decimal(r[3]), int(Decimal(r[4]))) for r in pipeline.rows("store_sales")}

    daily = {(k, p, s): v for (k, p, s), v in rows.items() if p == "day"}
    hourly = {(k, p, s): v for (k, p, s), v in rows.items() if p == "hour"}
    assert daily == {
        (f"sales:{store}", "day", day.isoformat()): (f.revenue, f.tickets)
        for (store, day), f in expected.store_sales_daily.items()
    }
    assert hourly == {
        (f"sales:{store}", "hour", hour.strftime("%Y-%m-%dT%H:00")): (f.revenue, f.tickets)
        for (store, hour), f in expected.store_sales_hourly.items()
    }


def test_on_hand_equals_movements_minus_sales(pipeline: Pipeline) -> None:
    """On hand per product and location equals receipts + transfers + adjustments - sales in the WMS/POS."""
    expected = {
        (f"sales:{sku}", f"sales:{location}"): units
        for (sku, location), units in figures(pipeline.urls).on_hand.items()
        if units != 0
    }
    found = {
        (r[0], r[1]): int(Decimal(r[2])) for r in pipeline.rows("inventory_position") if Decimal(r[2]) != 0
    }
    assert found == expected


def test_open_balance_per_customer_equals_receivables(pipeline: Pipeline) -> None:
    """Each party's open balance equals its finance invoices (not void) minus payments, to the cent."""
    balances = figures(pipeline.urls).open_balances
    found: dict[str, int] = {}
    expected: dict[str, int] = {}
    accounts: list[str] = []
    for row in pipeline.rows("customer_360"):
        finance = [m.removeprefix("fin:") for m in str(row[1]).split() if m.startswith("fin:")]
        accounts += finance
        if finance:  # a duplicate finance account merged by the rules counts in the same party
            found[row[0]] = int(row[5])
            expected[row[0]] = sum(cents(balances[code]) for code in finance)
    assert found == expected
    assert sorted(accounts) == sorted(balances)  # every finance account is in exactly one party
    linked = [r for r in pipeline.rows("customer_360") if "fin:" in str(r[1]) and "sales:" in str(r[1])]
    assert len(linked) >= 30  # customers known under two codes are one row


def test_employee_directory_lists_every_employee(pipeline: Pipeline) -> None:
    """Every HR employee has one directory row, with a department; reps show their customers."""
    rows = pipeline.rows("employee_directory")
    hr = create_read_store(pipeline.urls["hr"])
    with hr.connect() as conn:
        employees = conn.execute(text('SELECT count(*) FROM "EMP"')).scalar_one()
    hr.dispose()
    assert len(rows) == employees and all(r[7] is not None for r in rows)
    assert sum(int(r[10]) for r in rows) > 0


@pytest.mark.parametrize("name", MODELS)
def test_rebuild_gives_exactly_the_live_rows(pipeline: Pipeline, name: str) -> None:
    """Rebuilding a read model from the log swaps in exactly the rows the live one had."""
    before = pipeline.rows(name)

    rebuild(pipeline.settings, name, READ_MODELS[name].topics(pipeline.settings), READ_MODELS[name].builder)

    assert pipeline.rows(name) == before


def test_link_and_unlink_rekey_customer_360(pipeline: Pipeline) -> None:
    """A manual link merges two customers into one customer_360 row; an unlink splits them again."""
    lonely = [str(r[1]) for r in pipeline.rows("customer_360") if " " not in str(r[1])]
    fin = next(k for k in lonely if k.startswith("fin:"))
    sales = next(k for k in lonely if k.startswith("sales:"))
    topics = CanonicalTopics("")

    send_command(pipeline.settings, topics, "link", [fin, sales], by="test")
    pipeline.flow()
    merged = [str(r[1]).split() for r in pipeline.rows("customer_360") if fin in str(r[1]).split()]
    send_command(pipeline.settings, topics, "unlink", [sales], by="test")
    pipeline.flow()
    split = [str(r[1]).split() for r in pipeline.rows("customer_360") if fin in str(r[1]).split()]

    assert len(merged) == 1 and sorted(merged[0]) == sorted([fin, sales])
    assert split == [[fin]]
