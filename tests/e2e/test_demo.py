"""The README's demo command, run as a user would, against its own broker and registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import SHARED_JARS
from tests.fixtures_postgres import run_sql
from tests.support import free_ports

pytestmark = pytest.mark.e2e


def run_demo(tmp_path: Path, *options: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`unsilo demo --seconds 15 --rate 30 <options>` with a broker and registry of its own."""
    kafka_port, controller_port, registry_port, api_port = free_ports(4)
    data_dir = tmp_path / ".unsilo"
    data_dir.mkdir()
    for name in ("kafka-lib", "apicurio"):
        if (SHARED_JARS / name).exists():
            (data_dir / name).symlink_to(SHARED_JARS / name)
    config = tmp_path / "unsilo.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "local": {
                    "data_dir": str(data_dir),
                    "kafka_port": kafka_port,
                    "controller_port": controller_port,
                    "registry_port": registry_port,
                },
                "kafka": {"bootstrap_servers": f"127.0.0.1:{kafka_port}"},
                "registry": {"url": f"http://127.0.0.1:{registry_port}/apis/ccompat/v7"},
                "api": {"port": api_port},
            }
        )
    )

    command = [sys.executable, "-m", "hub.cli", "-c", str(config), "demo", "--seconds", "15", "--rate", "30"]
    result = subprocess.run([*command, *options], capture_output=True, text=True, timeout=400, cwd=tmp_path)
    return result, config


def test_demo_unifies_the_estate_and_the_read_models_match(tmp_path: Path) -> None:
    """`unsilo demo --seconds 15` starts everything, the read models end equal to the legacy figures."""
    result, config = run_demo(tmp_path)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "read models match the legacy databases: yes" in result.stdout
    assert "Traceback" not in result.stderr
    ps = subprocess.run(
        [sys.executable, "-m", "hub.cli", "-c", str(config), "ps"], capture_output=True, text=True, timeout=60
    )
    assert "running" not in ps.stdout.replace("not running", ""), ps.stdout


def test_demo_on_postgresql_estate_and_read_store(postgres_db: str, tmp_path: Path) -> None:
    """`unsilo demo --estate postgresql://... --read-store postgresql://...`: the three systems
    captured by logical replication, the read models kept in PostgreSQL, matching to the cent."""
    result, _ = run_demo(tmp_path, "--estate", postgres_db, "--read-store", postgres_db)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "read models match the legacy databases: yes" in result.stdout
    tables = run_sql(
        postgres_db, "SELECT slot_name FROM pg_replication_slots WHERE database = current_database()"
    )
    assert {"unsilo_finance", "unsilo_hr", "unsilo_sales"} <= {row[0] for row in tables}
    views = run_sql(postgres_db, "SELECT COUNT(*) FROM customer_360")
    assert views[0][0] > 0
