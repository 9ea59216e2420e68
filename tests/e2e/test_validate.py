"""`unsilo validate` connects to each source and names what to fix."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import Stack

pytestmark = pytest.mark.e2e


def test_validate_names_each_problem_and_its_fix(stack: Stack, tmp_path: Path) -> None:
    """A missing table, a table without key and a missing file are each reported with a fix; exit 1."""
    db = tmp_path / "shop.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE sales (ticket INTEGER PRIMARY KEY, amount DECIMAL(8,2))")
    conn.execute("CREATE TABLE audit (line TEXT)")
    conn.commit()
    conn.close()
    config = tmp_path / "unsilo.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": stack.bootstrap},
                "registry": {"url": stack.registry_url},
                "sources": [
                    {
                        "name": "shop",
                        "system": "pos",
                        "kind": "sqlite",
                        "url": str(db),
                        "tables": ["sales", "audit", "refunds"],
                    },
                    {
                        "name": "gone",
                        "system": "pos",
                        "kind": "sqlite",
                        "url": str(tmp_path / "no.db"),
                        "tables": ["sales"],
                    },
                ],
            }
        )
    )

    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "-c", str(config), "validate"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "250", "PATH": "/usr/bin:/bin"},
    )

    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "source shop table audit: no primary key" in out and "row_hash_key" in out
    assert "source shop table refunds: table not found" in out
    assert "no.db does not exist" in out
    assert "FAIL source shop table sales" not in out
