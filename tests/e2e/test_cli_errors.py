"""A user's mistakes get a clear message and an exit status, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import free_ports

pytestmark = pytest.mark.e2e


def unsilo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_misspelt_key_is_named_and_exits_2(tmp_path: Path) -> None:
    """A malformed unsilo.yaml names the wrong key and exits with status 2."""
    (tmp_path / "unsilo.yaml").write_text("kafka:\n  bootstrap_server: 127.0.0.1:9092\n")

    result = unsilo("validate", cwd=tmp_path)

    assert result.returncode == 2
    assert "kafka.bootstrap_server" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_broker_names_address_and_how_to_start_one(tmp_path: Path) -> None:
    """With no broker listening, validate names the bootstrap address and says how to start the local one."""
    (port,) = free_ports(1)
    (tmp_path / "unsilo.yaml").write_text(f"kafka:\n  bootstrap_servers: 127.0.0.1:{port}\n")

    result = unsilo("validate", cwd=tmp_path)

    assert result.returncode != 0
    assert f"127.0.0.1:{port}" in result.stderr
    assert "unsilo up" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_source_lists_known_ones(tmp_path: Path) -> None:
    """Running a source that is not configured says which sources exist."""
    (tmp_path / "unsilo.yaml").write_text(
        "sources:\n  - {name: shop, system: pos, kind: sqlite, url: shop.db, tables: [sales]}\n"
    )

    result = unsilo("run", "shoop", cwd=tmp_path)

    assert result.returncode == 2
    assert "shoop" in result.stderr and "shop" in result.stderr
    assert "Traceback" not in result.stderr
