"""The first read model for real: a faust worker mirrors a captured table into SQL."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from connectors.runner import ConnectorRunner
from hub.config import Settings
from tests.support import sqlite_source, unique, wait_for, write_config

pytestmark = pytest.mark.integration


def random_workload(db: Path, operations: int, seed: int) -> None:
    """``operations`` random inserts, updates, deletes and key changes, each committed."""
    rng = random.Random(seed)
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS accounts "
        "(id INTEGER PRIMARY KEY, owner TEXT, amount DECIMAL(12,2), opened DATE)"
    )
    conn.commit()
    next_id = conn.execute("SELECT COALESCE(MAX(id), 0) + 1000 FROM accounts").fetchone()[0]
    for _ in range(operations):
        ids = [row[0] for row in conn.execute("SELECT id FROM accounts")]
        choice = rng.random()
        if not ids or choice < 0.4:
            amount = f"{rng.randint(0, 10**6)}.{rng.randint(0, 99):02d}"
            conn.execute(
                "INSERT INTO accounts VALUES (?, ?, ?, ?)",
                (next_id, f"owner {next_id}", amount, "2020-01-31"),
            )
            next_id += 1
        elif choice < 0.75:
            conn.execute(
                "UPDATE accounts SET amount = amount + 0.01, owner = ? WHERE id = ?",
                (f"o{rng.random()}", rng.choice(ids)),
            )
        elif choice < 0.95:
            conn.execute("DELETE FROM accounts WHERE id = ?", (rng.choice(ids),))
        else:
            conn.execute("UPDATE accounts SET id = ? WHERE id = ?", (next_id, rng.choice(ids)))
            next_id += 1
        conn.commit()
    conn.close()


def source_rows(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    rows = [
        (i, o, Decimal(str(a)).quantize(Decimal("0.01")), d)
        for i, o, a, d in conn.execute("SELECT id, owner, amount, opened FROM accounts ORDER BY id")
    ]
    conn.close()
    return rows


def read_model_rows(url: str, table: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(text(f"SELECT id, owner, amount, opened FROM {table} ORDER BY id"))
            return [(i, o, Decimal(a), str(d)) for i, o, a, d in found]
    except Exception:
        return []
    finally:
        engine.dispose()


def test_read_model_equals_source_after_random_workload(settings: Settings, tmp_path: Path) -> None:
    """After 1,000 random operations the mirror equals the source; a rebuild gives the same rows."""
    db = tmp_path / "bank.db"
    system = unique("fin")
    random_workload(db, 500, seed=7)
    source = sqlite_source(unique("bank"), system, db, ["accounts"], batch_size=100)
    configured = settings.model_copy(update={"sources": [source]})
    ConnectorRunner(configured, source).run(until_idle=True)  # snapshot
    random_workload(db, 500, seed=8)
    ConnectorRunner(configured, source).run(until_idle=True)  # streamed changes

    config = write_config(configured, tmp_path / "unsilo.yaml")
    group = unique("mirror")  # its own: another mirror worker on a shared broker must not share partitions
    worker = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "-c", str(config), "project", "mirror", "--group", group],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "worker.log", "wb"),  # noqa: SIM115
    )
    try:
        expected = source_rows(db)
        table = f"mirror_{system}_accounts"
        wait_for(
            lambda: read_model_rows(configured.read_store.url, table) == expected,
            timeout_s=120,
            what="the mirror to equal the source",
        )

        # rebuild from the log while the worker runs: same rows, and later changes still apply
        rebuilt = subprocess.run(
            [sys.executable, "-m", "hub.cli", "-c", str(config), "rebuild", "mirror"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
        assert read_model_rows(configured.read_store.url, table) == expected
        random_workload(db, 100, seed=9)
        ConnectorRunner(configured, source).run(until_idle=True)
        after = source_rows(db)
        wait_for(
            lambda: read_model_rows(configured.read_store.url, table) == after,
            timeout_s=120,
            what="changes after the rebuild to reach the swapped-in table",
        )
    finally:
        worker.terminate()
        worker.wait(30)
    assert len(expected) > 50
