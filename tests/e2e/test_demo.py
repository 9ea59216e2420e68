"""The README's demo command, run as a user would, against its own broker and registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import SHARED_JARS
from tests.support import free_ports

pytestmark = pytest.mark.e2e


def test_demo_unifies_the_estate_and_the_read_models_match(tmp_path: Path) -> None:
    """`unsilo demo --seconds 15` starts everything, the read models end equal to the legacy figures."""
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

    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "-c", str(config), "demo", "--seconds", "15", "--rate", "30"],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "read models match the legacy databases: yes" in result.stdout
    assert "Traceback" not in result.stderr
    ps = subprocess.run(
        [sys.executable, "-m", "hub.cli", "-c", str(config), "ps"], capture_output=True, text=True, timeout=60
    )
    assert "running" not in ps.stdout.replace("not running", ""), ps.stdout
