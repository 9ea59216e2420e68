"""The demo estate on PostgreSQL and MariaDB: the same DDL, seed and workload as on SQLite."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hub.estate import create_estate, estate_columns
from hub.estate.figures import figures
from hub.estate.simulator import WorkloadSimulator, simulated_clock
from tests.fixtures_mysql import MysqlDatabase

pytestmark = pytest.mark.integration

SEED = 7
STEPS = 300


def _run_workload(urls: dict[str, str]) -> None:
    clock = simulated_clock(dt.datetime(2024, 3, 9, 9), dt.timedelta(seconds=37))
    with WorkloadSimulator(urls, SEED, rate=0, clock=clock) as simulator:
        simulator.run(changes=STEPS)


def _same_estate_as_sqlite(urls: dict[str, str], tmp_path: Path) -> None:
    reference = create_estate(tmp_path / "sqlite", SEED)
    created = create_estate(urls, SEED)
    assert estate_columns(created) == estate_columns(reference)
    _run_workload(created)
    _run_workload(reference)
    assert figures(created) == figures(reference)


def test_estate_on_postgresql_gives_the_sqlite_figures(postgres_db: str, tmp_path: Path) -> None:
    """On PostgreSQL the seeded estate, after the same seeded workload, has exactly the SQLite figures."""
    _same_estate_as_sqlite({system: postgres_db for system in ("finance", "hr", "sales")}, tmp_path)


def test_estate_on_mariadb_gives_the_sqlite_figures(mysql_db: MysqlDatabase, tmp_path: Path) -> None:
    """On MariaDB the seeded estate, after the same seeded workload, has exactly the SQLite figures."""
    _same_estate_as_sqlite({system: mysql_db.url for system in ("finance", "hr", "sales")}, tmp_path)
